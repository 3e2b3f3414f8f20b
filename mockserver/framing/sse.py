"""Server-Sent Events framing, anchored in the WHATWG spec (HTML, "9.2.6 Interpreting an
event stream").

Two layers, both pure: ``frames`` cuts a whole body at event boundaries without changing
a byte, and ``Decoder`` turns bytes arriving in any split into the same events. A boundary
is a blank line: a line terminator (CRLF, LF or CR) directly followed by another. A CR at
the very end of the data seen so far may be the first half of a CRLF, so the decoder
waits for the next byte (or the end) before deciding.
"""

from __future__ import annotations

import re

from mockserver.model import Event, Framing

_TERMINATOR = rb"(?:\r\n|\r(?!\n)|\n)"
_BOUNDARY = re.compile(_TERMINATOR + _TERMINATOR)
_LINE = re.compile(r"\r\n|\r|\n")


def frames(body: bytes) -> tuple[bytes, ...]:
    """Cut ``body`` after each blank line. ``b"".join(frames(body)) == body`` for any bytes.

    Trailing bytes without a final blank line (a truncated stream) are the last frame.
    """
    cuts = [match.end() for match in _BOUNDARY.finditer(body)]
    out: list[bytes] = []
    start = 0
    for end in cuts:
        out.append(body[start:end])
        start = end
    if start < len(body):
        out.append(body[start:])
    return tuple(out)


def parse(frame: bytes) -> Event:
    """One frame (the bytes of one event block, blank line included) as an Event."""
    data: list[str] = []
    event: str | None = None
    event_id: str | None = None
    retry: int | None = None
    comments: list[str] = []
    text = frame.decode("utf-8", errors="replace")
    for line in _LINE.split(text):
        if not line:
            continue
        if line.startswith(":"):
            comments.append(line[1:].removeprefix(" "))
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            if "\0" not in value:
                event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    return Event(
        data="\n".join(data) if data else None,
        event=event,
        id=event_id,
        retry=retry,
        comments=tuple(comments),
        raw=frame,
    )


def is_blank(frame: bytes) -> bool:
    """A frame that holds nothing but line terminators (leading blank lines)."""
    return not frame.strip(b"\r\n")


class Decoder:
    """Incremental SSE decoder: ``feed`` bytes in any split, get each event once complete.

    Frames that hold only blank lines are dropped, as the spec's dispatch would.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._scanned = 0

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        # A boundary is at most 4 bytes long, so one that ends in the new data starts at
        # most 3 bytes before it; rescanning from there keeps feeding linear.
        search_from = max(0, self._scanned - 3)
        start = 0
        for match in _BOUNDARY.finditer(self._buffer, search_from):
            end = match.end()
            if end == len(self._buffer) and self._buffer.endswith(b"\r"):
                break  # the CR may pair with an LF still in flight
            if match.start() < start:
                continue
            self._emit(self._buffer[start:end], events)
            start = end
        self._buffer = self._buffer[start:]
        self._scanned = len(self._buffer)
        return events

    def close(self) -> list[Event]:
        """End of stream: whatever is left is the last (possibly unterminated) event."""
        events: list[Event] = []
        rest, self._buffer, self._scanned = self._buffer, b"", 0
        for frame in frames(rest):
            self._emit(frame, events)
        return events

    @staticmethod
    def _emit(frame: bytes, events: list[Event]) -> None:
        if not is_blank(frame):
            events.append(parse(frame))


def decode(body: bytes) -> tuple[Event, ...]:
    """All events of a whole body (blank-only frames dropped)."""
    return tuple(parse(frame) for frame in frames(body) if not is_blank(frame))


SSE = Framing(
    name="sse",
    content_type="text/event-stream",
    frames=frames,
    parse=parse,
    decoder=Decoder,
)
