"""The app on a socket: ``start`` it for a test (``server_thread``), ``run`` it in the
foreground (``tapedeck serve``), both through aiohttp's runner with the guarded
connections of ``connections`` and the timeouts of the ``ServerLimits``.

Where it sits: after ``connections``, before the two ways of running the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from aiohttp import web

from mockserver.connections import GuardedServer
from mockserver.server_limits import BACKLOG, ServerLimits


class GuardedRunner(web.AppRunner):
    """``AppRunner`` serving through a ``GuardedServer``, with the limits' timeouts."""

    def __init__(self, app: web.Application, limits: ServerLimits) -> None:
        super().__init__(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=limits.keepalive_timeout,
            shutdown_timeout=limits.shutdown_timeout,
        )
        self.limits = limits

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app up, as AppRunner does
        return GuardedServer(
            made.request_handler,
            limits=self.limits,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            access_log=None,
            keepalive_timeout=self.limits.keepalive_timeout,
        )


async def start(app: web.Application, host: str, port: int, limits: ServerLimits) -> GuardedRunner:
    """The app listening on host:port (0: a free port), ready when this returns."""
    runner = GuardedRunner(app, limits)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def url_of(runner: web.BaseRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def run(
    app: web.Application, host: str, port: int, limits: ServerLimits, ready: Callable[[str], None]
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; ``ready(url)`` once listening.
    On the signal: stop accepting, answer 503 to requests still sending their body,
    give answers in flight ``shutdown_timeout`` seconds, close the rest, return."""

    async def serve() -> None:
        runner = await start(app, host, port, limits)
        try:
            ready(url_of(runner))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                # Windows has no signal handlers on the loop: Ctrl-C stops it there.
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
