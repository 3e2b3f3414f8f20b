"""Validation, off to the side of the flow: pure functions from bytes or events to
Violations. Never raises on bad streams; the caller decides what is fatal. Reads the
model, the framings and the dialects (and the cassette reader, to lint a file).

``validate`` is the public entry point for a stream; ``lint_exchange`` and ``lint_file``
judge recorded interactions, ``lint_path`` a cassette or a raw captured stream body.
``lint_each`` says, per interaction, whether it was checked at all (what ``tapedeck lint``
prints): an interaction whose route no dialect serves is *not checked*, never clean.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mockserver import cassettes
from mockserver.dialects import ROUTER
from mockserver.dialects import dialect as get_dialect
from mockserver.dialects.contract import Dialect
from mockserver.model import Event, Exchange, Request, Violation, header

GENERIC_RULES = {  # the rules of lint_exchange and validate beyond each dialect's RULES
    "stream-empty": "a successful streaming response carries at least one event",
    "content-type": "a successful stream is served with its framing's content type",
}


def validate(
    dialect: Dialect | str,
    stream: bytes | Sequence[Event],
    request: Request | dict[str, Any] | None = None,
) -> list[Violation]:
    """The protocol violations in a stream: raw body bytes, or events already decoded.

    ``request`` (when known) enables the rules that depend on what was asked, such as
    OpenAI's ``stream_options.include_usage``: a ``Request``, or the JSON body it sent (a
    dict, taken as sent to the dialect's main route; where the URL decides the framing, as
    for Gemini's JSON-array streams (asked without ``?alt=sse``), pass a ``Request``). An
    unknown dialect name raises ``UnknownDialectError`` listing the known ones.
    """
    if isinstance(dialect, str):
        dialect = get_dialect(dialect)
    if isinstance(request, dict):
        request = stream_request(dialect, body=request)
    framing = dialect.framing_for(request)
    events = framing.events(stream) if isinstance(stream, bytes) else tuple(stream)
    if not events:
        return [Violation("stream-empty", -1, "expected at least one event, found an empty body")]
    return dialect.check(request, events)


Outcome = Literal["checked", "without a stream", "not checked"]
CHECKED: Outcome = "checked"
"""A successful stream: its dialect's rules (and GENERIC_RULES) were applied."""
NOT_A_STREAM: Outcome = "without a stream"
"""A dialect serves it, but the answer is not a successful stream (not streamed, or an
error status): the rules judge streams only, so there was nothing to judge."""
NOT_CHECKED: Outcome = "not checked"
"""No dialect serves its route: nothing about it could be judged."""


@dataclass(frozen=True, slots=True)
class Linted:
    """What lint made of one interaction (or of one raw stream body)."""

    source: str
    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    reason: str = ""
    """Why it was not checked: ``no dialect serves POST /x``."""


def lint_one(exchange: Exchange) -> Linted:
    """One recorded interaction judged, or the reason it could not be."""
    request, response = exchange.request, exchange.response
    match = ROUTER.resolve(request.method, request.path)
    if match is None:
        reason = f"no dialect serves {request.method} {request.path}"
        return Linted(exchange.source, NOT_CHECKED, reason=reason)
    if not (200 <= response.status < 300 and match.dialect.is_stream(request)):
        return Linted(exchange.source, NOT_A_STREAM)
    return Linted(exchange.source, CHECKED, tuple(_lint_stream(match.dialect, exchange)))


def lint_exchange(exchange: Exchange) -> list[Violation]:
    """Violations of a recorded interaction; only successful streams are judged (see
    ``lint_one`` for whether it was judged at all)."""
    return list(lint_one(exchange).violations)


def _lint_stream(dialect: Dialect, exchange: Exchange) -> list[Violation]:
    request, response = exchange.request, exchange.response
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
    return _flat(lint_each(path))


def _flat(linted: Sequence[Linted]) -> list[tuple[str, Violation]]:
    return [(item.source, violation) for item in linted for violation in item.violations]


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
        dialect = get_dialect(dialect)
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


def lint_each(
    path: str | os.PathLike[str],
    dialect: Dialect | str | None = None,
    request: Request | None = None,
) -> list[Linted]:
    """One ``Linted`` per interaction of a cassette file; with ``dialect``, a file that is
    not a cassette is judged as one raw stream body captured from the wire (source: the
    path)."""
    if dialect is not None:
        data = Path(path).read_bytes()
        if not _CASSETTE.search(data):
            found = validate(dialect, data, request)
            return [Linted(str(path), CHECKED, tuple(found))]
    return [lint_one(exchange) for exchange in cassettes.load(path)]


def lint_path(
    path: str | os.PathLike[str],
    dialect: Dialect | str | None = None,
    request: Request | None = None,
) -> list[tuple[str, Violation]]:
    """(source, violation) for a cassette file or, with ``dialect``, a raw stream body."""
    return _flat(lint_each(path, dialect, request))
