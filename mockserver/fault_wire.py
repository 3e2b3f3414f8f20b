"""Faults on the wire: an answer (recorded or synthesized) served with the fault a request
was given (faults.py chose it).

    app.answer -> Faults.choose -> status: error_answer (no recording is used)
                               \\-> any other kind: Entry -> serve_faulted

The recorded bytes go out exactly up to the fault point, one HTTP chunk per event. A
non-streamed answer counts as two events, the halves of its body (so ``truncate`` and
``reset`` cut it in the middle, ``stall:before=1`` pauses mid-body, ``corrupt`` breaks one
half); ``error`` on it is the dialect's error answer with status 500. A fault point past
the last event: ``reset`` resets instead of ending the body, ``stall`` pauses before the
end, ``truncate`` and ``corrupt`` change nothing, ``error`` comes before the last event.
Nothing here names a provider: the dialect supplies its error shapes, the framing its
frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import random
import socket
import struct
from dataclasses import replace

from aiohttp import web

from mockserver.dialects.contract import Dialect
from mockserver.faults import HEADER, FaultSpec, parse
from mockserver.framing.http import FRAMING_HEADERS
from mockserver.index import Entry
from mockserver.model import Request, Response, Script
from mockserver.timing import Schedule, sleep_until

log = logging.getLogger("tapedeck")

DEFAULT_MESSAGE = "Tapedeck injected this fault (x-tapedeck-fault)."
SIOCOUTQ = 0x5411  # Linux: bytes in a TCP socket's send queue (= TIOCOUTQ)
BINARY_FRAMINGS = frozenset({"aws_eventstream"})
"""Framings whose frames carry a checksum: corrupting one breaks the checksum."""


def take(request: Request) -> tuple[Request, FaultSpec | None]:
    """The request without its fault header (never forwarded, matched or saved), and the
    spec the header asked for; FaultSpecError when it cannot be read."""
    asked = [value for name, value in request.headers if name.lower() == HEADER]
    if not asked:
        return request, None
    headers = tuple((name, value) for name, value in request.headers if name.lower() != HEADER)
    return replace(request, headers=headers), parse(asked[0])


def error_answer(dialect: Dialect, request: Request, fault: FaultSpec) -> web.Response:
    """``status`` (and ``error`` on a non-streamed answer): the dialect's own error, with
    its rate-limit headers on a 429, before any byte of an answer."""
    if fault.kind == "status":
        code, kind, message = fault.int("code"), "", ""
    else:
        code, kind, message = 500, fault.str("type"), fault.str("message")
    retry_after = fault.float("retry_after") if fault.kind == "status" else -1.0
    extra = () if retry_after < 0 else (("retry-after", f"{retry_after:g}"),)
    script = Script(
        status=code,
        error_message=message or DEFAULT_MESSAGE,
        error_kind=kind or None,
        headers=extra,
    )
    response = dialect.synthesize(request, script)
    if response.status != code:  # a dialect whose synthesizer knows no error scripts
        response = dialect.error(code, script.error_message, kind or dialect.default_error_kind)
        response = Response(response.status, response.headers + extra, response.body)
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS)
    return web.Response(
        status=response.status, reason=response.reason or None, headers=headers,
        body=response.body,
    )  # fmt: skip


def events_of(entry: Entry) -> list[bytes]:
    """What the fault's event numbers count: the frames of a stream, or the two halves of
    a non-streamed body."""
    if entry.streaming:
        return list(entry.frames)
    body = entry.exchange.response.body
    return [body[: len(body) // 2], body[len(body) // 2 :]]


def garble(frame: bytes, framing: str) -> bytes:
    """``frame`` made invalid in its framing: a checksummed frame gets one payload bit
    flipped (its message CRC no longer matches); a text frame keeps its line ending but
    loses the second half of its text (broken JSON, cut on a character boundary)."""
    if framing in BINARY_FRAMINGS and len(frame) > 4:
        broken = bytearray(frame)
        broken[-5] ^= 0x01
        return bytes(broken)
    text = frame.rstrip(b"\r\n")
    cut = len(text) // 2
    while 0 < cut < len(text) and text[cut] & 0xC0 == 0x80:
        cut -= 1
    return text[:cut] + frame[len(text) :] if text else b"\x00"


def pieces(frame: bytes, draws: random.Random) -> list[bytes]:
    """``frame`` cut at 1 to 3 random offsets (fewer when it is too short to cut)."""
    if len(frame) < 2:
        return [frame]
    cuts = sorted(draws.sample(range(1, len(frame)), min(len(frame) - 1, draws.randint(1, 3))))
    return [frame[a:b] for a, b in zip([0, *cuts], [*cuts, len(frame)], strict=True)]


async def serve_faulted(
    http: web.Request,
    entry: Entry,
    fault: FaultSpec,
    schedule: Schedule | None,
    arrived: float,
) -> web.StreamResponse:
    """Serve ``entry`` with ``fault`` (any kind but ``status``)."""
    request = entry.exchange.request
    if fault.kind == "error" and not entry.streaming:
        return error_answer(entry.dialect, request, fault)
    events = events_of(entry)
    stop = len(events)  # the events sent before the fault point
    if fault.kind in ("reset", "truncate"):
        stop = min(fault.int("after"), len(events))
    elif fault.kind == "error":  # before the last event at the latest: it ends the stream
        stop = min(fault.int("after"), max(len(events) - 1, 0))
    elif fault.kind == "corrupt" and fault.int("at") < len(events):
        at = fault.int("at")
        framing = entry.dialect.framing_for(request).name if entry.streaming else "json"
        events[at] = garble(events[at], framing)
    draws = random.Random(fault.seed)
    stall = fault.int("before") if fault.kind == "stall" else -1
    gap = fault.float("gap") if fault.kind == "drip" else 0.0
    if fault.kind == "reset" and stop == 0:
        return _reset(http, None)
    if stall == 0:
        await asyncio.sleep(fault.float("seconds"))
    response = entry.exchange.response
    stream = web.StreamResponse(
        status=response.status, reason=response.reason or None, headers=entry.headers
    )
    if not entry.streaming:  # truncated: a clean end after fewer bytes
        stream.content_length = sum(map(len, events[:stop] if fault.kind == "truncate" else events))
    try:
        await stream.prepare(http)
        for number, event in enumerate(events[:stop]):
            if schedule is not None and entry.streaming and number < schedule.events:
                await sleep_until(arrived + schedule.at(number))
            if number == stall:
                await asyncio.sleep(fault.float("seconds"))
                arrived += fault.float("seconds")  # a paced stream goes on at its pace
            if gap:
                await asyncio.sleep(gap)
            for piece in pieces(event, draws) if fault.kind == "split" else [event]:
                if piece:
                    await stream.write(piece)  # one HTTP chunk each
        if stall >= len(events):  # no such event: the pause comes before the end
            await asyncio.sleep(fault.float("seconds"))
        if fault.kind == "reset":
            return await reset_connection(http, stream)
        if fault.kind == "error":
            in_band = _in_band(entry.dialect, request, fault, stop)
            for frame in entry.dialect.framing_for(request).frames(in_band):
                await stream.write(frame)  # an event a chunk, as ever
        await stream.write_eof()
    except ConnectionError:
        log.info("client went away during %s (fault %s)", entry.source, fault)
    return stream


def _in_band(dialect: Dialect, request: Request, fault: FaultSpec, sent: int) -> bytes:
    """The dialect's own mid-stream error (and whatever ends its stream after one)."""
    make = dialect.midstream_error
    kind, message = fault.str("type"), fault.str("message") or DEFAULT_MESSAGE
    if make is None:  # every registered dialect has one; a plugin's might not
        return b"data: " + message.encode() + b"\n\n"
    return make(sent, kind, message, request)


async def reset_connection(
    http: web.Request, stream: web.StreamResponse | None = None
) -> web.StreamResponse:
    """A TCP reset once every byte sent so far has reached the client: an RST makes the
    kernel drop what it still holds, which would make the prefix on the wire shorter."""
    transport = http.transport
    if transport is not None and not transport.is_closing():
        await _delivered(transport)
    return _reset(http, stream)


async def _delivered(transport: asyncio.BaseTransport, bound: float = 2.0) -> None:
    """Wait (``bound`` seconds at most: a client that stopped reading) until neither our
    buffer nor the kernel (Linux's SIOCOUTQ) holds a byte the client has not acknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    sock = transport.get_extra_info("socket")
    while loop.time() < deadline:
        buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0]
        except (OSError, AttributeError, ValueError):
            queued = 0  # not Linux, or not a socket: nothing more to ask
        if buffered == 0 and queued == 0:
            return
        await asyncio.sleep(0.001)  # a slow reader: its window opens as it reads


def _reset(http: web.Request, stream: web.StreamResponse | None) -> web.StreamResponse:
    """A TCP reset (RST, not a FIN): linger 0, then close."""
    transport = http.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return stream if stream is not None else web.Response(status=500)
