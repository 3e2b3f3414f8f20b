"""A stand-in for a real provider: an aiohttp app on 127.0.0.1 in its own thread, that
checks a secret key, sets a secret cookie and organization header, and streams events
one write at a time — holding back after the first event until the test opens a gate."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

SECRET_KEY = "sk-secret-key-123456"
SECRET_COOKIE = "session=cookie-secret-987"
SECRET_ORG = "org-secret-555"


@dataclass
class Script:
    """What the upstream answers on one path: status, content type, the events."""

    events: list[bytes]
    content_type: str = "text/event-stream; charset=utf-8"
    status: int = 200
    reset_after_first: bool = False


@dataclass
class Upstream:
    scripts: dict[str, Script]
    url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    """Each request's target as it arrived on the wire: path and query, still encoded."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append(dict(request.headers))
        self.targets.append(request.raw_path)
        auth = request.headers.get("Authorization", "") + request.headers.get("x-api-key", "")
        auth += request.headers.get("x-goog-api-key", "")
        if SECRET_KEY not in auth:
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        script = self.scripts[request.path]
        response = web.StreamResponse(
            status=script.status,
            headers={
                "Content-Type": script.content_type,
                "Set-Cookie": SECRET_COOKIE,
                "openai-organization": SECRET_ORG,
                "x-request-id": "req_upstream",
            },
        )
        await response.prepare(request)
        # ConnectionError: the test killed the client or the server; nothing to answer.
        with contextlib.suppress(ConnectionError):
            await self._stream(request, response, script)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, script: Script
    ) -> None:
        for number, event in enumerate(script.events):
            await response.write(event)
            if number == 0 and script.reset_after_first:
                assert request.transport is not None
                request.transport.abort()
                return
            if number == 0 and self.hold:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self.gate.wait, 30)
        await response.write_eof()


@contextmanager
def running(upstream: Upstream) -> Iterator[Upstream]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    upstream.url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield upstream
    finally:
        upstream.gate.set()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
