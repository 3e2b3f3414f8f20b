"""The aiohttp application: one handler from HTTP request to recorded (or synthesized, or
freshly recorded) bytes.

    route -> read body -> Request -> Player.next -> serve Entry (paced or not)
                                  \\-> miss: record upstream, synthesize, or a provider error

Every failure is answered in the shape of the provider the client thinks it talks to,
with ``x-should-retry: false`` where a retry cannot help, and the server keeps serving.
Streams go out one HTTP chunk per event; when no pacing separates the events, all the
chunks leave in one write (per-event writes cost ~7x the CPU: reference/performance.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import HttpVersion11, web
from aiohttp.http_writer import StreamWriter

from mockserver.dialects import ROUTER, RouteMatch
from mockserver.errors import NoMatchingExchange, RecordingError
from mockserver.library import FRAMING_HEADERS, Entry, Library, Player, prepare
from mockserver.model import Exchange, Headers, Request, Response, Script
from mockserver.recorder import Recorder
from mockserver.timing import Profile, deadlines, sleep_until

log = logging.getLogger("tapedeck")

DEFAULT_MAX_BODY = 32 * 1024 * 1024
SYNTHESIZED = "synthesized"
NO_RETRY = (("x-should-retry", "false"),)  # the SDKs honour it: a retry cannot help


@dataclass
class ServerState:
    """What one running server answers from. The pytest plugin swaps ``player`` (and the
    recorder) per test; the app object itself never changes after start-up."""

    player: Player
    scripts: deque[Script] = field(default_factory=deque)
    recorder: Recorder | None = None
    speed: float = 0.0
    """0: as fast as possible; 1: the recorded pace; 2: twice as fast."""
    profile: Profile | None = None
    """Pacing for synthesized streams (at ``speed``, or 1 when speed is 0); None: unpaced."""
    client: aiohttp.ClientSession | None = None

    def use(self, player: Player, recorder: Recorder | None = None) -> None:
        """Answer from ``player`` (and record with ``recorder``) from now on, no scripts."""
        self.player = player
        self.recorder = recorder
        self.scripts.clear()

    def upstream_client(self) -> aiohttp.ClientSession:
        if self.client is None:
            # Long reads: a slow upstream stream is what we are here to record.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
            self.client = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        return self.client


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
    app.on_cleanup.append(_close_client)
    return app


async def _close_client(app: web.Application) -> None:
    state = app[STATE]
    if state.client is not None:
        client, state.client = state.client, None
        await client.close()


async def handle(http: web.Request) -> web.StreamResponse:
    match = ROUTER.resolve(http.method, http.path)
    if match is None:
        return unknown_route(http)
    try:
        return await answer(http, match)
    except Exception as exc:  # a bug of ours: still a provider-shaped answer, and we go on
        log.exception("tapedeck failed on %s %s", http.method, http.path)
        message = (
            f"Tapedeck failed on this request ({type(exc).__name__}: {exc}). This is a bug in "
            "Tapedeck, not in your client: please report it with this message."
        )
        return reply(match.dialect.error(500, message, "server_error"), extra=NO_RETRY)


async def answer(http: web.Request, match: RouteMatch) -> web.StreamResponse:
    arrived = asyncio.get_running_loop().time()
    state = http.app[STATE]
    dialect = match.dialect
    try:
        body = await http.read()
    except web.HTTPRequestEntityTooLarge as exc:
        message = f"Request body too large: {exc.text}"
        return reply(dialect.error(413, message, "invalid_request_error"))
    try:
        request = build_request(http, body)
    except ValueError as exc:
        message = f"We could not parse the JSON body of your request ({exc}). Send a JSON object."
        return reply(dialect.error(400, message, "invalid_request_error"))
    recorder = state.recorder
    if recorder is not None and recorder.records_everything:
        state.player.note_request(request)
        return await record(http, state, recorder, request, match)
    try:
        entry = state.player.next(request, match)
    except NoMatchingExchange as miss:
        if recorder is not None and recorder.records_misses:
            return await record(http, state, recorder, request, match)
        state.player.note_miss(request, str(miss))
        if state.player.synthesize:
            script = state.scripts.popleft() if state.scripts else Script()
            made = Exchange(request, dialect.synthesize(request, script), SYNTHESIZED)
            synthesized = prepare(made, match)
            assert synthesized is not None  # the route was resolved above
            return await serve(http, synthesized, state, arrived)
        error = dialect.error(400, str(miss), dialect.default_error_kind)
        return reply(error, extra=NO_RETRY)
    return await serve(http, entry, state, arrived)


async def record(
    http: web.Request, state: ServerState, recorder: Recorder, request: Request, match: RouteMatch
) -> web.StreamResponse:
    try:
        return await recorder.forward(http, request, match, state.upstream_client())
    except RecordingError as exc:
        error = match.dialect.error(502, str(exc), "api_error")
        return reply(error, extra=NO_RETRY)


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
        headers=tuple((str(name), value) for name, value in http.headers.items()),
        body=body,
        json=parsed,
    )


async def serve(
    http: web.Request, entry: Entry, state: ServerState, arrived: float
) -> web.StreamResponse:
    response = entry.exchange.response
    schedule = _schedule(entry, state)
    if schedule is not None:
        await sleep_until(arrived + schedule[0])
    if not entry.streaming:
        return web.Response(
            status=response.status,
            reason=response.reason or None,
            headers=entry.headers,
            body=response.body,
        )
    if schedule is None and http.version >= HttpVersion11:
        return await _serve_at_once(http, entry)
    stream = web.StreamResponse(
        status=response.status, reason=response.reason or None, headers=entry.headers
    )
    try:
        await stream.prepare(http)
        for number, frame in enumerate(entry.frames):
            if schedule is not None:
                await sleep_until(arrived + schedule[1][number])
            await stream.write(frame)  # one HTTP chunk per event (none under HTTP/1.0)
        await stream.write_eof()
    except ConnectionError:
        log.info("client went away during %s", entry.source)
    return stream


async def _serve_at_once(http: web.Request, entry: Entry) -> web.StreamResponse:
    """An unpaced stream: the chunked coding was done once at load (one chunk per event),
    so the status line, the headers and every chunk leave in a single write. A
    ``web.Response`` holds its headers back until the first write, where a
    ``StreamResponse`` would send them on their own."""
    response = entry.exchange.response
    stream = web.Response(
        status=response.status, reason=response.reason or None, headers=entry.headers
    )
    stream.enable_chunked_encoding()
    try:
        writer = await stream.prepare(http)
        assert isinstance(writer, StreamWriter) and writer.chunked
        writer.chunked = False  # the bytes are chunk-coded already
        await writer.write(entry.wire)
        await stream.write_eof()
    except ConnectionError:
        log.info("client went away during %s", entry.source)
    return stream


def _schedule(entry: Entry, state: ServerState) -> tuple[float, list[float]] | None:
    """Deadlines after the request's arrival for the headers and each frame, or None:
    recordings keep their recorded pace at ``speed`` > 0; synthesized streams follow the
    profile, when there is one."""
    if entry.source == SYNTHESIZED:
        if state.profile is None or not entry.streaming:
            return None
        timing = state.profile.timing(len(entry.frames))
        return deadlines(timing, len(entry.frames), state.speed or 1.0)
    if entry.exchange.timing is None:
        return None
    return deadlines(entry.exchange.timing, len(entry.frames), state.speed)


def reply(response: Response, *, extra: Headers = ()) -> web.Response:
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS)
    return web.Response(
        status=response.status,
        reason=response.reason or None,
        headers=headers + extra,
        body=response.body,
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
