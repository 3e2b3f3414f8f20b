"""Validation, off to the side of the flow: pure functions from bytes or events to
Violations. Never raises on bad streams; the caller decides what is fatal.

``validate`` is the public entry point for a stream; ``lint_exchange`` and ``lint_file``
judge recorded interactions, ``lint_path`` a cassette or a raw captured stream body (what
``tapedeck lint`` prints).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mockserver.dialects import DIALECTS, ROUTER
from mockserver.dialects.contract import Dialect
from mockserver.model import Event, Exchange, Request, Violation, header

GENERIC_RULES = {  # the rules of lint_exchange and validate beyond each dialect's RULES
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


# A cassette names its interactions at the start of a line (YAML) or as a JSON key; a raw
# SSE or NDJSON body never does, since its lines start with a field name or a JSON object.
_CASSETTE = re.compile(rb'^\s*(?:\{\s*)?"?interactions"?\s*:', re.MULTILINE)


def stream_request(
    dialect: Dialect | str, include_usage: bool | None = None, body: Any = None
) -> Request | None:
    """The request a raw stream answered, as far as the caller knows it: ``body`` (the
    request JSON) and/or OpenAI's ``stream_options.include_usage``. None when neither is
    given: the rules that depend on the request are then not applied."""
    if isinstance(dialect, str):
        dialect = DIALECTS[dialect]
    if body is None and include_usage is None:
        return None
    fields: dict[str, Any] = {"stream": True, **(body if isinstance(body, dict) else {})}
    if include_usage is not None:
        options = fields.get("stream_options")
        fields["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": include_usage,
        }
    # The dialect's first fixed route (no placeholders) names the endpoint.
    path = next((r.pattern for r in dialect.routes if "{" not in r.pattern), "/")
    return Request("POST", path, body=json.dumps(fields).encode(), json=fields)


def lint_path(
    path: str | os.PathLike[str],
    dialect: Dialect | str | None = None,
    request: Request | None = None,
) -> list[tuple[str, Violation]]:
    """(source, violation) for a cassette file; with ``dialect``, a file that is not a
    cassette is judged as a raw stream body captured from the wire (source: the path)."""
    if dialect is not None:
        data = Path(path).read_bytes()
        if not _CASSETTE.search(data):
            return [(str(path), violation) for violation in validate(dialect, data, request)]
    return lint_file(path)
