"""The values that flow through Tapedeck: frozen, slotted, built once and shared.

The contract a protocol fulfils (``Dialect``) lives with the dialects, in
``mockserver.dialects.contract``.

Leftmost module of the flow (see ARCHITECTURE.md): it imports nothing of ours, and every
other module speaks in these values. Nothing here does I/O or knows about aiohttp.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Headers = tuple[tuple[str, str], ...]
"""Header pairs in recorded order; names keep their recorded case, one pair per value."""

Identity = tuple[tuple[str, str], ...]
"""The request fields that decide a match, as (field, canonical JSON) pairs, sorted."""


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header, looked up case-insensitively."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def canonical_json(value: Any) -> str:
    """One spelling per JSON value: sorted keys, no spaces, integral floats as ints.

    SDKs differ in key order, whitespace and ``0`` vs ``0.0``; none of that changes what a
    provider answers, so none of it may change a match.
    """
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normalize(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as a dialect sees it.

    ``json`` is the parsed body, or None when the body is empty or not JSON. ``origin``
    (``https://api.openai.com``) is kept only to write cassettes back: it never takes part
    in matching, since clients point at us.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Headers = ()
    body: bytes = b""
    json: Any = None
    origin: str = ""
    fault: str = ""
    """The fault Tapedeck applied to the answer (its spec, as ``x-tapedeck-fault`` or
    ``--fault`` gave it); "" when none. Never written to a cassette."""

    def query_value(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def summary(self) -> str:
        """One line naming the request, for messages."""
        model = self.json.get("model") if isinstance(self.json, dict) else None
        query = "&".join(f"{k}={v}" for k, v in self.query)
        where = f"{self.path}?{query}" if query else self.path
        return f"{self.method} {where}" + (f" (model {model!r})" if model else "")


@dataclass(frozen=True, slots=True)
class Response:
    """A response as recorded. ``body`` is always the decoded (identity-encoded) bytes."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Timing:
    """When things arrived while recording, in seconds from the request being sent."""

    headers: float
    events: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One recorded interaction. ``source`` names it in messages: ``file.yaml#index``."""

    request: Request
    response: Response
    source: str = ""
    timing: Timing | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a stream: an SSE block, or one NDJSON line (then only ``data``).

    ``data`` is None for a block without any ``data:`` line (a comment-only keep-alive, or
    an ``event:``-only block). ``raw`` holds the exact bytes of the frame.
    """

    data: str | None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comments: tuple[str, ...] = ()
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken protocol rule. ``rule`` is a stable id; ``index`` the event (-1: whole stream)."""

    rule: str
    index: int
    message: str

    def __str__(self) -> str:
        where = "stream" if self.index < 0 else f"event {self.index}"
        return f"{self.rule} at {where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call a synthesized answer makes. ``arguments`` is JSON text."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Script:
    """What a synthesized answer says; the dialect decides how it looks on the wire.

    Unset fields are derived from the request: ``finish_reason`` from the content,
    ``prompt_tokens`` from the request's size, ``n`` from the request. A ``status`` of 400
    or more makes the answer a provider-shaped error carrying ``error_message``.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    chunk_size: int = 4
    n: int | None = None
    seed: int = 0
    status: int = 200
    error_message: str = "The server had an error while processing your request."
    error_kind: str | None = None
    headers: Headers = ()

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"Script.chunk_size must be at least 1, got {self.chunk_size}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"Script.n must be at least 1, got {self.n}")
        for call in self.tool_calls:
            try:
                json.loads(call.arguments)
            except ValueError as exc:
                raise ValueError(
                    f"ToolCall {call.name!r} arguments must be JSON text, got {call.arguments!r}"
                ) from exc


class Decoder(Protocol):
    """An incremental decoder: bytes in any split, the same events out."""

    def feed(self, data: bytes) -> list[Event]: ...

    def close(self) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class Framing:
    """How a protocol cuts a body into events. ``b"".join(frames(body)) == body`` always."""

    name: str
    content_type: str
    frames: Callable[[bytes], tuple[bytes, ...]]
    parse: Callable[[bytes], Event]
    decoder: Callable[[], Decoder]

    def events(self, body: bytes) -> tuple[Event, ...]:
        return tuple(self.parse(frame) for frame in self.frames(body))


def identity_from(fields: Iterable[tuple[str, Any]]) -> Identity:
    """Build an Identity from (field, value) pairs; absent (None) values are dropped."""
    return tuple(
        sorted((name, canonical_json(value)) for name, value in fields if value is not None)
    )
