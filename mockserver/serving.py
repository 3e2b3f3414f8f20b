"""The app on a socket: ``start`` it for a test (``server_thread``), ``run`` it in the
foreground (``tapedeck serve``), or ``run_on`` sockets a supervisor bound (``workers``), all
through aiohttp's runner with the guarded connections of ``connections`` and the timeouts
of the ``ServerLimits``.

Where it sits: after ``connections``, before the ways of running the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from mockserver import loops
from mockserver.connections import GuardedServer
from mockserver.loops import DEFAULT_LOOP
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
    app: web.Application,
    host: str,
    port: int,
    limits: ServerLimits,
    ready: Callable[[str], None],
    *,
    loop: str = DEFAULT_LOOP,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; ``ready(url)`` once listening.
    On the signal: stop accepting, answer 503 to requests still sending their body,
    give answers in flight ``shutdown_timeout`` seconds, close the rest, return.
    ``loop``: the event loop to run on (``loops.LOOPS``)."""
    _serve_until_stopped(
        lambda: start(app, host, port, limits), ready, (signal.SIGINT, signal.SIGTERM), loop=loop
    )


async def start_on(
    app: web.Application, sockets: Sequence[socket.socket], limits: ServerLimits
) -> GuardedRunner:
    """The app accepting on sockets already bound and listening (a supervisor's)."""
    runner = GuardedRunner(app, limits)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, backlog=BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def run_on(
    app: web.Application,
    sockets: Sequence[socket.socket],
    limits: ServerLimits,
    watch: int,
    *,
    loop: str = DEFAULT_LOOP,
) -> None:
    """``run``, on sockets already listening, for a worker process: stops on SIGTERM (its
    supervisor's word) or when the file descriptor ``watch`` turns readable, which the
    read end of a pipe does once every writer is gone: the supervisor died, even of
    SIGKILL, and nobody will send that SIGTERM. SIGINT is the supervisor's to handle.
    A SIGTERM the caller kept blocked is delivered once the loop handles it: a worker
    told to stop while starting stops gracefully, instead of dying of it (POSIX only)."""
    _serve_until_stopped(
        lambda: start_on(app, sockets, limits),
        None,
        (signal.SIGTERM,),
        watch,
        unblock=True,
        loop=loop,
    )


def _serve_until_stopped(
    started: Callable[[], Awaitable[GuardedRunner]],
    ready: Callable[[str], None] | None,
    signals: Sequence[signal.Signals],
    watch: int | None = None,
    *,
    unblock: bool = False,
    loop: str = DEFAULT_LOOP,
) -> None:
    async def serve() -> None:
        runner = await started()
        try:
            if ready is not None:
                ready(url_of(runner))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in signals:
                # Windows has no signal handlers on the loop: Ctrl-C stops it there.
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            if unblock:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            if watch is not None:
                loop.add_reader(watch, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        loops.run(serve(), loop)
