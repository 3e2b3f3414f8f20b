"""The upstream side of a conformance run: a small aiohttp app on 127.0.0.1:PORT, standing
in for the provider behind the proxy under test.

It finds the scenario by the nonce in the forwarded body (see ``scenarios``), answers with
the dialect's synthesized stream for the *forwarded* request (so a proxy that adds
``stream_options`` upstream gets the usage chunk it asked for), and delivers it the way
the scenario says: one HTTP chunk per event, paced against absolute deadlines, split
inside a character, or cut by a mid-stream error; a fault scenario's answer is broken
the way its fault spec says (``mockserver.faults``: status, reset, truncate, error, stall).
It records exactly what it sent and when each event left, which is what the proxy's output
is compared with.

This is not the replay app (``app.py``): conformance needs per-event writes and pacing on
every scenario, and its own bookkeeping, and must not depend on a Player.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from mockserver.conformance.scenarios import NONCE, Scenario
from mockserver.dialects import ROUTER, dialect
from mockserver.fault_wire import error_answer, reset_connection
from mockserver.faults import FaultSpec, parse
from mockserver.framing.http import FRAMING_HEADERS
from mockserver.model import Headers, Request, Response

SPLIT_PAUSE = 0.005
"""Between the two halves of a split event, so that they leave in separate segments."""


@dataclass
class Sent:
    """One answer the upstream gave: the forwarded request, the frames in the order they
    were written, and the monotonic time each one was fully written."""

    scenario: Scenario
    request: Request
    dialect: str
    status: int
    streaming: bool
    frames: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    done: bool = False
    arrived: float = 0.0
    """When the request arrived (monotonic): a retry's wait is judged by it."""

    @property
    def body(self) -> bytes:
        return b"".join(self.frames)


def error_frame(name: str, sequence_number: int) -> bytes:
    """A mid-stream error in the protocol's own shape (wire-formats.md §1, §5, §6, §12);
    a protocol without one gets a bare ``data: {"error": ...}`` event."""
    make = dialect(name).midstream_error
    if make is not None:
        return make(sequence_number)
    error = {"message": "The server had an error while processing your request."}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def _inside_char(frame: bytes) -> int | None:
    """A cut position inside the first multi-byte UTF-8 character of the frame."""
    return next((i for i in range(1, len(frame)) if frame[i] & 0xC0 == 0x80), None)


class Upstream:
    """The upstream app and what it sent, by scenario nonce."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self.scenarios = {s.nonce: s for s in scenarios}
        self.sent: dict[str, list[Sent]] = {}
        self.stray: list[Request] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        """Set on stop: a stalled answer stops waiting (the runner would wait for it)."""

    async def start(self, host: str, port: int) -> str:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        bound_host, bound_port = self._runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def answers(self, scenario: Scenario) -> list[Sent]:
        return self.sent.get(scenario.nonce, [])

    def expect(self, scenario: Scenario) -> None:
        """Answer requests tagged with this scenario's nonce from now on."""
        self.scenarios[scenario.nonce] = scenario

    def forget(self, scenario: Scenario) -> list[Sent]:
        """Stop answering the scenario, drop what was sent for it (a load run sends
        thousands: memory stays bounded by the streams in flight), and return that."""
        self.scenarios.pop(scenario.nonce, None)
        return self.sent.pop(scenario.nonce, [])

    def fault_for(self, scenario: Scenario) -> FaultSpec | None:
        """The scenario's fault, for its first ``times`` requests (all, when unsaid)."""
        if scenario.fault is None:
            return None
        spec = parse(scenario.fault)
        applied = len(self.answers(scenario))
        return spec if spec.times is None or applied < spec.times else None

    async def handle(self, http: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        match = ROUTER.resolve(http.method, http.path)
        raw = await http.read()
        if match is None:
            message = f"Tapedeck's conformance upstream serves no route {http.method} {http.path}"
            return web.json_response({"error": {"message": message}}, status=404)
        dialect = match.dialect
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = Request(
            http.method,
            http.path,
            tuple(parse_qsl(http.query_string, keep_blank_values=True)),
            tuple(http.headers.items()),
            raw,
            parsed,
        )
        found = NONCE.search(raw.decode("utf-8", "replace"))
        scenario = self.scenarios.get(found.group(2)) if found else None
        if scenario is None:
            self.stray.append(request)
            message = (
                "Tapedeck's conformance upstream found no scenario tag ([tapedeck NAME NONCE]) "
                "in this request: only scenario requests are answered."
            )
            return _reply(dialect.error(400, message, dialect.default_error_kind))
        fault = self.fault_for(scenario)
        if fault is not None and fault.kind == "status":  # refused before any answer
            refusal = error_answer(dialect, request, fault)
            body = refusal.body if isinstance(refusal.body, bytes) else b""
            sent = Sent(scenario, request, dialect.name, refusal.status, False, arrived=arrived)
            sent.frames, sent.times, sent.done = [body], [time.monotonic()], True
            self.sent.setdefault(scenario.nonce, []).append(sent)
            return refusal
        response = dialect.synthesize(request, scenario.script)
        headers: Headers = tuple(
            (k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS
        )
        streaming = 200 <= response.status < 300 and dialect.is_stream(request)
        sent = Sent(scenario, request, dialect.name, response.status, streaming, arrived=arrived)
        self.sent.setdefault(scenario.nonce, []).append(sent)
        if not streaming:
            sent.frames, sent.times, sent.done = [response.body], [time.monotonic()], True
            return web.Response(
                status=response.status, headers=CIMultiDict(headers), body=response.body
            )
        frames = list(dialect.framing_for(request).frames(response.body))
        if scenario.error_after is not None:
            frames = frames[: scenario.error_after]
            frames.append(error_frame(dialect.name, len(frames)))
        frames, stall = _broken(frames, fault, dialect.name)
        stream = web.StreamResponse(status=response.status, headers=CIMultiDict(headers))
        try:
            await stream.prepare(http)
            start = time.monotonic()
            for i, frame in enumerate(frames):
                if i == stall and fault is not None:
                    await self._pause(fault.float("seconds"))
                    if self._closing.is_set():
                        return stream  # shutting down: the rest would go nowhere
                if scenario.gap:
                    # Absolute deadlines: relative sleeps would drift by the write times.
                    await asyncio.sleep(max(0.0, start + i * scenario.gap - time.monotonic()))
                cut = _inside_char(frame) if scenario.split_utf8 else None
                if cut is not None:
                    await stream.write(frame[:cut])
                    await asyncio.sleep(SPLIT_PAUSE)
                    await stream.write(frame[cut:])
                else:
                    await stream.write(frame)
                sent.frames.append(frame)
                sent.times.append(time.monotonic())
            if fault is not None and fault.kind == "reset":
                return await reset_connection(http, stream)
            await stream.write_eof()
            sent.done = True
        except ConnectionError:
            pass  # the proxy went away: ``done`` stays False, which the report shows
        return stream

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)


def _broken(
    frames: list[bytes], fault: FaultSpec | None, name: str
) -> tuple[list[bytes], int | None]:
    """The frames a faulted stream sends (the same cut points as the replay server's
    faults: ``after`` events go out first), and the event a stall comes before."""
    if fault is None:
        return frames, None
    if fault.kind in ("reset", "truncate"):
        return frames[: fault.int("after")], None
    if fault.kind == "error":  # before the last event at the latest: it ends the stream
        kept = frames[: min(fault.int("after"), max(len(frames) - 1, 0))]
        return [*kept, error_frame(name, len(kept))], None
    if fault.kind == "stall":
        return frames, fault.int("before")
    return frames, None


def _reply(response: Response) -> web.Response:
    headers = [(k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
    return web.Response(status=response.status, headers=CIMultiDict(headers), body=response.body)
