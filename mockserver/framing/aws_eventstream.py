"""AWS event-stream framing (``application/vnd.amazon.eventstream``), as Amazon Bedrock
streams ``converse-stream`` and ``invoke-with-response-stream`` answers.

A message is binary and length-prefixed, every integer big-endian::

    [total length u32][headers length u32][prelude CRC32 u32][headers][payload][message CRC32 u32]

The prelude CRC covers the first 8 bytes, the message CRC every byte before it. A header is
``[name length u8][name][type u8][value]``; Bedrock only sends strings (type 7, a u16
length then UTF-8), but every type of the spec decodes.

Same contract as ``sse``: ``frames`` cuts a body at message boundaries without changing a
byte (``b"".join(frames(body)) == body`` for any bytes), and ``Decoder`` gives the same
events whatever the byte splits. A length is trusted only under a good prelude CRC; bytes
that do not make a whole message (a truncated tail, garbage, a broken prelude) are one
last frame. ``parse`` gives an Event whose ``event`` is ``:event-type`` (``:exception-type``
for an exception, ``:error-code`` for an error), whose ``data`` is the payload as UTF-8
text, and whose ``comments`` are the headers as ``name=value`` strings, followed by a
``!kind detail`` entry when the frame is broken; ``headers`` and ``problem`` read them back.
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from collections.abc import Iterable

from mockserver.model import Event, Framing

PRELUDE = 12  # total length, headers length, prelude CRC
OVERHEAD = PRELUDE + 4  # the message CRC closes every message
PROBLEMS = ("truncated", "prelude-crc", "prelude-length", "message-crc", "headers")
"""The kinds of broken frame ``problem`` reports, in the order they are looked for."""


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _length(body: bytes, start: int) -> int | None:
    """The total length of the message at ``start`` when its prelude can be trusted."""
    if len(body) - start < PRELUDE:
        return None
    total: int
    total, headers_length, crc = struct.unpack_from(">III", body, start)
    if crc != _crc(body[start : start + 8]) or total < OVERHEAD + headers_length:
        return None
    return total


def _cut(body: bytes) -> tuple[list[bytes], int, bool]:
    """Whole messages from the start of ``body``; where they end; whether what follows can
    never become a message (its prelude is broken)."""
    out: list[bytes] = []
    start = 0
    while start < len(body):
        total = _length(body, start)
        if total is None:
            return out, start, len(body) - start >= PRELUDE
        if start + total > len(body):
            break
        out.append(body[start : start + total])
        start += total
    return out, start, False


def frames(body: bytes) -> tuple[bytes, ...]:
    """One frame per message; whatever trails the last whole message is one more frame."""
    out, end, _ = _cut(body)
    if end < len(body):
        out.append(body[end:])
    return tuple(out)


def encode(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """One message with string headers (type 7), CRCs computed: what Bedrock sends."""
    block = b""
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode()
        block += struct.pack(">B", len(raw_name)) + raw_name
        block += struct.pack(">BH", 7, len(raw_value)) + raw_value
    total = OVERHEAD + len(block) + len(payload)
    prelude = struct.pack(">II", total, len(block))
    head = prelude + struct.pack(">I", _crc(prelude)) + block + payload
    return head + struct.pack(">I", _crc(head))


def _value(kind: int, data: bytes, at: int) -> tuple[str, int]:
    """A header value as text, and where the next header starts; IndexError/ValueError/
    struct.error when the bytes do not hold one."""
    if kind in (0, 1):
        return ("true" if kind == 0 else "false"), at
    fixed = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}
    if kind in fixed:
        (number,) = struct.unpack_from(fixed[kind], data, at)
        return str(number), at + struct.calcsize(fixed[kind])
    if kind == 9:
        raw = data[at : at + 16]
        if len(raw) != 16:
            raise ValueError("a UUID needs 16 bytes")
        return str(uuid.UUID(bytes=raw)), at + 16
    if kind in (6, 7):
        (size,) = struct.unpack_from(">H", data, at)
        raw = data[at + 2 : at + 2 + size]
        if len(raw) != size:
            raise ValueError("the value runs past the header block")
        text = raw.decode() if kind == 7 else base64.b64encode(raw).decode()
        return text, at + 2 + size
    raise ValueError(f"unknown header value type {kind}")


def _headers(block: bytes) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(block):
        size = block[at]
        name = block[at + 1 : at + 1 + size]
        if len(name) != size or at + 1 + size >= len(block):
            raise ValueError("a header name runs past the header block")
        value, at = _value(block[at + 1 + size], block, at + 2 + size)
        found.append((name.decode(), value))
    return found


def _broken_prelude(frame: bytes) -> str | None:
    """Why the prelude does not describe exactly this frame, or None when it does."""
    if len(frame) < PRELUDE:
        return f"!truncated {len(frame)} bytes, less than a 12-byte prelude"
    total, headers_length, stated = struct.unpack_from(">III", frame)
    if stated != (computed := _crc(frame[:8])):
        return f"!prelude-crc CRC32 {stated:#010x} stated, {computed:#010x} computed"
    if total < OVERHEAD + headers_length:
        return f"!prelude-length {total} bytes cannot hold {headers_length} bytes of headers"
    if total > len(frame):
        return f"!truncated {len(frame)} of the {total} bytes the prelude states"
    if total < len(frame):
        return f"!prelude-length {total} bytes stated, the frame has {len(frame)}"
    return None


def parse(frame: bytes) -> Event:
    """One frame as an Event (see the module docstring); never raises."""
    if (unusable := _broken_prelude(frame)) is not None:
        return Event(data=None, comments=(unusable,), raw=frame)
    (headers_length,) = struct.unpack_from(">I", frame, 4)
    block = frame[PRELUDE : PRELUDE + headers_length]
    payload = frame[PRELUDE + headers_length : -4]
    broken: list[str] = []  # a bad CRC first: it explains any header damage after it
    (stated,) = struct.unpack_from(">I", frame, len(frame) - 4)
    if stated != (computed := _crc(frame[:-4])):
        broken.append(f"!message-crc CRC32 {stated:#010x} stated, {computed:#010x} computed")
    try:
        pairs = _headers(block)
    except (IndexError, ValueError, struct.error) as exc:
        pairs = []
        broken.append(f"!headers {exc}")
    comments = [f"{name}={value}" for name, value in pairs] + broken
    named = dict(pairs)
    kind = named.get(":message-type")
    event = {"exception": ":exception-type", "error": ":error-code"}.get(kind or "", ":event-type")
    return Event(
        data=payload.decode("utf-8", errors="replace"),
        event=named.get(event),
        comments=tuple(comments),
        raw=frame,
    )


def headers(event: Event) -> dict[str, str]:
    """The headers of a parsed frame, by name."""
    pairs = (c.partition("=") for c in event.comments if not c.startswith("!"))
    return {name: value for name, _, value in pairs}


def problem(event: Event) -> tuple[str, str] | None:
    """What is broken in a frame (a kind of PROBLEMS, and the evidence), or None."""
    for comment in event.comments:
        if comment.startswith("!"):
            kind, _, detail = comment[1:].partition(" ")
            return kind, detail
    return None


class Decoder:
    """Incremental decoder: ``feed`` bytes in any split, get each message once whole. Bytes
    after a broken prelude can never form a message: they wait for ``close``, as one frame."""

    def __init__(self) -> None:
        self._buffer = b""
        self._stuck = False

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        if self._stuck:
            return []
        whole, end, self._stuck = _cut(self._buffer)
        self._buffer = self._buffer[end:]
        return [parse(frame) for frame in whole]

    def close(self) -> list[Event]:
        rest, self._buffer, self._stuck = self._buffer, b"", False
        return [parse(rest)] if rest else []


def decode(body: bytes) -> tuple[Event, ...]:
    """All events of a whole body."""
    return tuple(parse(frame) for frame in frames(body))


AWS_EVENTSTREAM = Framing(
    name="aws_eventstream",
    content_type="application/vnd.amazon.eventstream",
    frames=frames,
    parse=parse,
    decoder=Decoder,
)
