"""The server on a thread of its own: the app on a background thread with its own event
loop, so that synchronous SDK clients (and the pytest plugin) can talk to it from the main
thread. Sits after the app in the flow, beside the CLI (which runs the app in the
foreground instead).

Listens on 127.0.0.1 and a free port unless told otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from types import TracebackType

from aiohttp import web

from mockserver.app import STATE, ServerState, make_app
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_limits import DEFAULT_MAX_BODY, ServerLimits
from mockserver.serving import start, url_of


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
        server_limits: ServerLimits | None = None,
    ) -> None:
        """``server_limits``: timeouts, connection and request limits (README
        'Reliability'); when given, its ``max_body`` replaces ``max_body``."""
        if isinstance(library, ServerState):
            self.state = library
        else:
            self.state = ServerState(Player(library or Library(()), synthesize=synthesize))
        self._host, self._port = host, port
        self.server_limits = server_limits or ServerLimits(max_body=max_body)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tapedeck")
        self.url = ""

    def start(self) -> BackgroundServer:
        """Listen, or raise the OSError of the bind (``cannot_listen`` words it) with the
        loop and its thread already stopped."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            self.url = future.result(timeout=30)
        except OSError:
            self.stop()
            raise
        return self

    async def _start(self) -> str:
        app = make_app(self.state, server_limits=self.server_limits)
        assert app[STATE] is self.state
        self._runner = await start(app, self._host, self._port, self.server_limits)
        return url_of(self._runner)

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


def cannot_listen(exc: OSError, host: str, port: int, option: str = "--port") -> str:
    """One line for a server that could not listen on host:port (the bind's OSError):
    why, and what to change (``option`` names the setting that picks the port)."""
    code = exc.errno
    # asyncio words a failed bind at length; the system's own words for the errno are
    # shorter. A resolver error (socket.gaierror) has a negative errno and words of its own.
    if isinstance(exc, socket.gaierror) or not code or code < 0:
        reason = exc.strerror or str(exc)
    else:
        reason = os.strerror(code)
    if isinstance(exc, socket.gaierror) or code == errno.EADDRNOTAVAIL:
        way_out = "give the host as an address of this machine (default 127.0.0.1)"
    elif code == errno.EACCES:
        way_out = f"choose {option} 1024 or above"
    else:
        way_out = f"stop what holds that port, or choose another with {option} N"
    return f"cannot listen on {host}:{port}: {reason}. Way out: {way_out}."
