"""Which dialect serves a request: (method, path) to a dialect route.

Static paths are found by dict, patterns by regex, the most specific pattern first. The
registry builds one ``Router`` over every dialect (``dialects.ROUTER``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mockserver.dialects.contract import Dialect, Route


@dataclass(frozen=True, slots=True)
class RouteMatch:
    dialect: Dialect
    route: Route
    params: tuple[tuple[str, str], ...]


def normalize_path(path: str) -> str:
    """The path as routes see it: no fragment (the Mistral SDK adds ``#stream``), no empty
    segments (recorded Azure URLs carry ``//openai``), no trailing slash."""
    path = path.split("#", 1)[0]
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


def _compile(pattern: str) -> tuple[re.Pattern[str], int]:
    """The regex of a pattern, and how many literal characters it pins down: when several
    patterns match, the most specific (most literal text) wins. ``{name}`` is one path
    segment; ``{name*}`` any run of segments (OpenAI-compatible servers live under all
    kinds of prefixes: ``/api/v1``, ``/novita/v3/openai``...)."""
    parts = re.split(r"\{(\w+\*?)\}", pattern)
    regex = ""
    literal = 0
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
            literal += len(part)
        elif part.endswith("*"):
            regex += f"(?P<{part[:-1]}>.*)"
        else:
            regex += f"(?P<{part}>[^/:]+)"
    return re.compile(regex + r"\Z"), literal


RESOLVED_CACHE_SIZE = 1024
REMEMBERED_PATH = 512  # characters: longer paths are resolved each time, not kept


class Router:
    """Maps (method, path) to a dialect route; static paths by dict, patterns by regex.

    A client sends the same few paths again and again, and normalizing a path and trying
    the patterns cost more than the rest of routing a request: the last
    RESOLVED_CACHE_SIZE answers are remembered (the router never changes, so they never
    go stale; a client inventing paths only evicts them)."""

    def __init__(self, dialects: Mapping[str, Dialect]) -> None:
        self._remembered = functools.lru_cache(maxsize=RESOLVED_CACHE_SIZE)(self._resolve)
        self._static: dict[tuple[str, str], tuple[Dialect, Route]] = {}
        patterns: list[tuple[int, str, re.Pattern[str], Dialect, Route]] = []
        for dialect in dialects.values():
            for route in dialect.routes:
                if "{" in route.pattern:
                    regex, literal = _compile(route.pattern)
                    patterns.append((literal, route.method, regex, dialect, route))
                else:
                    self._static[(route.method, route.pattern)] = (dialect, route)
        # Most specific first, so the first pattern that matches is the one to use.
        patterns.sort(key=lambda item: -item[0])
        self._patterns = [item[1:] for item in patterns]
        self.routes: tuple[tuple[str, Route], ...] = tuple(
            (dialect.name, route) for dialect in dialects.values() for route in dialect.routes
        )

    def resolve(self, method: str, path: str) -> RouteMatch | None:
        if len(path) > REMEMBERED_PATH:
            return self._resolve(method, path)
        match: RouteMatch | None = self._remembered(method, path)
        return match

    def _resolve(self, method: str, path: str) -> RouteMatch | None:
        path = normalize_path(path)
        method = method.upper()
        found = self._static.get((method, path))
        if found is not None:
            return RouteMatch(found[0], found[1], ())
        for route_method, regex, dialect, route in self._patterns:
            if route_method == method and (match := regex.match(path)):
                return RouteMatch(dialect, route, tuple(match.groupdict().items()))
        return None

    def describe(self) -> list[str]:
        """The routes served, one line each, for messages."""
        return [f"{route.method} {route.pattern}  ({name})" for name, route in self.routes]
