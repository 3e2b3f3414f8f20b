"""``tapedeck serve --workers N`` as a user runs it: one port, N processes, each with the
same cassettes; a worker that dies is replaced while the others serve; SIGTERM stops
them all; a supervisor killed outright leaves no worker behind; the settings that cannot
hold across processes are refused. And the same app under gunicorn.

Which worker answered is read from the kernel (``/proc``: the worker process holding the
server end of each client connection), not from anything the server says. Linux only,
for that reason (the supervisor itself runs on any POSIX system).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from mockserver import cassettes, synth
from mockserver.cli import main
from mockserver.model import Exchange, Script
from mockserver.workers import refusal

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads connection owners from Linux's /proc"
)

PATH = "/v1/chat/completions"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")
DEADLINE = 15.0  # seconds any one expected line may take (a loaded CI machine)
CONNECTIONS = 16  # both workers get one: all on one of two has odds 2 / 2**16


def recorded(tmp_path: Path) -> tuple[Path, Exchange]:
    exchange = synth.synthesize(PATH, REQUEST, Script(text="one recording, every worker"))
    path = tmp_path / "one.yaml"
    cassettes.dump([exchange], path)
    return path, exchange


class Lines:
    """A child's output pipe read line by line, each wait bounded (never a hung test).
    Reads the descriptor itself: a buffered reader would hide lines from ``select``."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        self.fd, self.buffer = stream.fileno(), b""

    def _more(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        assert ready, f"nothing more within {timeout} s; so far: {self.buffer!r}"
        return os.read(self.fd, 65536)

    def next(self, timeout: float = DEADLINE) -> str:
        while b"\n" not in self.buffer:
            chunk = self._more(timeout)
            assert chunk, f"ended before a whole line: {self.buffer!r}"
            self.buffer += chunk
        first, self.buffer = self.buffer.split(b"\n", 1)
        return first.decode()

    def rest(self, timeout: float = DEADLINE) -> str:
        while chunk := self._more(timeout):
            self.buffer += chunk
        rest, self.buffer = self.buffer, b""
        return rest.decode()


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    pids: list[int]
    out: Lines
    err: Lines


def serve(cassette: Path, *extra: str) -> Served:
    """A started ``serve --workers 2 --port 0``, its URL and its workers' pids."""
    command = [sys.executable, "-m", "mockserver", "serve", "--cassettes", str(cassette)]
    command += ["--port", "0", "--workers", "2", *extra]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = Lines(server.stdout), Lines(server.stderr)
    banner = out.next()
    found = re.search(r"at (http://127\.0\.0\.1:\d+)$", banner)
    assert found, banner
    pids: dict[int, int] = {}
    while len(pids) < 2:
        started = STARTED.search(err.next())
        assert started
        pids[int(started[1])] = int(started[2])
    return Served(server, found[1], [pids[1], pids[2]], out, err)


def client_ports_of(pid: int) -> set[int]:
    """The client-side ports of the TCP connections process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[9] in inodes and fields[3] == "01":  # ESTABLISHED
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def connect(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=DEADLINE)


def ask(connection: http.client.HTTPConnection) -> tuple[int, bytes]:
    connection.request("POST", PATH, json.dumps(REQUEST), {"content-type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def owners(url: str, pids: list[int], exchange: Exchange) -> dict[int, int]:
    """Replayed bytes on ``CONNECTIONS`` kept-alive connections: which pid holds each."""
    connections = [connect(url) for _ in range(CONNECTIONS)]
    try:
        for connection in connections:
            assert ask(connection) == (200, exchange.response.body)
        ports = {pid: client_ports_of(pid) for pid in pids}
        found = {}
        for connection in connections:
            port = connection.sock.getsockname()[1]
            holders = [pid for pid in pids if port in ports[pid]]
            assert len(holders) == 1, (port, ports)
            found[port] = holders[0]
        return found
    finally:
        for connection in connections:
            connection.close()


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Servers a test started, killed if the test left them running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for server in started:
        if server.poll() is None:
            server.kill()
        server.communicate()


def test_two_workers_replay_on_one_port_and_sigterm_stops_both(
    tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    cassette, exchange = recorded(tmp_path)
    served = serve(cassette, "--request-log", "5")
    stopped.append(served.process)
    assert set(owners(served.url, served.pids, exchange).values()) == set(served.pids)
    miss = connect(served.url)
    miss.request("POST", PATH, json.dumps({"model": "m", "messages": []}))
    assert miss.getresponse().status >= 400
    miss.close()
    served.process.send_signal(signal.SIGTERM)
    out, err = served.out.rest(), served.err.rest()
    assert served.process.wait(timeout=DEADLINE) == 0, err
    for pid in served.pids:  # reaped by the supervisor: gone, not orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # The request log is per worker: the one that saw the miss says so, under its name.
    assert re.search(r"worker [12] \(pid \d+\):\nThe last 1 request\(s\) that matched no", out)
    assert "while stopping" not in err


def test_a_killed_worker_is_replaced_while_the_other_serves(
    tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    cassette, exchange = recorded(tmp_path)
    served = serve(cassette)
    server, url, (victim, survivor) = served.process, served.url, served.pids
    stopped.append(server)
    # A new connection per request: the kernel picks a worker for each. Those it gives
    # the dead worker's socket wait there for the replacement: none fails.
    for number in range(30):
        if number == 10:
            os.kill(victim, signal.SIGKILL)
        connection = connect(url)
        assert ask(connection) == (200, exchange.response.body), number
        connection.close()
    died = served.err.next()
    assert f"worker 1 (pid {victim}) was killed by SIGKILL after" in died
    replaced = STARTED.search(served.err.next())
    assert replaced and replaced[1] == "1"
    replacement = int(replaced[2])
    assert set(owners(url, [survivor, replacement], exchange).values()) == {
        survivor,
        replacement,
    }
    # The supervisor killed outright: its workers notice and stop by themselves.
    watched = [os.pidfd_open(pid) for pid in (survivor, replacement)]
    try:
        server.kill()
        server.wait(timeout=DEADLINE)
        ended: set[int] = set()
        while len(ended) < len(watched):
            ready, _, _ = select.select(watched, [], [], DEADLINE)
            assert ready, "a worker outlived its supervisor"
            ended.update(ready)
    finally:
        for fd in watched:
            os.close(fd)


# A worker whose app fails at start-up, every time; the supervisor's lines on stdout.
FAILING_AT_START = """
import sys
from mockserver.app import make_app
from mockserver.index import Library
from mockserver.server_limits import ServerLimits
from mockserver.workers import serve_workers

async def fail(app):
    raise RuntimeError("this worker fails at start-up, on purpose")

app = make_app(Library(()))
app.on_startup.append(fail)
say = lambda text: print(text, flush=True)
serve_workers(app, "127.0.0.1", 0, ServerLimits(), 1, say, log=say)
"""


def test_a_worker_dying_at_start_up_is_replaced_ever_more_slowly(
    stopped: list[subprocess.Popen[bytes]],
) -> None:
    command = [sys.executable, "-c", FAILING_AT_START]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stopped.append(server)
    out = Lines(server.stdout)
    assert out.next().startswith("http://127.0.0.1:")
    pauses: list[float] = []
    while len(pauses) < 3:
        said = out.next()
        if died := re.search(
            r"exited with status 1 after [\d.]+ s; starting another in (.+) s", said
        ):
            pauses.append(float(died[1]))
    assert pauses == [0.1, 0.2, 0.4]
    server.send_signal(signal.SIGTERM)
    out.rest()
    assert server.wait(timeout=DEADLINE) == 0
    assert b"this worker fails at start-up, on purpose" in server.communicate()[1]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--no-repeats"], "--workers 2 with --no-repeats"),
        (["--record-mode", "once"], "record with one worker, replay with many"),
        (["--fault", "status:times=1"], "--fault times=N"),
    ],
)
def test_combinations_that_cannot_hold_across_workers_are_refused(
    flags: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A cassette that does not exist: the refusal comes before anything is loaded.
    argv = ["serve", "--workers", "2", "--cassettes", "/nonexistent/x.yaml", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Way out:" in err
    assert err.count("\n") == 1


def test_a_worker_count_below_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--workers", "0"])
    assert exit_.value.code == 2
    assert "expected 1 or more processes, found 0" in capsys.readouterr().err


def test_no_fork_no_workers() -> None:
    words = refusal(2, no_repeats=False, record_mode="none", fault_times=False, platform="win32")
    assert words is not None and "needs os.fork" in words
    assert refusal(1, no_repeats=True, record_mode="all", fault_times=True) is None


def test_gunicorn_serves_the_app_from_two_workers(
    tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    cassette, exchange = recorded(tmp_path)
    command = [sys.executable, "-m", "gunicorn", "mockserver.gunicorn:app"]
    command += ["-k", "aiohttp.GunicornWebWorker", "-w", "2", "-b", "127.0.0.1:0"]
    environment = os.environ | {"TAPEDECK_CASSETTES": str(cassette)}
    server = subprocess.Popen(command, stderr=subprocess.PIPE, env=environment, cwd=tmp_path)
    stopped.append(server)
    err = Lines(server.stderr)
    pids: list[int] = []
    url = ""
    while len(pids) < 2:
        said = err.next()
        if listening := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", said):
            url = listening[1]
        if booted := re.search(r"Booting worker with pid: (\d+)", said):
            pids.append(int(booted[1]))
    connection = connect(url)
    for _ in range(2):  # and again: repeats, as with tapedeck serve
        assert ask(connection) == (200, exchange.response.body)
    connection.close()
    server.send_signal(signal.SIGTERM)
    err.rest()
    assert server.wait(timeout=DEADLINE) == 0
