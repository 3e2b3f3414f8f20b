"""The aiohttp application: one handler from HTTP request to recorded (or synthesized) bytes.

    route -> read body -> Request -> Player.next -> serve Entry
                                  \\-> miss: synthesize, or a provider-shaped error

Every failure is answered in the shape of the provider the client thinks it talks to,
with ``x-should-retry: false`` where a retry cannot help, and the server keeps serving.
Streams go out one HTTP chunk per event; when no pacing separates the events, all the
chunks leave in one write (per-event writes cost ~7x the CPU: reference/performance.md).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from multidict import CIMultiDict

from mockserver.dialects import ROUTER
from mockserver.errors import NoMatchingExchange
from mockserver.library import FRAMING_HEADERS, Entry, Library, Player, prepare
from mockserver.model import Exchange, Headers, Request, Response, Script

log = logging.getLogger("tapedeck")

DEFAULT_MAX_BODY = 32 * 1024 * 1024


@dataclass
class ServerState:
    """What one running server replays from. The pytest plugin swaps ``player`` per test;
    the app object itself is never changed after start-up (aiohttp forbids it)."""

    player: Player
    scripts: deque[Script] = field(default_factory=deque)

    def use(self, player: Player) -> None:
        """Replay from ``player`` from now on, with no scripts queued."""
        self.player = player
        self.scripts.clear()


STATE = web.AppKey("tapedeck_state", ServerState)


def make_app(
    library: Library | ServerState,
    *,
    synthesize: bool = False,
    allow_repeats: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
) -> web.Application:
    """The server for a library (or for a state the caller keeps, to swap players)."""
    state = (
        library
        if isinstance(library, ServerState)
        else ServerState(Player(library, allow_repeats=allow_repeats, synthesize=synthesize))
    )
    app = web.Application(client_max_size=max_body)
    app[STATE] = state
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def handle(http: web.Request) -> web.StreamResponse:
    state = http.app[STATE]
    match = ROUTER.resolve(http.method, http.path)
    if match is None:
        return unknown_route(http)
    dialect = match.dialect
    try:
        body = await http.read()
    except web.HTTPRequestEntityTooLarge as exc:
        return reply(
            dialect.error(413, f"Request body too large: {exc.text}", "invalid_request_error")
        )
    try:
        request = build_request(http, body)
    except ValueError as exc:
        message = f"We could not parse the JSON body of your request ({exc}). Send a JSON object."
        return reply(dialect.error(400, message, "invalid_request_error"))
    try:
        entry = state.player.next(request, match)
    except NoMatchingExchange as miss:
        if state.player.synthesize:
            script = state.scripts.popleft() if state.scripts else Script()
            synthesized = Exchange(request, dialect.synthesize(request, script), "synthesized")
            made = prepare(synthesized, match)
            assert made is not None  # the route was resolved above
            return await serve(http, made)
        error = dialect.error(400, str(miss), dialect.default_error_kind)
        return reply(error, extra=(("x-should-retry", "false"),))
    return await serve(http, entry)


def build_request(http: web.Request, body: bytes) -> Request:
    parsed = None
    if body:
        parsed = json.loads(body)  # ValueError (JSONDecodeError, UnicodeDecodeError) on junk
    elif http.method in ("POST", "PUT", "PATCH"):
        raise ValueError("the body is empty")
    return Request(
        method=http.method,
        path=http.path,
        query=tuple(parse_qsl(http.query_string, keep_blank_values=True)),
        headers=tuple(http.headers.items()),
        body=body,
        json=parsed,
    )


async def serve(http: web.Request, entry: Entry) -> web.StreamResponse:
    response = entry.exchange.response
    if not entry.streaming:
        return web.Response(
            status=response.status,
            reason=response.reason or None,
            headers=_multidict(entry.headers),
            body=response.body,
        )
    stream = web.StreamResponse(
        status=response.status, reason=response.reason or None, headers=_multidict(entry.headers)
    )
    try:
        writer = await stream.prepare(http)
        if isinstance(writer, StreamWriter) and writer.chunked:
            # The chunked coding is done once at load; write it, headers included, in one go.
            writer.chunked = False
            await writer.write(entry.wire)
        else:
            for frame in entry.frames:  # HTTP/1.0: no chunks, plain body bytes
                await stream.write(frame)
        await stream.write_eof()
    except ConnectionError:
        log.info("client went away during %s", entry.source)
    return stream


def reply(response: Response, *, extra: Headers = ()) -> web.Response:
    headers = _multidict(
        tuple((k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS) + extra
    )
    return web.Response(
        status=response.status, reason=response.reason or None, headers=headers, body=response.body
    )


def unknown_route(http: web.Request) -> web.Response:
    routes = ROUTER.describe()
    message = (
        f"Tapedeck serves no route {http.method} {http.path}. Routes served: "
        + "; ".join(routes)
        + ". Way out: point the SDK's base URL at one of these (see README, 'Base URLs')."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "code": "unknown_route"}}
    return web.json_response(body, status=404, headers={"x-should-retry": "false"})


def _multidict(headers: Headers) -> CIMultiDict[str]:
    return CIMultiDict(headers)
