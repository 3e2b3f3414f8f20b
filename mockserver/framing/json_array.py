"""JSON-array stream framing: one top-level JSON array sent a piece at a time (Gemini's
``:streamGenerateContent`` without ``alt=sse``: ``[{…}\\n,\\r\\n{…}\\n]``).

Same contract as ``sse``: ``b"".join(frames(body)) == body`` for any bytes, and a
``Decoder`` that yields the same events whatever the byte splits. A frame ends right after
the last byte of a top-level element (its closing brace, bracket or quote; a bare number or
literal ends at the byte that follows it), so an element is an event the moment it is
complete. The punctuation between elements leads the next frame (``\\n,\\r\\n{…}``); what
follows the last element (``\\n]``) is the last frame, whose event has no data. A body that
does not open with ``[`` is read as a run of top-level JSON values, one per frame.
"""

from __future__ import annotations

import re

from mockserver.model import Event, Framing

_WHITESPACE = frozenset(b" \t\r\n")
_SCALAR_END = frozenset(b' \t\r\n,:[]{}"')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH, _BRACKET = ord('"'), ord("\\"), ord("[")
_STRUCTURE = re.compile(rb'["\[\]{}]')
_IN_STRING = re.compile(rb'["\\]')
_LEAD = re.compile(r"\A[ \t\r\n]*[\[,]?[ \t\r\n]*")
_TAIL = re.compile(r"\A[ \t\r\n\]]*\Z")


class _Cutter:
    """Where elements end, found one byte at a time so that any split gives the same cuts.
    Inside an element it jumps from structural byte to structural byte (fast); between
    elements it walks byte by byte, as only punctuation and whitespace live there."""

    def __init__(self) -> None:
        self.base: int | None = None  # the depth of elements: 1 inside the array, else 0
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.scalar = False  # inside a bare number or literal at element depth

    def scan(self, data: bytes, origin: int) -> list[int]:
        """The cut positions (offsets from the start of the body) that ``data`` reveals;
        ``origin`` is the offset of ``data[0]``."""
        cuts: list[int] = []
        i, n = 0, len(data)
        while i < n:
            if self.in_string:
                if self.escaped:
                    self.escaped, i = False, i + 1
                    continue
                found = _IN_STRING.search(data, i)
                if found is None:
                    break
                i = found.start() + 1
                if data[i - 1] == _BACKSLASH:
                    self.escaped = True
                    continue
                self.in_string = False
                if self.depth == self.base:
                    cuts.append(origin + i)  # a string element ended
                continue
            if self.base is None:
                if data[i] in _WHITESPACE:
                    i += 1
                    continue
                self.base = 1 if data[i] == _BRACKET else 0
            if self.depth > self.base:
                found = _STRUCTURE.search(data, i)
                if found is None:
                    break
                i = found.start() + 1
                self.step(data[i - 1], origin + i, cuts)
                continue
            byte = data[i]
            if self.scalar:
                if byte not in _SCALAR_END:
                    i += 1
                    continue
                self.scalar = False
                cuts.append(origin + i)  # the byte after a bare value ends it
            if byte in _SCALAR_END:
                self.step(byte, origin + i + 1, cuts)
            elif self.depth == self.base:
                self.scalar = True
            i += 1
        return cuts

    def step(self, byte: int, after: int, cuts: list[int]) -> None:
        if byte == _QUOTE:
            self.in_string = True
        elif byte in _OPEN:
            self.depth += 1
        elif byte in _CLOSE:
            self.depth -= 1
            if self.depth == self.base:
                cuts.append(after)  # an object or array element closed


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for end in cuts:
        if start < end:
            out.append(body[start:end])
            start = end
    return out


def frames(body: bytes) -> tuple[bytes, ...]:
    """Cut ``body`` after each top-level element; the rest (``]``, or a truncated
    element) is the last frame. ``b"".join(frames(body)) == body`` for any bytes."""
    cuts = _Cutter().scan(body, 0)
    out = _cut(body, cuts)
    done = sum(map(len, out))
    if done < len(body):
        out.append(body[done:])
    return tuple(out)


def parse(frame: bytes) -> Event:
    """A frame as an Event whose ``data`` is the element's JSON text, without the array's
    punctuation around it; None for the closing frame (whitespace and ``]`` only)."""
    text = frame.decode("utf-8", errors="replace")
    rest = text[_LEAD.match(text).end() :]  # type: ignore[union-attr]  # always matches
    if _TAIL.match(rest):
        return Event(data=None, raw=frame)
    return Event(data=rest.rstrip(" \t\r\n"), raw=frame)


class Decoder:
    """Incremental decoder: ``feed`` bytes in any split, get each element once complete."""

    def __init__(self) -> None:
        self._cutter = _Cutter()
        self._buffer = b""
        self._start = 0  # offset of the buffer's first byte in the whole body
        self._seen = 0

    def feed(self, data: bytes) -> list[Event]:
        cuts = self._cutter.scan(data, self._seen)
        self._seen += len(data)
        self._buffer += data
        events = [parse(frame) for frame in _cut(self._buffer, [c - self._start for c in cuts])]
        if cuts:
            self._buffer = self._buffer[cuts[-1] - self._start :]
            self._start = cuts[-1]
        return events

    def close(self) -> list[Event]:
        """End of stream: whatever is left (the closing ``]``, or a truncated element)."""
        rest, self._buffer = self._buffer, b""
        self._cutter, self._start, self._seen = _Cutter(), 0, 0
        return [parse(rest)] if rest else []


def decode(body: bytes) -> tuple[Event, ...]:
    """All events of a whole body."""
    return tuple(parse(frame) for frame in frames(body))


JSON_ARRAY = Framing(
    name="json_array",
    content_type="application/json",
    frames=frames,
    parse=parse,
    decoder=Decoder,
)
