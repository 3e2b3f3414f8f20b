"""The aiohttp application: one handler from HTTP request to recorded (or synthesized, or
freshly recorded) bytes.

    route -> read body -> Request -> Responder.next -> serve Entry (paced or not)
                      |           \\-> miss: record upstream, synthesize, or a provider error
                      \\-> bytes answered from a recording before, nothing to keep:
                          digest -> Player.next_known -> serve Entry   (``_known``)

Every failure is answered in the shape of the provider the client thinks it talks to,
with ``x-should-retry: false`` where a retry cannot help, and the server keeps serving.
Streams go out one HTTP chunk per event; when no pacing separates the events, all the
chunks leave in one write (per-event writes cost ~7x the CPU: reference/performance.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import HttpVersion11, web
from aiohttp.http_writer import StreamWriter

from mockserver.dialects import ROUTER, RouteMatch, SynthesisLimits, exceeded
from mockserver.errors import NoMatchingExchange, RecordingError
from mockserver.fault_wire import error_answer, serve_faulted, take
from mockserver.faults import HEADER, Faults, FaultSpec, FaultSpecError
from mockserver.framing.http import FRAMING_HEADERS
from mockserver.index import Entry, Library, digest_of, prepare
from mockserver.intake import Refused, check_depth, own_error, read_body
from mockserver.misses import for_clients
from mockserver.model import Exchange, Headers, Request, Response, Script
from mockserver.paced import serve_paced
from mockserver.pacer import Pacer
from mockserver.player import Player, Responder
from mockserver.recorder import Recorder
from mockserver.server_limits import DEFAULT_MAX_BODY, DEFAULT_MAX_DEPTH, ServerLimits
from mockserver.timing import Profile, Schedule, deadlines, sleep_until

log = logging.getLogger("tapedeck")

SYNTHESIZED = "synthesized"
NO_RETRY = (("x-should-retry", "false"),)  # the SDKs honour it: a retry cannot help
OFF_LOOP_BODY = 256 * 1024
"""Bodies this large are matched on a worker thread, so that other clients are answered
meanwhile; smaller ones on the loop, where a thread would cost more than the work."""


@dataclass
class ServerState:
    """What one running server answers from. The pytest plugin swaps ``player`` (and the
    recorder) per test; the app object itself never changes after start-up."""

    player: Responder
    """A ``Player`` replaying recordings, or any other ``Responder``."""
    scripts: deque[Script] = field(default_factory=deque)
    recorder: Recorder | None = None
    faults: Faults = field(default_factory=Faults)
    """Which requests get a fault (``serve --fault``, the marker, ``tapedeck.fault``)."""
    speed: float = 0.0
    """0: as fast as possible; 1: the recorded pace; 2: twice as fast."""
    profile: Profile | None = None
    """Pacing for synthesized streams (at ``speed``, or 1 when speed is 0); None: unpaced."""
    client: aiohttp.ClientSession | None = None
    synthesis_limits: SynthesisLimits = field(default_factory=SynthesisLimits)
    """How big a synthesized answer may grow (README 'Synthesis limits')."""
    pacer: Pacer = field(default_factory=Pacer)
    """Writes the events of paced streams; ``pacer.lateness()`` says how late they left."""

    def use(self, player: Responder, recorder: Recorder | None = None) -> None:
        """Answer from ``player`` (and record with ``recorder``) from now on, no scripts."""
        self.player = player
        self.recorder = recorder
        self.scripts.clear()
        self.faults = Faults()

    def upstream_client(self) -> aiohttp.ClientSession:
        if self.client is None:
            # Long reads: a slow upstream stream is what we are here to record.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
            self.client = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        return self.client


STATE = web.AppKey("tapedeck_state", ServerState)
GUARD = web.AppKey("tapedeck_server_limits", ServerLimits)
STOPPING = web.AppKey("tapedeck_stopping", asyncio.Event)
"""Set when the server starts shutting down: requests still sending their body get 503."""


def make_app(
    library: Library | ServerState,
    *,
    synthesize: bool = False,
    allow_repeats: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    synthesis_limits: Mapping[str, int] | None = None,
    server_limits: ServerLimits | None = None,
) -> web.Application:
    """The server for a library (or for a state the caller keeps, to swap players).
    ``synthesis_limits`` changes how big a synthesized answer may grow (``{"n": 256}``,
    README 'Synthesis limits'); given with a state, it replaces the state's.
    ``server_limits`` bounds what a request may be (README 'Reliability'); when given, its
    ``max_body`` replaces ``max_body``."""
    state = (
        library
        if isinstance(library, ServerState)
        else ServerState(Player(library, allow_repeats=allow_repeats, synthesize=synthesize))
    )
    if synthesis_limits is not None:
        state.synthesis_limits = SynthesisLimits(synthesis_limits)
    guard = server_limits or ServerLimits(max_body=max_body)
    app = web.Application(client_max_size=guard.max_body)
    app[STATE] = state
    app[GUARD] = guard
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_reading)
    # What every request needs, bound once: looking each up in the app per request costs
    # a tenth of a replay.
    served = Served(state, guard, app[STOPPING])
    app.on_startup.append(served.bind_clock)
    app.router.add_route("*", "/{tail:.*}", functools.partial(handle, served))
    app.on_cleanup.append(_close_client)
    return app


async def _stop_reading(app: web.Application) -> None:
    app[STOPPING].set()


async def _close_client(app: web.Application) -> None:
    state = app[STATE]
    if state.client is not None:
        client, state.client = state.client, None
        await client.close()


@dataclass(slots=True)
class Served:
    """What the handler answers with: the state, the limits, the shutdown flag, and the
    loop's clock (bound at start-up: asking for the running loop per request costs a
    system call, for its fork check)."""

    state: ServerState
    guard: ServerLimits
    stopping: asyncio.Event
    clock: Callable[[], float] = time.monotonic

    async def bind_clock(self, app: web.Application) -> None:
        self.clock = asyncio.get_running_loop().time


async def handle(served: Served, http: web.Request) -> web.StreamResponse:
    match = ROUTER.resolve(http.method, http.path)
    if match is None:
        return unknown_route(http)
    try:
        return await answer(served, http, match)
    except Exception as exc:  # a bug of ours: still a provider-shaped answer, and we go on
        log.exception("tapedeck failed on %s %s", http.method, http.path)
        message = (
            f"Tapedeck failed on this request ({type(exc).__name__}: {exc}). This is a bug in "
            "Tapedeck, not in your client: please report it with this message."
        )
        return reply(match.dialect.error(500, message, "server_error"), extra=NO_RETRY)


async def answer(served: Served, http: web.Request, match: RouteMatch) -> web.StreamResponse:
    arrived = served.clock()
    state, guard = served.state, served.guard
    dialect = match.dialect
    try:
        body = await read_body(http, guard, served.stopping)
        known = _known(http, body, state)
        if known is not None:
            return await serve(http, known, state, arrived)
        request = build_request(http, body, guard.max_json_depth)
    except Refused as refused:
        log.info("answered %d to %s %s: %s", refused.status, http.method, http.path, refused)
        return refuse(dialect.error(refused.status, refused.message, refused.kind), refused)
    except ValueError as exc:
        message = f"We could not parse the JSON body of your request ({exc}). Send a JSON object."
        return reply(dialect.error(400, message, "invalid_request_error"))
    try:
        request, asked = take(request)  # the fault header is never forwarded nor saved
    except FaultSpecError as exc:
        return reply(dialect.error(400, str(exc), dialect.default_error_kind), extra=NO_RETRY)
    recorder = state.recorder
    if recorder is not None and recorder.records_everything:
        state.player.note_request(request)
        return await record(http, state, recorder, request, match)
    fault = state.faults.choose(asked)
    if fault is not None:
        request = replace(request, fault=str(fault))
        log.info("fault %s applied to %s", fault, request.summary())
        if fault.kind == "status":  # refused before any recording is used up
            state.player.note_request(request)
            return error_answer(dialect, request, fault)
    try:
        if len(body) < OFF_LOOP_BODY:
            entry = state.player.next(request, match)
        else:  # its key (a secrets scan, an identity) costs ~0.1 s a MB: not on the loop
            entry = await asyncio.to_thread(state.player.next, request, match)
    except NoMatchingExchange as miss:
        if recorder is not None and recorder.records_misses:
            return await record(http, state, recorder, request, match)
        if state.player.note_miss(request, str(miss)):
            return await synthesize(http, state, request, match, arrived, fault)
        error = dialect.error(400, for_clients(str(miss)), dialect.default_error_kind)
        return reply(error, extra=NO_RETRY)
    return await serve(http, entry, state, arrived, fault)


async def synthesize(
    http: web.Request,
    state: ServerState,
    request: Request,
    match: RouteMatch,
    arrived: float,
    fault: FaultSpec | None = None,
) -> web.StreamResponse:
    """The next script's answer, unless it would outgrow a limit (a 400 saying which)."""
    dialect = match.dialect
    script = state.scripts.popleft() if state.scripts else Script()
    too_big = exceeded(dialect.limits, request, script, state.synthesis_limits)
    if too_big is not None:
        return reply(dialect.error(400, too_big, dialect.default_error_kind), extra=NO_RETRY)
    # Within the limits an answer still takes up to about a second to build: off the
    # event loop, so that the other clients are answered meanwhile.
    entry = await asyncio.to_thread(_synthesized, request, script, match)
    return await serve(http, entry, state, arrived, fault)


def _synthesized(request: Request, script: Script, match: RouteMatch) -> Entry:
    made = Exchange(request, match.dialect.synthesize(request, script), SYNTHESIZED)
    entry = prepare(made, match)
    assert entry is not None  # the route was resolved
    return entry


async def record(
    http: web.Request, state: ServerState, recorder: Recorder, request: Request, match: RouteMatch
) -> web.StreamResponse:
    try:
        return await recorder.forward(http, request, match, state.upstream_client())
    except RecordingError as exc:
        error = match.dialect.error(502, str(exc), "api_error")
        return reply(error, extra=NO_RETRY)


def _known(http: web.Request, body: bytes, state: ServerState) -> Entry | None:
    """The recording answering a request whose bytes answered from a recording before,
    found without parsing it (the parse and the identity cost more than the rest of a
    replay); None when that takes more than a look-up: a recorder, a fault, a player that
    keeps requests, a body big enough to hash off the loop."""
    player = state.player
    if (
        type(player) is not Player  # a subclass may answer otherwise: ask its ``next``
        or player.log != 0
        or len(body) >= OFF_LOOP_BODY
        or not state.faults.idle
        or HEADER in http.headers
        or (state.recorder is not None and state.recorder.records_everything)
    ):
        return None
    query = http.query_string
    parsed = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    return player.next_known(digest_of(http.method, http.path, parsed, body))


def build_request(http: web.Request, body: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Request:
    """The request as dialects see it; ``Refused`` (400) for JSON nested deeper than
    ``max_depth``, checked before parsing: the walks that follow (matching, redaction,
    synthesis) recurse, and must stay clear of Python's recursion limit."""
    parsed = None
    if body:
        check_depth(body, max_depth)
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
    http: web.Request,
    entry: Entry,
    state: ServerState,
    arrived: float,
    fault: FaultSpec | None = None,
) -> web.StreamResponse:
    response = entry.exchange.response
    pace = entry.exchange.timing is not None or entry.exchange.source == SYNTHESIZED
    schedule = _schedule(entry, state) if pace else None  # most replays: no call
    if schedule is not None:
        await sleep_until(arrived + schedule.headers)
    if fault is not None:
        return await serve_faulted(http, entry, fault, schedule, arrived)
    if not entry.streaming:
        return web.Response(
            status=response.status,
            reason=response.reason or None,
            headers=entry.headers,
            body=response.body,
        )
    if schedule is not None:
        return await serve_paced(http, entry, state.pacer, schedule, arrived)
    if http.version >= HttpVersion11:
        return await _serve_at_once(http, entry)
    stream = web.StreamResponse(  # HTTP/1.0: no chunks; the body ends when the connection does
        status=response.status, reason=response.reason or None, headers=entry.headers
    )
    try:
        await stream.prepare(http)
        await stream.write(b"".join(entry.frames))
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


def _schedule(entry: Entry, state: ServerState) -> Schedule | None:
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


def refuse(error: Response, refused: Refused) -> web.Response:
    """A refused request's answer: no retry hint where a retry can help (a timeout, a
    shutdown), and then the connection closes, its request half-read."""
    if not refused.retry:
        return reply(error, extra=NO_RETRY)
    response = reply(error)
    response.force_close()
    return response


def unknown_route(http: web.Request) -> web.Response:
    routes = ROUTER.describe()
    message = (
        f"Tapedeck serves no route {http.method} {http.path}. Routes served: "
        + "; ".join(routes)
        + ". Way out: point the SDK's base URL at one of these (see README, 'Base URLs')."
    )
    return reply(own_error(404, message, "unknown_route"))
