"""How faithfully ``tapedeck serve --speed X`` reproduces recorded event timing.

A cassette holds one OpenAI chat stream whose recorded arrival offsets are irregular
(seeded gaps of 5-40 ms, like a real model's). The real ``tapedeck serve --speed X`` replays
it to raw-socket clients (not Tapedeck's code) that timestamp every HTTP chunk as it
arrives. For each event we compare the gap the client saw with the recorded gap divided
by the speed and report the median and p99 absolute error, with 1 and with many
concurrent streams (pacing has a CPU cost per event: reference/performance.md).

    python benchmarks/pacing.py [--quick]
    python benchmarks/pacing.py --load [--rates 5000,15000,30000,45000] [--gap 0.02]

``--load``: accuracy under load on one core. For each rate R (events/s in total), R x gap
streams of a cassette with regular ``--gap`` offsets (``paced_memory.paced_exchange``,
``--events`` events each), their requests spread over the first second, are replayed by
Tapedeck's app at speed 1 (the server pinned to core 0, the client, one asyncio process of
raw-socket protocols, to core 1). The client timestamps every HTTP chunk; the error of a
gap is |seen - asked| / asked, reported as median, p99 and the share of gaps off by more
than 10%. The server reports its own view when it stops: the pacer's lateness (how late
each event left its deadline, and the share later than 10% of its gap), which does not
depend on the client keeping up. Where the two disagree, the client was the bottleneck.
Also: the server's CPU per event and share of a core, and the share of the time it was
ready to run but waited for its core (``waited``, from /proc/PID/schedstat: other
processes had it). On a shared machine ``--rounds N`` keeps, for each rate and server, the
round in which it waited least; ``--baseline`` runs ``baseline_server.py --mode paced``
(sleep, then one write per event) at each rate too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mockserver import cassettes
from mockserver.dialects import DIALECTS
from mockserver.framing import sse
from mockserver.model import Exchange, Request, Script, Timing

HOST = "127.0.0.1"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "pace me"}],
    "stream": True,
}


def make_cassette(folder: Path, events_wanted: int, seed: int) -> tuple[Path, list[float]]:
    """A synthesized stream of ``events_wanted`` events with irregular recorded offsets."""
    raw = json.dumps(BODY).encode()
    request = Request("POST", "/v1/chat/completions", body=raw, json=BODY)
    text = " ".join(f"w{n}" for n in range(events_wanted))
    response = DIALECTS["openai_chat"].synthesize(request, Script(text=text, chunk_size=3))
    frames = sse.frames(response.body)
    rng = random.Random(seed)
    offsets, now = [], 0.2
    for _ in frames:
        offsets.append(now)
        now += rng.uniform(0.005, 0.040)
    timing = Timing(headers=0.15, events=tuple(offsets))
    path = folder / "paced.yaml"
    cassettes.dump([Exchange(request, response, timing=timing)], path)
    return path, offsets


async def one_stream(port: int) -> list[float]:
    """Arrival time of every HTTP chunk of one streamed response, on the loop clock."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(HOST, port)
    body = json.dumps(BODY).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    arrivals = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            break
        await reader.readexactly(size + 2)
        arrivals.append(loop.time())
    writer.close()
    return arrivals


async def measure(port: int, streams: int) -> list[list[float]]:
    return await asyncio.gather(*(one_stream(port) for _ in range(streams)))


def errors(recorded: list[float], seen: list[list[float]], speed: float) -> list[float]:
    """|seen gap - recorded gap / speed| in milliseconds, for every event of every stream."""
    want = [(b - a) / speed for a, b in itertools.pairwise(recorded)]
    out: list[float] = []
    for arrivals in seen:
        got = [b - a for a, b in itertools.pairwise(arrivals)]
        out.extend(abs(g - w) * 1000 for g, w in zip(got, want, strict=True))
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def run(speed: float, streams: int, cassette: Path, recorded: list[float]) -> dict[str, float]:
    port = free_port()
    command = [
        sys.executable, "-m", "mockserver", "serve", "--cassettes", str(cassette),
        "--port", str(port), "--speed", str(speed),
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            server.stdout.readline()  # printed once the socket listens
            seen = asyncio.run(measure(port, streams))
        finally:
            server.terminate()
    assert all(len(s) == len(recorded) for s in seen), "a stream lost events"
    gaps_ms = errors(recorded, seen, speed)
    gaps_ms.sort()
    return {
        "speed": speed,
        "streams": streams,
        "events": len(gaps_ms),
        "median_error_ms": round(statistics.median(gaps_ms), 3),
        "p99_error_ms": round(gaps_ms[int(0.99 * (len(gaps_ms) - 1))], 3),
        "mean_recorded_gap_ms": round(
            1000 * (recorded[-1] - recorded[0]) / (len(recorded) - 1) / speed, 3
        ),
    }


SERVER = """
import json, sys
from mockserver.app import ServerState, make_app
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_limits import ServerLimits
from mockserver.serving import run
state = ServerState(Player(Library.from_paths([sys.argv[1]]), allow_repeats=True), speed=1.0)
limits = ServerLimits(max_connections=int(sys.argv[3]))
run(make_app(state, server_limits=limits), "127.0.0.1", int(sys.argv[2]), limits,
    ready=lambda url: print(url, flush=True))
late = state.pacer.lateness()
print(json.dumps({"events": late.events, "late_share": late.late_share, "p50_ms": late.p50 * 1e3,
                  "p99_ms": late.p99 * 1e3, "worst_ms": late.worst * 1e3}), flush=True)
"""
"""The app as ``tapedeck serve --speed 1`` runs it, then the pacer's lateness on SIGTERM."""


class Chunks(asyncio.Protocol):
    """One paced stream: the loop time each HTTP chunk completed at (a small parser of
    the chunked coding: one event a chunk)."""

    def __init__(self, request: bytes, ended: asyncio.Future[None]) -> None:
        self.request, self.ended = request, ended
        self.arrivals: list[float] = []
        self.buffer = b""
        self.in_head = True
        self.left = 0  # bytes of the current chunk (and its CRLF) still to come

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        buffer = self.buffer + data
        at = 0
        if self.in_head:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            self.in_head, at = False, end + 4
        while at < len(buffer):
            if self.left:
                taken = min(self.left, len(buffer) - at)
                self.left -= taken
                at += taken
                if not self.left:
                    self.arrivals.append(now)
                continue
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(buffer[at:line_end], 16)
            at = line_end + 2
            if size == 0:
                at = len(buffer)
                break
            self.left = size + 2
        self.buffer = buffer[at:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


async def load_clients(port: int, streams: int, spread: float) -> list[list[float]]:
    """``streams`` paced streams, started evenly over ``spread`` seconds, read to the end."""
    loop = asyncio.get_running_loop()
    body = json.dumps(BODY).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    begin = loop.time()

    async def one(number: int) -> list[float]:
        await asyncio.sleep(max(0.0, begin + spread * number / streams - loop.time()))
        ended: asyncio.Future[None] = loop.create_future()
        _, protocol = await loop.create_connection(lambda: Chunks(request, ended), HOST, port)
        await ended
        return protocol.arrivals

    return await asyncio.gather(*(one(number) for number in range(streams)))


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
            return
        time.sleep(0.05)  # polling the port is the readiness check
    raise RuntimeError(f"no server on port {port} within 30 s")


def runqueue_seconds(pid: int) -> float:
    """Time the process was ready to run but waited for a core (other processes had it):
    on a shared machine, what lateness the server could not help."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    rate: int, gap: float, events: int, folder: Path, baseline: Path | None = None
) -> dict[str, Any]:
    """One rate: Tapedeck's app, or with ``baseline`` (a payload) the naive aiohttp server."""
    streams = max(1, round(rate * gap))
    port = free_port()
    command = [sys.executable, "-c", SERVER, str(folder), str(port), str(streams + 64)]
    if baseline is not None:
        command = [
            sys.executable, str(Path(__file__).parent / "baseline_server.py"), "--mode", "paced",
            "--payload", str(baseline), "--port", str(port), "--gap", str(gap),
            "--headers-at", "0.05", "--first-at", "0.1",
        ]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        if baseline is None:
            server.stdout.readline()  # the URL, once the socket listens
        else:
            wait_for_port(port)
        cpu_before, waited_before = cpu_seconds(server.pid), runqueue_seconds(server.pid)
        started = time.perf_counter()
        seen = asyncio.run(load_clients(port, streams, spread=1.0))
        wall = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_before
        waited = runqueue_seconds(server.pid) - waited_before
        server.send_signal(signal.SIGTERM)
        reported = json.loads(server.stdout.readline() or "{}")
    lost = sorted({len(arrivals) for arrivals in seen} - {events})
    assert not lost, f"streams with {lost} events of {events}"
    off = sorted(abs((b - a) - gap) / gap for arrivals in seen for a, b in
                 itertools.pairwise(arrivals))  # fmt: skip
    return {
        "rate": rate,
        "streams": streams,
        "gaps": len(off),
        "client_median_error_pct": round(100 * statistics.median(off), 1),
        "client_p99_error_pct": round(100 * off[int(0.99 * (len(off) - 1))], 1),
        "client_share_off_10pct": round(sum(1 for x in off if x > 0.1) / len(off), 4),
        "server": "baseline" if baseline else "tapedeck",
        "server_p50_late_ms": round(reported.get("p50_ms", math.nan), 2),
        "server_p99_late_ms": round(reported.get("p99_ms", math.nan), 2),
        "server_worst_late_ms": round(reported.get("worst_ms", math.nan), 1),
        "server_share_late": round(reported.get("late_share", math.nan), 4),
        "server_cpu_us_per_event": round(1e6 * cpu / (streams * events), 1),
        "server_cpu_share": round(cpu / wall, 2),
        "server_waited_for_cpu_share": round(waited / wall, 3),
    }


def load_main(args: argparse.Namespace) -> int:
    from baseline_server import write_payload
    from paced_memory import paced_exchange, raise_open_files

    from mockserver.index import prepare

    raise_open_files()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "cassettes"
        folder.mkdir()
        exchange = paced_exchange(args.events, args.gap)
        cassettes.dump([exchange], folder / "paced.yaml")
        entry = prepare(exchange)
        assert entry is not None
        payload = Path(scratch) / "payload.json"  # the same bytes for the baseline
        write_payload(payload, 200, entry.headers, entry.frames)
        print(f"load average {os.getloadavg()[0]:.2f}; gap {args.gap * 1000:g} ms, "
              f"{args.events} events a stream")  # fmt: skip
        print(f"{'server':>9} {'events/s':>9} {'streams':>8} {'gaps':>7} | client: {'median':>7}"
              f" {'p99':>7} {'>10%':>7} | server: {'p50 ms':>7} {'p99 ms':>7} {'worst':>7}"
              f" {'late':>7} {'µs/event':>8} {'cpu':>4} {'waited':>6}")  # fmt: skip
        servers = (None, payload) if args.baseline else (None,)
        for rate, against in itertools.product((int(r) for r in args.rates.split(",")), servers):
            # On a shared machine: the round in which the server waited least for its core.
            rounds = [run_load(rate, args.gap, args.events, folder, against)
                      for _ in range(args.rounds)]  # fmt: skip
            row = min(rounds, key=lambda r: r["server_waited_for_cpu_share"])
            rows.append(row)
            print(
                f"{row['server']:>9} {rate:>9} {row['streams']:>8} {row['gaps']:>7} | client: "
                f"{row['client_median_error_pct']:>6}% {row['client_p99_error_pct']:>6}% "
                f"{row['client_share_off_10pct']:>7.2%} | server: {row['server_p50_late_ms']:>7} "
                f"{row['server_p99_late_ms']:>7} {row['server_worst_late_ms']:>7} "
                f"{row['server_share_late']:>7.2%} {row['server_cpu_us_per_event']:>8} "
                f"{row['server_cpu_share']:>4.0%} {row['server_waited_for_cpu_share']:>6.1%}",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and streams")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--load", action="store_true", help="accuracy at 5k to 45k events/s")
    parser.add_argument("--rates", default="5000,15000,30000,45000", help="--load: events/s")
    parser.add_argument("--gap", type=float, default=0.02, help="--load: seconds between events")
    parser.add_argument("--events", type=int, default=200, help="--load: events a stream")
    parser.add_argument(
        "--baseline", action="store_true", help="--load: the naive aiohttp server too, each rate"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="--load: keep the least CPU-starved of N rounds"
    )
    args = parser.parse_args()
    if args.load:
        return load_main(args)
    events = 40 if args.quick else 100
    crowd = 20 if args.quick else 100
    with tempfile.TemporaryDirectory() as folder:
        cassette, recorded = make_cassette(Path(folder), events, seed=7)
        rows = [run(speed, streams, cassette, recorded) for speed, streams in
                ((1.0, 1), (2.0, 1), (1.0, crowd))]  # fmt: skip
    print(f"{'speed':>6} {'streams':>8} {'gaps':>6} {'median err ms':>14} {'p99 err ms':>11}"
          f" {'mean gap ms':>12}")  # fmt: skip
    for row in rows:
        print(
            f"{row['speed']:>6} {row['streams']:>8} {row['events']:>6} "
            f"{row['median_error_ms']:>14} {row['p99_error_ms']:>11} "
            f"{row['mean_recorded_gap_ms']:>12}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
