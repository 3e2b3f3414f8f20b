"""How faithfully ``tapedeck serve --speed X`` reproduces recorded event timing.

A cassette holds one OpenAI chat stream whose recorded arrival offsets are irregular
(seeded gaps of 5-40 ms, like a real model's). The real ``tapedeck serve --speed X`` replays
it to raw-socket clients (not Tapedeck's code) that timestamp every HTTP chunk as it
arrives. For each event we compare the gap the client saw with the recorded gap divided
by the speed and report the median and p99 absolute error, with 1 and with many
concurrent streams (pacing has a CPU cost per event: reference/performance.md).

    python benchmarks/pacing.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

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
    out = []
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and streams")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
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
