"""The wire protocols Tapedeck speaks, one folder each, and the one registry of them.

``DIALECTS`` is an explicit dict (a test checks that every folder here is in it): adding a
protocol is one folder and one line below. Everything outside ``dialects/`` asks this
registry, never a protocol by name.
"""

from __future__ import annotations

from mockserver.dialects import anthropic, bedrock, cohere, gemini, ollama, openai
from mockserver.dialects._kit.limits import LIMITS, Limit, SynthesisLimits, exceeded
from mockserver.dialects.contract import Dialect, Recipe, Route, Upstream
from mockserver.dialects.router import RouteMatch, Router, normalize_path
from mockserver.errors import UnknownDialectError

DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect
    for dialect in (
        openai.CHAT,
        openai.COMPLETIONS,
        openai.EMBEDDINGS,
        openai.RESPONSES,
        anthropic.DIALECT,
        bedrock.DIALECT,
        gemini.DIALECT,
        ollama.DIALECT,
        cohere.DIALECT,
    )
}

DEFAULT_DIALECT = "openai_chat"
"""The protocol assumed where a caller names none (``base_url()``, ``check``...)."""

ROUTER = Router(DIALECTS)

RECIPES: tuple[Recipe, ...] = tuple(r for d in DIALECTS.values() for r in d.recipes)
"""Every bundled cassette's recipe (``tapedeck synth --bundled``)."""


def dialect(name: str) -> Dialect:
    """The dialect of that name; ``UnknownDialectError`` listing the known ones otherwise."""
    found = DIALECTS.get(name)
    if found is None:
        raise UnknownDialectError(name, tuple(DIALECTS))
    return found


def resolve(method: str, path: str) -> RouteMatch | None:
    return ROUTER.resolve(method, path)


def sdk_environment(url: str) -> dict[str, str]:
    """The environment variables that point every supported SDK at a server at ``url``."""
    return {
        name: value.replace("{url}", url)
        for dialect in DIALECTS.values()
        for name, value in dialect.environment
    }


def upstreams() -> dict[str, str]:
    """Every upstream name recording knows, with its default URL ("" when none)."""
    found: dict[str, str] = {}
    for d in DIALECTS.values():
        for upstream in d.upstreams:
            found.setdefault(upstream.name, upstream.url)
    return found


__all__ = [
    "DEFAULT_DIALECT",
    "DIALECTS",
    "LIMITS",
    "RECIPES",
    "ROUTER",
    "Dialect",
    "Limit",
    "Recipe",
    "Route",
    "RouteMatch",
    "Router",
    "SynthesisLimits",
    "Upstream",
    "dialect",
    "exceeded",
    "normalize_path",
    "resolve",
    "sdk_environment",
    "upstreams",
]
