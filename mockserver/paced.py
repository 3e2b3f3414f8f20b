"""A paced stream on the wire: the status line and headers at their deadline (the app
sleeps until then), then the server's ``Pacer`` writes each event at its own.

Where it sits: after the pacer and the index, before the app, whose ``serve`` hands a paced
entry here. The handler returns as soon as the headers are out, with a ``PacedResponse``:
aiohttp's closing ``write_eof`` is what waits for the pacer, so the handler's frames and
the request they hold (its body, its parsed JSON) are gone while the stream plays; an
open paced stream then costs about what a connection costs in aiohttp itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from aiohttp import HttpVersion11, web
from aiohttp.http_writer import StreamWriter

from mockserver.index import Entry
from mockserver.pacer import Pacer
from mockserver.timing import Schedule

log = logging.getLogger("tapedeck")


class PacedResponse(web.StreamResponse):
    """A stream whose events the pacer writes; its end waits for the last of them."""

    def __init__(self, entry: Entry) -> None:
        response = entry.exchange.response
        super().__init__(
            status=response.status, reason=response.reason or None, headers=entry.headers
        )
        self.source = entry.source
        self.played: asyncio.Future[bool] | None = None
        """True once every event is written, False when the client went away first."""

    async def write_eof(self, data: bytes = b"") -> None:
        if self.played is None or not await self.played:
            log.info("client went away during %s", self.source)
            raise ConnectionResetError(f"the client went away during {self.source}")
        await super().write_eof(data)


async def serve_paced(
    http: web.Request, entry: Entry, pacer: Pacer, schedule: Schedule, arrived: float
) -> web.StreamResponse:
    """The headers now, then ``entry``'s events at ``arrived`` + their offsets: the chunks
    of ``entry.wire`` under HTTP/1.1, the frames as they are under HTTP/1.0 (whose body
    ends when the connection closes)."""
    stream = PacedResponse(entry)
    chunked = http.version >= HttpVersion11
    if chunked:
        stream.enable_chunked_encoding()
    try:
        writer = await stream.prepare(http)  # a StreamResponse sends its headers at once
    except ConnectionError:
        return stream  # played stays None: its end reports the client gone
    transport = http.transport
    if transport is None or transport.is_closing():
        return stream
    assert isinstance(writer, StreamWriter)
    # uvloop's transports write like asyncio's without deriving from its classes.
    writable = cast(asyncio.WriteTransport, transport)
    if chunked:
        assert writer.chunked
        writer.chunked = False  # the pacer writes the chunk-coded bytes of entry.wire
    wire = entry.wire if chunked else None
    stream.played = pacer.play(writable, entry.frames, schedule, arrived, wire)
    return stream
