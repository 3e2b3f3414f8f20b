"""Validation, off to the side of the flow: pure functions from bytes or events to
Violations. Never raises on bad streams; the caller decides what is fatal.

``validate`` is the public entry point for a stream; ``lint_exchange`` and ``lint_file``
judge recorded interactions (what ``tapedeck lint`` prints).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mockserver.dialects import DIALECTS, ROUTER
from mockserver.model import Dialect, Event, Exchange, Request, Violation, header

GENERIC_RULES = {
    "stream-empty": "a successful streaming response carries at least one event",
    "content-type": "a successful stream is served with its framing's content type",
}


def validate(
    dialect: Dialect | str,
    stream: bytes | Sequence[Event],
    request: Request | None = None,
) -> list[Violation]:
    """The protocol violations in a stream: raw body bytes, or events already decoded.

    ``request`` (when known) enables the rules that depend on what was asked, such as
    OpenAI's ``stream_options.include_usage``.
    """
    if isinstance(dialect, str):
        try:
            dialect = DIALECTS[dialect]
        except KeyError:
            known = ", ".join(sorted(DIALECTS))
            raise ValueError(f"unknown dialect {dialect!r}; known dialects: {known}") from None
    framing = dialect.framing_for(request)
    events = framing.events(stream) if isinstance(stream, bytes) else tuple(stream)
    if not events:
        return [Violation("stream-empty", -1, "expected at least one event, found an empty body")]
    return dialect.check(request, events)


def lint_exchange(exchange: Exchange) -> list[Violation]:
    """Violations of a recorded interaction; only successful streams are judged."""
    request, response = exchange.request, exchange.response
    match = ROUTER.resolve(request.method, request.path)
    if match is None or not (200 <= response.status < 300 and match.dialect.is_stream(request)):
        return []
    dialect = match.dialect
    found: list[Violation] = []
    content_type = header(response.headers, "content-type")
    expected = dialect.framing_for(request).content_type
    if content_type is not None and not content_type.lower().startswith(expected):
        found.append(
            Violation(
                "content-type", -1, f"expected content-type {expected}, found {content_type!r}"
            )
        )
    return found + validate(dialect, response.body, request)


def lint_file(path: str | os.PathLike[str]) -> list[tuple[str, Violation]]:
    """(``file#index``, violation) for every interaction of a cassette file."""
    from mockserver import cassettes

    return [
        (exchange.source, violation)
        for exchange in cassettes.load(path)
        for violation in lint_exchange(exchange)
    ]
