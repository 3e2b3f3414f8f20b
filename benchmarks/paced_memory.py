"""Memory per open paced stream: ``tapedeck serve --speed 1`` against a naive aiohttp server.

    python benchmarks/paced_memory.py [--streams 2000] [--events 1000] [--gap 0.02] [--quick]

One cassette holds an OpenAI chat stream of ``--events`` events recorded ``--gap`` seconds
apart (1,000 events at 20 ms: a 20 s stream). Two servers replay it in turn, each pinned to
core 0: the real ``tapedeck serve --speed 1``, and the minimal aiohttp handler of
``baseline_server.py --mode paced`` (sleep, then one ``StreamResponse.write()`` per event;
the same bytes and headers). This process, pinned to core 1, is the client: ``--streams``
raw sockets (one ``asyncio.Protocol`` each, not Tapedeck's code) that ask for the stream
and read everything, counting bytes.

For each server: a warm-up (16 streams read to their first event, then dropped), the RSS
at rest, then every stream opened; once every one has received its first event (all open
and streaming), the RSS is read five times over two seconds. The figure is
(max RSS open - RSS at rest) / streams, in KiB, with the server's CPU share and the events
it delivered meanwhile (at 2,000 streams x 50 events/s a core cannot keep up: memory is
measured regardless, the pace is ``pacing.py --load``'s business).

Results are printed and written as JSON (``--out``, default
benchmarks/results/paced_memory.json). Exit 1 when Tapedeck's figure is above ``--budget``
KiB (16).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from baseline_server import write_payload

from mockserver import cassettes
from mockserver.dialects import DIALECTS
from mockserver.index import prepare
from mockserver.model import Exchange, Request, Script, Timing

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
CHAT = "/v1/chat/completions"
DEFAULT_OUT = HERE / "results" / "paced_memory.json"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "pace me"}],
    "stream": True,
}
HEADERS_AT = 0.05  # recorded: the headers 50 ms after the request, the first event at 100 ms
FIRST_EVENT_AT = 0.1
WARM_UP = 16
CONNECTING = 64  # connects in flight at once (the server's accept backlog is 128)


def paced_exchange(events: int, gap: float) -> Exchange:
    """An OpenAI chat stream of exactly ``events`` events recorded ``gap`` seconds apart."""
    raw = json.dumps(BODY).encode()
    request = Request("POST", CHAT, body=raw, json=BODY)
    # The synthesizer sends a role event, one per 4-character delta, a finish and [DONE].
    script = Script(text="abc " * (events - 3), chunk_size=4)
    response = DIALECTS["openai_chat"].synthesize(request, script)
    offsets = tuple(FIRST_EVENT_AT + number * gap for number in range(events))
    return Exchange(request, response, timing=Timing(headers=HEADERS_AT, events=offsets))


def request_bytes(version: str = "1.1") -> bytes:
    body = json.dumps(BODY).encode()
    head = (
        f"POST {CHAT} HTTP/{version}\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def raise_open_files() -> int:
    """This process's soft open-file limit raised to its hard one (the servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command] if _has_taskset() else command


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


@contextlib.contextmanager
def serving(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, until its port accepts connections."""
    process = subprocess.Popen(
        pinned(command, 0), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"{command[:4]} exited with {process.returncode}: {error}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:4]} did not listen within 60 s")
            time.sleep(0.05)  # polling the port is the readiness check
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Reader(asyncio.Protocol):
    """One client: sends the request, reads everything, notes when the body starts."""

    def __init__(self, request: bytes, streaming: asyncio.Event, counter: list[int]) -> None:
        self.request = request
        self.streaming = streaming  # set when this stream's first body byte arrives
        self.counter = counter  # [streams streaming, bytes read, streams closed]
        self.head = b""
        self.started = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.counter[1] += len(data)
        if self.started:
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0 and len(self.head) > end + 4:
            if not self.head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"not a 200: {self.head[:80]!r}")
            self.started = True
            self.head = b""
            self.counter[0] += 1
            self.streaming.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.counter[2] += 1


async def open_streams(port: int, streams: int) -> tuple[list[Reader], list[int], float]:
    """``streams`` clients, each once its first event arrived; and seconds it took."""
    loop = asyncio.get_running_loop()
    counter = [0, 0, 0]
    gate = asyncio.Semaphore(CONNECTING)
    request = request_bytes()
    started = time.perf_counter()

    async def one() -> Reader:
        async with gate:
            _, reader = await loop.create_connection(
                lambda: Reader(request, asyncio.Event(), counter), HOST, port
            )
        await reader.streaming.wait()
        return reader

    readers = await asyncio.gather(*(one() for _ in range(streams)))
    return list(readers), counter, time.perf_counter() - started


async def measure(pid: int, port: int, streams: int) -> dict[str, Any]:
    warm, _, _ = await open_streams(port, WARM_UP)
    for reader in warm:
        assert reader.transport is not None
        reader.transport.close()
    await asyncio.sleep(1.0)  # the server notices the warm-up clients left
    at_rest = rss_kib(pid)
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    readers, counter, opening = await open_streams(port, streams)
    readings = []
    bytes_before = counter[1]
    for _ in range(5):
        readings.append(rss_kib(pid))
        await asyncio.sleep(0.4)
    wall = time.perf_counter() - wall_before
    cpu = cpu_seconds(pid) - cpu_before
    delivered = counter[1] - bytes_before
    closed_early = counter[2]
    for reader in readers:
        assert reader.transport is not None
        reader.transport.close()
    return {
        "rss_at_rest_kib": at_rest,
        "rss_open_kib": readings,
        "kib_per_stream": round((max(readings) - at_rest) / streams, 1),
        "seconds_to_open": round(opening, 2),
        "server_cpu_share": round(cpu / wall, 2),
        "bytes_per_second_while_open": round(delivered / 2.0),
        "streams_ended_before_reading": closed_early,
    }


def run_server(command: list[str], port: int, streams: int) -> dict[str, Any]:
    with serving(command, port) as process:
        return asyncio.run(measure(process.pid, port, streams))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.02, help="recorded seconds between events")
    parser.add_argument("--quick", action="store_true", help="500 streams")
    parser.add_argument("--budget", type=float, default=16.0, help="KiB per stream allowed")
    parser.add_argument("--only", choices=("tapedeck", "baseline"), help="one server only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    streams = 500 if args.quick else args.streams
    limit = raise_open_files()
    if limit < streams * 2 + 400:  # both ends of every stream live on this machine
        print(f"the open-file limit ({limit}) is too low for {streams} streams", file=sys.stderr)
        return 2
    if _has_taskset():
        os.sched_setaffinity(0, {1})
    exchange = paced_exchange(args.events, args.gap)
    entry = prepare(exchange)
    assert entry is not None and len(entry.frames) == args.events
    results: dict[str, Any] = {
        "streams": streams,
        "events": args.events,
        "gap_s": args.gap,
        "load_average": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "cassettes"
        folder.mkdir()
        cassettes.dump([exchange], folder / "paced.yaml")
        payload = Path(scratch) / "payload.json"
        write_payload(payload, 200, entry.headers, entry.frames)
        servers: dict[str, list[str]] = {  # the port goes last
            "tapedeck": [
                sys.executable, "-m", "mockserver", "serve", "--no-index-cache",
                "--cassettes", str(folder),
                "--speed", "1", "--max-connections", str(streams + 2 * WARM_UP + 64), "--port",
            ],
            "baseline": [
                sys.executable, str(HERE / "baseline_server.py"), "--mode", "paced",
                "--payload", str(payload), "--gap", str(args.gap),
                "--headers-at", str(HEADERS_AT), "--first-at", str(FIRST_EVENT_AT), "--port",
            ],
        }  # fmt: skip
        for name, command in servers.items():
            if args.only and name != args.only:
                continue
            port = free_port()
            results[name] = run_server([*command, str(port)], port, streams)
            row = results[name]
            print(
                f"{name:<9} {streams} streams: {row['kib_per_stream']:>6.1f} KiB/stream "
                f"(RSS at rest {row['rss_at_rest_kib'] / 1024:.1f} MiB, open "
                f"{max(row['rss_open_kib']) / 1024:.1f} MiB; opened in "
                f"{row['seconds_to_open']} s; server CPU {row['server_cpu_share']:.0%}; "
                f"{row['streams_ended_before_reading']} ended before the reading)",
                flush=True,
            )
    results["load_average_after"] = os.getloadavg()
    if "tapedeck" in results and "baseline" in results:
        ratio = results["tapedeck"]["kib_per_stream"] / max(
            results["baseline"]["kib_per_stream"], 0.1
        )
        results["ratio"] = round(ratio, 2)
        print(f"tapedeck / baseline: {ratio:.2f}x   load average: {os.getloadavg()[0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "tapedeck" in results and results["tapedeck"]["kib_per_stream"] > args.budget:
        print(f"OVER BUDGET: more than {args.budget} KiB per open paced stream")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
