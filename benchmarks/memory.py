"""Memory of a long-running ``tapedeck serve`` under requests it cannot match: flat.

    python benchmarks/memory.py [--requests 10000] [--size 100000] [--quick]

The real ``tapedeck serve`` (a subprocess, one small cassette) takes, mode by mode:

- ``misses``: N distinct requests of SIZE bytes that match nothing (each answered 400);
- ``synthesized``: the same with ``--synthesize`` (each answered by the synthesizer);
- ``paced``: ``--synthesize --profile`` streams, N distinct small requests from clients
  that read the status line and hang up while the stream is still being paced.

Its resident memory (VmRSS) is read after every tenth of the requests. A server that keeps
something per request grows with them (before the fix: 42 MB to 963 MB for 3,000 misses
of 100 KB); one that does not stays flat after warming up (allocator arenas, buffers,
caches). The figure is the growth from the end of the first tenth to the end; the run
fails (exit 1) when a mode grows by more than ``--flat`` MB (10).

The clients (aiohttp, raw sockets for the paced ones) are not Tapedeck's code. Results are
printed and written as JSON (``--out``, default benchmarks/results/memory.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import workloads

from mockserver import cassettes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
CHAT = "/v1/chat/completions"
DEFAULT_OUT = HERE / "results" / "memory.json"
SAMPLES = 10  # RSS readings, one after each tenth of the requests
CONCURRENCY = 16
PACED_CONCURRENCY = 64
PROFILE = "ttft=0.05,tps=20"  # a 12-event stream lasts about 0.6 s: clients leave first


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(folder: Path, extra: Sequence[str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``tapedeck serve`` on one small cassette, until its port accepts connections."""
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--cassettes", str(folder)]
    process = subprocess.Popen(
        [*command, "--port", str(port), *extra],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tapedeck serve exited with {process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("tapedeck serve did not listen within 60 s")
            time.sleep(0.05)  # polling the port is the readiness check
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def body(number: int, filler: str, *, stream: bool = False) -> bytes:
    """A request no recording matches, distinct from every other one."""
    content = f"request {number} {filler}"
    asked: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        asked["stream"] = True
    return json.dumps(asked).encode()


async def send_batch(url: str, numbers: range, filler: str, expected: int) -> None:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(number: int) -> None:
            data = body(number, filler)
            headers = {"content-type": "application/json"}
            async with session.post(url + CHAT, data=data, headers=headers) as answer:
                await answer.read()
                if answer.status != expected:
                    raise RuntimeError(f"request {number}: status {answer.status}")

        await asyncio.gather(*(one(number) for number in numbers))


async def hang_up_batch(port: int, numbers: range) -> None:
    """Clients that ask for a paced stream, read the status line, and leave."""
    gate = asyncio.Semaphore(PACED_CONCURRENCY)

    async def one(number: int) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection(HOST, port)
            data = body(number, "", stream=True)
            head = (
                f"POST {CHAT} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            writer.write(head + data)
            status = await reader.readline()
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"paced request {number}: {status!r}")
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    await asyncio.gather(*(one(number) for number in numbers))


def run_mode(name: str, folder: Path, requests: int, size: int) -> dict[str, Any]:
    extra = {"misses": [], "synthesized": ["--synthesize"]}.get(
        name, ["--synthesize", "--profile", PROFILE]
    )
    filler = "".join(random.Random(7).choices("abcdefgh ", k=size))
    step = max(1, requests // SAMPLES)
    with serving(folder, extra) as (process, port):
        url = f"http://{HOST}:{port}"
        readings = [rss_mb(process.pid)]
        started = time.perf_counter()
        for first in range(0, requests, step):
            numbers = range(first, min(requests, first + step))
            if name == "paced":
                asyncio.run(hang_up_batch(port, numbers))
            else:
                asyncio.run(send_batch(url, numbers, filler, 400 if name == "misses" else 200))
            readings.append(rss_mb(process.pid))
        seconds = time.perf_counter() - started
        if name == "paced":
            time.sleep(2.0)  # the last handlers end at their next pacing deadline
            readings.append(rss_mb(process.pid))
    return {
        "mode": name,
        "requests": requests,
        "body_bytes": len(body(0, filler if name != "paced" else "")),
        "seconds": round(seconds, 1),
        "rss_mb": [round(r, 1) for r in readings],
        "growth_after_warmup_mb": round(readings[-1] - readings[1], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100_000, help="bytes of filler per body")
    parser.add_argument("--quick", action="store_true", help="1,000 requests per mode")
    parser.add_argument("--modes", default="misses,synthesized,paced")
    parser.add_argument("--flat", type=float, default=10.0, help="MB of growth allowed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    requests = 1_000 if args.quick else args.requests
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cassettes.dump([workloads.json_exchange()], folder / "one.yaml")
        for name in args.modes.split(","):
            result = run_mode(name, folder, requests, args.size)
            results.append(result)
            readings = " ".join(f"{r:.0f}" for r in result["rss_mb"])
            print(
                f"{name:<12} {result['requests']:>6} x {result['body_bytes']:>7} B "
                f"in {result['seconds']:>6.1f} s  RSS MB: {readings}  "
                f"growth after warm-up: {result['growth_after_warmup_mb']:+.1f} MB",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"flat_mb": args.flat, "modes": results}, indent=2) + "\n")
    grown = [r["mode"] for r in results if abs(r["growth_after_warmup_mb"]) > args.flat]
    if grown:
        print(f"NOT FLAT (more than {args.flat} MB): {', '.join(grown)}")
        return 1
    print(f"flat: every mode within {args.flat} MB after warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
