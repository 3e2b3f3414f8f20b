"""Run the app on a background thread with its own event loop, so that synchronous SDK
clients (and the pytest plugin) can talk to it from the main thread.

Listens on 127.0.0.1 and a free port unless told otherwise.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from mockserver.app import DEFAULT_MAX_BODY, STATE, ServerState, make_app
from mockserver.library import Library, Player


class BackgroundServer:
    """``with BackgroundServer(library) as server: server.url`` — started and stopped."""

    def __init__(
        self,
        library: Library | ServerState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        synthesize: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if isinstance(library, ServerState):
            self.state = library
        else:
            self.state = ServerState(Player(library or Library(()), synthesize=synthesize))
        self._host, self._port, self._max_body = host, port, max_body
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tapedeck")
        self.url = ""

    def start(self) -> BackgroundServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.url = future.result(timeout=30)
        return self

    async def _start(self) -> str:
        app = make_app(self.state, max_body=self._max_body)
        assert app[STATE] is self.state
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=30)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
