"""Each connection under the server's limits: aiohttp's protocol with what it lacks.

Where it sits: after the app, under ``serving`` (which runs the app through these). aiohttp
times nothing while a request's head arrives, caps no connection count, and answers broken
HTTP in text/plain with a traceback in the log. ``GuardedServer`` and ``GuardedHandler`` add:

- a head deadline: ``read_timeout`` from the connection opening, or from the first byte
  of the next request on a kept-alive one, to the end of the head; past it (checked by one
  sweep a server, up to a second late), 408 when part of a head came, then the connection
  closes. The body has its own deadline (``intake.read_body``);
- a connection limit: at ``max_connections`` the connection that has waited longest for
  a request head (an idle kept-alive one, or a trickling one) is closed to make room; when
  every connection is mid-request the new one gets 503 and is closed, and accept() goes on;
- errors in the provider's shape: a request broken before routing (bad request line or
  headers, bad chunked framing, a coding not installed, a target no route can match) is
  answered in the shape of the dialect its request line names, else Tapedeck's own
  (``own_error``), with one line in the log and no traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError

from mockserver.app import NO_RETRY, reply, unknown_route
from mockserver.dialects import ROUTER
from mockserver.framing.http import FRAMING_HEADERS
from mockserver.intake import DECODED, own_error
from mockserver.model import Response
from mockserver.server_limits import ServerLimits

log = logging.getLogger("tapedeck")

_LINE = 8190  # aiohttp's own limit on a request line
_GAVE_UP = (408, 503)  # answers sent before the body was whole, not worth draining it for


class GuardedServer(web.Server):
    """aiohttp's ``Server`` making ``GuardedHandler`` protocols; it counts the open
    connections, keeps those waiting for a request head (longest first), and sweeps them
    for heads past their deadline."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ServerLimits,
        request_factory: Any,
        handler_cancellation: bool = False,
        **handler_kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=self._head_received,
            handler_cancellation=handler_cancellation,
            **handler_kwargs,
        )
        self.limits = limits
        self.open = 0
        self.waiting: dict[GuardedHandler, None] = {}  # insertion order: longest first
        self._factory: Callable[..., web.BaseRequest] = request_factory
        self._handler_kwargs = handler_kwargs
        self._sweep_at: asyncio.TimerHandle | None = None
        # One timer a server, not one a request: a timer costs more than the rest of
        # the guard on a kept-alive connection.
        self._tick = min(1.0, limits.read_timeout / 4)

    def __call__(self) -> GuardedHandler:
        loop = asyncio.get_running_loop()
        if self._sweep_at is None:
            self._sweep_at = loop.call_later(self._tick, self._sweep)
        return GuardedHandler(self, loop=loop, limits=self.limits, **self._handler_kwargs)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        late = loop.time() - self.limits.read_timeout
        for handler in [h for h in self.waiting if h.head_since is not None]:
            if handler.head_since is not None and handler.head_since <= late:
                why = f"no complete request head within {self.limits.read_timeout:g} s"
                handler.give_up(why)
        self._sweep_at = loop.call_later(self._tick, self._sweep) if self.open else None

    def _head_received(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # aiohttp calls the request factory once per head parsed (or broken): the end of
        # the head deadline, whatever follows.
        if isinstance(protocol, GuardedHandler):
            protocol.head_received(payload)
        return self._factory(message, payload, protocol, writer, task)

    def make_room(self) -> bool:
        """Close the connection that has waited longest for a head; False if none is."""
        if not self.waiting:
            return False
        next(iter(self.waiting)).give_up("the server needed room for a new connection")
        return True


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection protocol with a head deadline, a place in the connection
    limit, and provider-shaped answers to broken HTTP (see the module docstring)."""

    def __init__(
        self,
        server: GuardedServer,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: ServerLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(server, loop=loop, **kwargs)
        self.guard = server
        self.limits = limits
        self.clock = loop.time
        self.counted = False
        self.awaiting_head = True
        self.head_since: float | None = None  # when the head on its way began, if it has
        self.head = b""  # its first line, as far as it came: the request line
        self.body: StreamReader | None = None  # the body of the request being handled

    # --- the connection limit -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.guard.open >= self.limits.max_connections and not self.guard.make_room():
            self._refuse(transport)
            return
        self.guard.open += 1
        self.counted = True
        super().connection_made(transport)
        self._wait_for_head(since=self.clock())

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        message = (
            f"Tapedeck is at its limit of {self.limits.max_connections} open connections, "
            "each in the middle of a request. Way out: retry shortly, send fewer requests "
            "at once, or raise the limit (tapedeck serve --max-connections N)."
        )
        log.warning("refused a connection: %d open, all busy", self.guard.open)
        error = own_error(503, message, "too_many_connections", kind="api_error", retry=True)
        # uvloop's transports write like asyncio's without deriving from its classes.
        transport = cast(asyncio.WriteTransport, transport)
        transport.write(_wire(error))
        # Half-close, then close soon: closing with the client's request unread would
        # reset the connection and could destroy the 503 before the client reads it.
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.counted:
            return  # refused: aiohttp never took this connection
        self.counted = False
        self.guard.open -= 1
        self.guard.waiting.pop(self, None)
        super().connection_lost(exc)

    # --- the head deadline --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.counted:
            return  # refused: the 503 is on its way, the request is not read
        if not data:  # aiohttp's own call, to parse what it had buffered
            super().data_received(data)
            return
        if self.awaiting_head:
            if self.head_since is None:
                self.head_since = self.clock()
            if len(self.head) < _LINE and not self.head.endswith(b"\n"):
                room = _LINE - len(self.head)
                end = data.find(b"\n", 0, room)
                self.head += data[: end + 1 if end >= 0 else room]
        parsed = getattr(self, "_request_count", 0)  # aiohttp's count of messages parsed
        super().data_received(data)
        body = self.body
        if body is not None and getattr(self, "_request_count", 0) > parsed and not body.is_eof():
            # A new message while a body is still arriving can only be aiohttp's parser
            # finding that body's framing broken: it queues the error as a message of its
            # own and leaves the body waiting. Fail the read now, not at the read timeout.
            body.set_exception(
                web.RequestPayloadError("the chunked framing is broken (a chunk size or CRLF)")
            )

    def head_received(self, body: Any) -> None:
        # ``head`` stays: a head that failed to parse is answered after this, in the
        # shape its request line names.
        self.guard.waiting.pop(self, None)
        self.awaiting_head = False
        self.head_since = None
        # By type, not isinstance: StreamReader's ABC check costs a call per request.
        self.body = body if type(body) is StreamReader else None

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and isinstance(request, web.Request):
            # aiohttp's router found no route: a target the app's catch-all cannot match
            # (``CONNECT host:443``, ``OPTIONS *``). The app raises no HTTPException.
            resp = unknown_route(request)
        finished = await super().finish_response(request, resp, start_time)
        if request.content.is_eof():
            self._wait_for_head(since=None)  # what comes next is the next request's head
        elif resp.status in _GAVE_UP:
            # A body too slow, or a shutdown: aiohttp would go on reading the body for
            # up to 10 s before closing; the answer is out, close now.
            self.force_close()
        # Else the body is still arriving: aiohttp drains it for a while, then closes or
        # waits for the next head (its keep-alive timer bounds that wait).
        return finished

    def _wait_for_head(self, *, since: float | None) -> None:
        self.awaiting_head = True
        self.head_since = since
        self.head = b""
        self.guard.waiting.pop(self, None)
        if self.counted:  # a connection lost meanwhile (a paced client that left) waits no more
            self.guard.waiting[self] = None

    def give_up(self, why: str) -> None:
        """Close a connection waiting for a head: with a 408 when part of one came (a
        client mid-request may read it), silently when idle (a pooled connection must not
        find a stale answer when it is next used)."""
        self.guard.waiting.pop(self, None)
        self.head_since = None
        transport = self.transport
        if transport is None:
            return
        if self.head:
            log.info("closed a connection: %s", why)
            message = (
                f"Tapedeck closed this connection: {why}. Way out: send the request head "
                "promptly, or raise the limit (tapedeck serve --read-timeout S)."
            )
            transport.write(_wire(self._shaped(408, message, retry=True)))
        self.force_close()

    # --- broken HTTP --------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: only closing is left
            raise ConnectionError("the answer was under way when the error came")
        text = _evidence(message or (str(exc) if exc is not None else ""))
        if isinstance(exc, ContentEncodingError):
            status = 415
            text = (
                f"{text}. This server decodes {', '.join(DECODED)} (or identity). Way out: "
                "send the body in one of those, or uncompressed without the header."
            )
        elif status < 500:
            text = f"Tapedeck could not read this HTTP request: {text}"
        else:
            log.error("tapedeck failed on a request", exc_info=exc)
            text = f"Tapedeck failed on this request ({text}). This is a bug in Tapedeck."
        if status < 500:
            log.info("answered %d to %s: %s", status, request.remote, text)
        response = reply(self._shaped(status, text, retry=False))
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError, ConnectionError)):
            # A client's broken body seen again while aiohttp drains it: answered already.
            log.info("%s: %s", args[0] if args else "connection closed", exc)
            return
        super().log_exception(*args, **kw)

    def _shaped(self, status: int, message: str, *, retry: bool) -> Response:
        """The error in the shape of the dialect the request line names, else our own."""
        parts = self.head.rstrip(b"\r\n").split(b" ")
        match = None
        if len(parts) == 3:
            method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
            match = ROUTER.resolve(method, _path_of(target))
        if match is None:
            return own_error(status, message, "bad_request", retry=retry)
        error = match.dialect.error(status, message, "invalid_request_error")
        return error if retry else Response(error.status, error.headers + NO_RETRY, error.body)


def _path_of(target: str) -> str:
    """The path of a request target, decoded: ``//x`` is a path here, not a host."""
    if not target.startswith("/"):
        target = urlsplit(target).path  # absolute form: http://host/path
    return unquote(target.partition("?")[0].partition("#")[0])


def _evidence(text: str) -> str:
    """aiohttp's multi-line parser message (a caret line under the bytes) on one line."""
    lines = [line.strip() for line in text.splitlines()]
    shown = " ".join(line for line in lines if line and set(line) != {"^"})
    return shown if len(shown) <= 300 else shown[:300] + "..."


def _wire(response: Response) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for writing on a socket that
    no aiohttp request owns."""
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Error"
    head = [f"HTTP/1.1 {response.status} {reason}"]
    head += [f"{k}: {v}" for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
    head += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1", "replace") + response.body
