"""The contract a wire protocol fulfils: what the server, the recorder, the checker, the
plugin and the CLI may ask of a dialect, and nothing more.

A dialect is data plus a few small functions, in its own folder under ``dialects/``, and
one line in the registry (``dialects/__init__.py``). Everything outside ``dialects/``
reaches a protocol only through these fields, never by its name.

Where it sits: below the registry and above ``model``, ``framing`` and the shared kit
(``_kit``); it never imports a dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.dialects._kit.knobs import Knobs
from mockserver.dialects._kit.rules import RuleTable
from mockserver.dialects._kit.summary import Summary
from mockserver.model import (
    Event,
    Framing,
    Identity,
    Request,
    Response,
    Script,
    Violation,
)


@dataclass(frozen=True, slots=True)
class Route:
    """A method and path pattern a dialect serves. ``{name}`` matches one path segment."""

    method: str
    pattern: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where recording forwards a request: ``name`` is the NAME of ``--upstream NAME=URL``,
    ``url`` the real provider's base URL ("" when there is none to assume: the user must
    give one), ``prefix`` the request paths it takes ("" for any)."""

    name: str
    url: str = ""
    prefix: str = ""


@dataclass(frozen=True)
class Recipe:
    """One bundled cassette: where it goes, what was asked, what the answer says."""

    file: str
    path: str
    body: dict[str, Any]
    script: Script
    origin: str = "https://api.openai.com"
    method: str = "POST"


def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


@dataclass(frozen=True, slots=True)
class Conformance:
    """What ``tapedeck check`` needs of a protocol: to read a stream of it in
    protocol-neutral terms (``summarize``; ``summarize_body`` for a non-streamed answer),
    and, to act as its client in front of a proxy, ``request_body(prompt, model, tools,
    n, include_usage)``, the streamed request a client sends (None: no client
    scenarios). ``choices`` and ``usage_option`` say which scenarios apply."""

    summarize: Callable[[Sequence[Event]], Summary]
    request_body: Callable[[str, str, tuple[str, ...], int, bool | None], dict[str, Any]] | None = (
        None
    )
    summarize_body: Callable[[bytes], Summary] | None = None
    client_headers: Callable[[str], dict[str, str]] = bearer
    choices: bool = False
    usage_option: bool = False


@dataclass(frozen=True, slots=True)
class Dialect:
    """One wire protocol: data plus a few small functions (see ARCHITECTURE.md)."""

    name: str
    routes: tuple[Route, ...]
    framing: Framing
    is_stream: Callable[[Request], bool]
    identity: Callable[[Request], Identity]
    check: Callable[[Request | None, Sequence[Event]], list[Violation]]
    error: Callable[[int, str, str], Response]
    synthesize: Callable[[Request, Script], Response]
    rules: RuleTable = field(default_factory=RuleTable)
    """Every rule ``check`` enforces: its id, what it requires, its message."""
    base_path: str = ""
    """What to append to the server URL to get this dialect's SDK base URL."""
    environment: tuple[tuple[str, str], ...] = ()
    """Environment variables pointing this dialect's SDK at a server; ``{url}`` is the
    server's root URL."""
    default_error_kind: str = "invalid_request_error"
    select_framing: Callable[[Request], Framing] | None = None
    """For a protocol whose stream framing depends on the request (Gemini: ``alt=sse``
    or a JSON array); None means ``framing`` always."""
    secret_headers: frozenset[str] = frozenset()
    """Request or response headers of this protocol that carry credentials or account ids,
    lower case: never written to a cassette (on top of the generic ones)."""
    upstreams: tuple[Upstream, ...] = ()
    """Where recording forwards this protocol's requests: the first whose prefix fits."""
    midstream_error: Callable[[int], bytes] | None = None
    """The protocol's in-band error as one frame, given the events sent before it (for
    protocols that number their events); None when it has no in-band error."""
    recipes: tuple[Recipe, ...] = ()
    """The bundled cassettes of this protocol (``tapedeck synth --bundled``)."""
    knobs: Knobs | None = None
    """What the hypothesis strategies need; None: derived from the routes."""
    conformance: Conformance | None = None
    """What ``tapedeck check`` needs to speak this protocol to a proxy; None: it cannot."""

    def framing_for(self, request: Request | None) -> Framing:
        if request is None or self.select_framing is None:
            return self.framing
        return self.select_framing(request)

    def upstream_for(self, request: Request) -> Upstream | None:
        return next((u for u in self.upstreams if request.path.startswith(u.prefix)), None)


Registry = Mapping[str, Dialect]
