"""``tapedeck serve --workers N``: N processes answering on one port, so that replay uses
more than one core (one Python process uses one: the GIL).

    supervisor: library loaded, app built, socket bound -> fork N workers -> watch them
    worker:     its own event loop serving the inherited app on the inherited socket

The supervisor loads the library once and forks after, so every worker starts with the
same cassettes, shared copy-on-write; it binds the socket itself, so ``--port 0`` works
and the banner names the real port. A worker that dies (killed, crashed) is logged with
its exit status and replaced, with a growing pause when replacements die young, while
the others keep serving. SIGINT or SIGTERM stop every worker gracefully (each has the
``shutdown_timeout`` of a single server); a worker whose supervisor is gone, even by
SIGKILL, stops by itself (a pipe only the supervisor writes to closes).

Each worker has its own Player: what depends on the requests seen so far (FIFO order of
identical requests, ``--fault`` counts, the request log) holds per worker. ``refusal``
names the combinations that would break a promise across workers.

Where it sits: after ``serving`` (it runs the app through ``serving.run_on``) and
``listeners`` (the sockets), before the CLI. POSIX only: it needs ``os.fork``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mockserver.listeners import listeners, url_of
from mockserver.loops import DEFAULT_LOOP
from mockserver.server_limits import ServerLimits
from mockserver.serving import run_on

STABLE_SECONDS = 5.0
"""A worker that lived this long died of something other than its start-up: replace it
at once."""
FIRST_PAUSE = 0.1
MAX_PAUSE = 5.0
"""Pauses before replacing a worker that died young: doubling from the first to this."""
STOP_MARGIN = 5.0
"""Seconds past ``shutdown_timeout`` a stopping worker gets before it is killed."""

Log = Callable[[str], None]


def refusal(
    workers: int,
    *,
    no_repeats: bool,
    record_mode: str,
    fault_times: bool,
    platform: str = sys.platform,
) -> str | None:
    """Why ``serve`` with these settings cannot run ``workers`` processes (one line: the
    combination and the way out), or None when it can."""
    if workers <= 1:
        return None
    given = f"--workers {workers}"
    if platform == "win32" or not hasattr(os, "fork"):
        return (
            f"{given} needs os.fork, which this platform lacks. Way out: --workers 1 (or one "
            "tapedeck serve per port)."
        )
    if record_mode != "none":
        return (
            f"{given} with --record-mode {record_mode}: every worker would forward its own "
            "misses and append to the cassette (duplicates; rewrite would lose recordings). "
            "Way out: record with one worker, replay with many."
        )
    if no_repeats:
        return (
            f"{given} with --no-repeats: each worker has its own player, so a recording "
            f"would be answered up to {workers} times, not once. Way out: --workers 1."
        )
    if fault_times:
        return (
            f"{given} with a --fault times=N: each worker counts its own requests, so the "
            f"fault would fire up to {workers}xN times. Way out: --workers 1, or rate= "
            "(a rate holds per worker and so overall)."
        )
    return None


@dataclass
class Worker:
    """One slot of the pool: the process serving it now, and how its last ones fared."""

    number: int
    pid: int = 0
    started: float = 0.0
    young_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """Forks the workers, replaces the dead, stops them all on SIGINT or SIGTERM."""

    def __init__(
        self,
        app: web.Application,
        sockets: Sequence[socket.socket],
        limits: ServerLimits,
        count: int,
        log: Log,
        report: Callable[[], str] | None = None,
        loop: str = DEFAULT_LOOP,
    ) -> None:
        self.app, self.sockets, self.limits, self.log = app, sockets, limits, log
        self.report = report
        self.loop = loop
        self.workers = [Worker(number) for number in range(1, count + 1)]
        self.reports = Path(tempfile.mkdtemp(prefix="tapedeck-workers-"))
        # Nobody writes to this pipe: its read end turns readable in a worker once the
        # supervisor is gone (all write ends closed), however it went.
        self.alive_read, self.alive_write = os.pipe()
        self.wake_read, self.wake_write = os.pipe()
        self.supervisor = os.getpid()

    # ------------------------------------------------------------------ supervisor side

    def run(self) -> None:
        """Until SIGINT or SIGTERM; then every worker stopped, and their reports printed."""
        for fd in (self.wake_read, self.wake_write):
            os.set_blocking(fd, False)
        previous = {sig: signal.getsignal(sig) for sig in HANDLED}
        for sig in previous:
            signal.signal(sig, self._note)
        old_wakeup = signal.set_wakeup_fd(self.wake_write)
        try:
            gc.freeze()  # the loaded library: no collector writes to its pages in a worker
            for worker in self.workers:
                self._fork(worker)
            self._watch()
        finally:
            self._stop()  # also when the supervisor itself fails: no worker left behind
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (self.alive_read, self.alive_write, self.wake_read, self.wake_write):
                os.close(fd)
            self._print_reports()

    def _note(self, signum: int, frame: object) -> None:
        """The signal's number also reaches the wake-up pipe: ``_watch`` acts on it."""

    def _wait(self, timeout: float | None) -> list[int]:
        """Signals received, after waiting up to ``timeout`` seconds for one."""
        with contextlib.suppress(InterruptedError):
            select.select([self.wake_read], [], [], timeout)
        received = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.wake_read, 512):
                received += chunk
        return list(received)

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            due = [w.restart_at for w in self.workers if w.restart_at is not None]
            received = self._wait(max(0.0, min(due) - now) if due else None)
            if any(sig in STOPS for sig in received):
                return
            self._reap(stopping=False)
            now = time.monotonic()
            for worker in self.workers:
                if worker.restart_at is not None and worker.restart_at <= now:
                    self._fork(worker)

    def _reap(self, *, stopping: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:  # no child left
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue  # not one of ours: a child something else forked
            worker.pid = 0
            how = describe(status)
            if stopping:
                if how != "exited with status 0":
                    self.log(f"worker {worker.number} (pid {pid}) {how} while stopping")
                continue
            lived = time.monotonic() - worker.started
            worker.young_deaths = 0 if lived >= STABLE_SECONDS else worker.young_deaths + 1
            pause = pause_after(worker.young_deaths) if worker.young_deaths else 0.0
            worker.restart_at = time.monotonic() + pause
            self.log(
                f"worker {worker.number} (pid {pid}) {how} after {lived:.1f} s; "
                f"starting another in {pause:g} s"
            )

    def _stop(self) -> None:
        running = [worker for worker in self.workers if worker.pid]
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        for sock in self.sockets:
            sock.close()
        deadline = time.monotonic() + self.limits.shutdown_timeout + STOP_MARGIN
        while any(worker.pid for worker in self.workers):
            self._reap(stopping=True)
            left = deadline - time.monotonic()
            if not any(worker.pid for worker in self.workers):
                break
            again = self._wait(max(0.0, min(left, 0.5)))
            if left <= 0 or any(sig in STOPS for sig in again):
                for worker in self.workers:
                    if worker.pid:
                        self.log(f"worker {worker.number} (pid {worker.pid}) killed: too slow")
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_MARGIN

    def _print_reports(self) -> None:
        for path in sorted(self.reports.iterdir()):
            text = path.read_text(encoding="utf-8")
            if text:
                print(text, flush=True)
            path.unlink()
        self.reports.rmdir()

    def _fork(self, worker: Worker) -> None:
        running = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if running:
            # A thread's locks would be copied held, and the thread itself would not be.
            raise RuntimeError(f"cannot fork workers while threads run: {', '.join(running)}")
        sys.stdout.flush()
        sys.stderr.flush()
        # Blocked across the fork: a signal landing in the new worker before it drops the
        # supervisor's handlers would reach the supervisor's wake-up pipe as its own.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        pid = os.fork()
        if pid == 0:
            self._be_worker(worker.number, blocked)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        worker.pid, worker.started, worker.restart_at = pid, time.monotonic(), None
        self.log(f"worker {worker.number} started (pid {pid})")

    # ------------------------------------------------------------------ worker side

    def sockets_of(self, number: int) -> list[socket.socket]:
        """A worker's own socket, or the one they share. The supervisor keeps each open,
        so connections the kernel gives a dead worker's socket wait for its replacement
        instead of being reset."""
        if len(self.sockets) == len(self.workers):
            return [self.sockets[number - 1]]
        return list(self.sockets)

    def _be_worker(self, number: int, mask: set[int | signal.Signals]) -> None:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for fd in (self.wake_read, self.wake_write, self.alive_write):
                os.close(fd)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # SIGTERM stays blocked until the worker's loop handles it (``run_on``).
            signal.pthread_sigmask(signal.SIG_SETMASK, {*mask, signal.SIGTERM})
            own = self.sockets_of(number)
            for sock in self.sockets:
                if sock not in own:
                    # Held here, another worker's socket would queue connections past
                    # that worker's stop, instead of refusing them.
                    sock.close()
            run_on(self.app, own, self.limits, watch=self.alive_read, loop=self.loop)
            if self.report is not None and os.getppid() == self.supervisor:
                text = self.report()
                if text:
                    heading = f"worker {number} (pid {os.getpid()}):\n"
                    path = self.reports / f"{number:04d}-{os.getpid()}.txt"
                    path.write_text(heading + text, encoding="utf-8")
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # never back into the supervisor's stack, its atexit, its finally


STOPS = (signal.SIGINT, signal.SIGTERM)
# Windows has no SIGCHLD (nor fork): there this module only words the refusal.
HANDLED = (*STOPS, *([signal.SIGCHLD] if hasattr(signal, "SIGCHLD") else []))


def pause_after(young_deaths: int) -> float:
    """Seconds before replacing a worker whose last ``young_deaths`` died young."""
    return min(MAX_PAUSE, FIRST_PAUSE * 2.0 ** (young_deaths - 1))


def describe(status: int) -> str:
    """A wait status in words: "exited with status 1", "was killed by SIGKILL"."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def serve_workers(
    app: web.Application,
    host: str,
    port: int,
    limits: ServerLimits,
    count: int,
    ready: Callable[[str], None],
    *,
    log: Log,
    report: Callable[[], str] | None = None,
    loop: str = DEFAULT_LOOP,
) -> None:
    """Serve ``app`` from ``count`` worker processes on one socket, in the foreground
    until SIGINT or SIGTERM (raises the bind's OSError before any worker starts).
    ``report``: each worker's words at its stop, printed by the supervisor in order."""
    sockets = listeners(host, port, count)
    try:
        ready(url_of(sockets[0]))
        Supervisor(app, sockets, limits, count, log, report, loop).run()
    finally:
        for sock in sockets:
            sock.close()
