"""Newline-delimited JSON framing (Ollama's native API): one event per line.

Same contract as ``sse``: ``b"".join(frames(body)) == body``, and a ``Decoder`` that yields
the same events whatever the byte splits. A line ends at LF; a CR before it stays part of
the line's bytes (and is stripped from ``data``), since NDJSON writers differ there.
"""

from __future__ import annotations

from mockserver.model import Event, Framing


def frames(body: bytes) -> tuple[bytes, ...]:
    """One frame per line, each keeping its LF; a last line without LF is a frame too."""
    return _split_lf(body)


def _split_lf(body: bytes) -> tuple[bytes, ...]:
    # Not bytes.splitlines: it also cuts at a bare CR, and NDJSON lines end at LF only.
    parts = body.split(b"\n")
    out = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return tuple(out)


def parse(frame: bytes) -> Event:
    """A line as an Event whose ``data`` is the line without its terminator."""
    return Event(data=frame.decode("utf-8", errors="replace").rstrip("\r\n"), raw=frame)


class Decoder:
    """Incremental NDJSON decoder."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        head, sep, rest = self._buffer.rpartition(b"\n")
        if not sep:
            return []
        self._buffer = rest
        return [parse(frame) for frame in _split_lf(head + sep)]

    def close(self) -> list[Event]:
        rest, self._buffer = self._buffer, b""
        return [parse(rest)] if rest else []


NDJSON = Framing(
    name="ndjson",
    content_type="application/x-ndjson",
    frames=frames,
    parse=parse,
    decoder=Decoder,
)
