"""What recording costs per request, by cassette size, and with recorders sharing a file.

    python benchmarks/recording.py [--quick] [--interactions 400] [--processes 8]
    python benchmarks/run.py --only recording      # the same, inside the full run

1. One real ``tapedeck serve --record-mode all`` records streamed interactions one after
   the other into one cassette (the 100-event OpenAI chat stream of the throughput
   figure, a different question each, so each is saved). The time per request (sent to
   last byte received, one keep-alive connection) is taken over a window of requests when
   the cassette holds 10 interactions, and again when it holds 100, 200 and 400: it must
   stay flat (``at 400 / at 10`` at most 2), since a recording appends to the cassette
   instead of rewriting it. The upstream is ``baseline_server.py`` sending the same
   stream in one write; its time per request measured directly is the floor.
2. Several ``tapedeck serve`` processes record at once, each its own questions, into one
   shared cassette, then each into its own: the wall time of both, and every interaction
   must be in the files afterwards (none lost to a race).

Tapedeck runs on one core, the upstream and the client on the other; every response is
compared byte for byte with the stream the upstream sent.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import workloads
from baseline_server import write_payload

from mockserver import cassettes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
FLAT_LIMIT = 2.0  # time per request at the largest size / at 10 interactions
WINDOW = 20  # requests measured at each size
SIZES = (10, 100, 200, 400)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _pin(core: int | None) -> Callable[[], None] | None:
    return None if core is None else lambda: os.sched_setaffinity(0, {core})


@contextlib.contextmanager
def _process(argv: Sequence[str], core: int | None, log: Path) -> Iterator[int]:
    """A server started on a free port, pinned to ``core``; its port once it accepts."""
    port = _free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *argv, "--port", str(port)],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_pin(core),
        )
    try:
        deadline = time.perf_counter() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited: {log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{argv} did not start within 60 s")
            time.sleep(0.01)  # polling the port is the readiness check
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Client:
    """One keep-alive connection (http.client: not Tapedeck's code) asking questions."""

    def __init__(self, port: int, expected: bytes) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=60)
        self.expected = expected
        self.errors: list[str] = []

    def ask(self, question: str) -> float:
        body = workloads.chat_request(question, stream=True).body
        started = time.perf_counter()
        self.connection.request(
            "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        received = response.read()
        took = time.perf_counter() - started
        if response.status != 200 or received != self.expected:
            self.errors.append(f"{question}: status {response.status}, {len(received)} bytes")
        return took

    def close(self) -> None:
        self.connection.close()


def _window(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1e3,
    }


def measure(
    folder: Path,
    *,
    largest: int = 400,
    processes: int = 8,
    per_process: int = 60,
    server_core: int | None = None,
    client_core: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    exchange = workloads.stream_exchange()
    entry = workloads.served(exchange)
    payload = folder / "recording-payload.json"
    write_payload(payload, 200, entry.headers, entry.frames)
    expected = exchange.response.body
    sizes = (*(size for size in SIZES if size < largest), largest)
    upstream_argv = [
        str(HERE / "baseline_server.py"), "--mode", "single-write", "--payload", str(payload),
    ]  # fmt: skip
    report: dict[str, Any] = {"events": len(entry.frames), "body_bytes": len(expected)}
    affinity = os.sched_getaffinity(0)
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})  # the client: this process
    with (
        contextlib.ExitStack() as restore,
        _process(upstream_argv, client_core, folder / "upstream.log") as upstream,
    ):
        restore.callback(os.sched_setaffinity, 0, affinity)
        floor = Client(upstream, expected)
        report["upstream"] = _window([floor.ask(f"floor {n}") for n in range(WINDOW)])
        floor.close()
        log(f"recording latency: {largest + WINDOW} requests into one cassette")
        report["sizes"] = _by_size(folder, upstream, expected, sizes, server_core)
        log(f"recording: {processes} processes x {per_process} interactions, shared and not")
        report["concurrent"] = {
            layout: _concurrent(
                folder / layout, upstream, expected, processes, per_process, layout, server_core
            )
            for layout in ("shared", "separate")
        }
    first, last = report["sizes"]["rows"][0], report["sizes"]["rows"][-1]
    report["sizes"]["ratio"] = last["median_ms"] / first["median_ms"]
    report["sizes"]["flat"] = report["sizes"]["ratio"] <= FLAT_LIMIT
    errors = report["sizes"]["errors"] + sum(c["errors"] for c in report["concurrent"].values())
    report["valid"] = not errors and all(c["complete"] for c in report["concurrent"].values())
    report["errors"] = errors
    # Every response was compared byte for byte with the upstream's stream.
    report["checked"] = WINDOW + sizes[-1] + WINDOW + 2 * processes * per_process
    return report


def _serve(cassette: Path, upstream: int) -> list[str]:
    return [
        "-m", "mockserver", "serve", "--record-mode", "all", "--record-to", str(cassette),
        "--upstream", f"openai=http://{HOST}:{upstream}/v1",
    ]  # fmt: skip


def _by_size(
    folder: Path, upstream: int, expected: bytes, sizes: Sequence[int], core: int | None
) -> dict[str, Any]:
    cassette = folder / "latency" / "recorded.yaml"
    with _process(_serve(cassette, upstream), core, folder / "latency.log") as port:
        client = Client(port, expected)
        # Request n is sent when the cassette holds n interactions.
        times = [client.ask(f"Question {number}?") for number in range(sizes[-1] + WINDOW)]
        client.close()
    rows = [{"interactions": size, **_window(times[size : size + WINDOW])} for size in sizes]
    saved = len(cassettes.load(cassette))
    return {
        "rows": rows,
        "file_bytes": cassette.stat().st_size,
        "saved": saved,
        "errors": len(client.errors) + (saved != sizes[-1] + WINDOW),
    }


def _concurrent(
    folder: Path,
    upstream: int,
    expected: bytes,
    processes: int,
    per_process: int,
    layout: str,
    core: int | None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    targets = [
        folder / ("shared.yaml" if layout == "shared" else f"own-{n}.yaml")
        for n in range(processes)
    ]
    with contextlib.ExitStack() as stack:
        ports = [
            stack.enter_context(_process(_serve(target, upstream), core, folder / f"{n}.log"))
            for n, target in enumerate(targets)
        ]
        clients = [Client(port, expected) for port in ports]

        def work(number: int) -> None:
            for question in range(per_process):
                clients[number].ask(f"Process {number}, question {question}?")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(processes)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        for client in clients:
            client.close()
    asked = sorted(
        e.request.json["messages"][0]["content"]
        for path in sorted(set(targets))
        for e in cassettes.load(path)
    )
    wanted = sorted(
        f"Process {n}, question {q}?" for n in range(processes) for q in range(per_process)
    )
    return {
        "wall_seconds": wall,
        "interactions": processes * per_process,
        "complete": asked == wanted,
        "errors": sum(len(client.errors) for client in clients),
    }


def render(report: dict[str, Any]) -> list[str]:
    sizes, concurrent = report["sizes"], report["concurrent"]
    out = [
        f"5. Recording: time per request by cassette size (OpenAI chat stream, "
        f"{report['events']} events, {report['body_bytes']:,} B; 1 connection, "
        f"{WINDOW} requests per size)",
        f"  {'interactions':>12} {'median ms':>10} {'p90 ms':>8}",
    ]
    for row in sizes["rows"]:
        out.append(f"  {row['interactions']:>12,} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f}")
    floor = report["upstream"]
    out += [
        f"  upstream alone (the floor): median {floor['median_ms']:.2f} ms, "
        f"p90 {floor['p90_ms']:.2f} ms",
        f"  {sizes['rows'][-1]['interactions']:,}/{sizes['rows'][0]['interactions']:,}: "
        f"median {sizes['ratio']:.2f} "
        + ("(flat: <= 2)" if sizes["flat"] else f"(NOT FLAT: above {FLAT_LIMIT})")
        + f"; cassette {sizes['file_bytes'] / 1e6:.1f} MB, {sizes['saved']} interactions",
    ]
    shared, separate = concurrent["shared"], concurrent["separate"]
    out.append(
        f"  {shared['interactions']:,} interactions by concurrent recorders: one shared "
        f"cassette {shared['wall_seconds']:.1f} s, one each {separate['wall_seconds']:.1f} s "
        f"(shared/separate {shared['wall_seconds'] / separate['wall_seconds']:.2f}); "
        + ("none lost" if shared["complete"] and separate["complete"] else "INTERACTIONS LOST")
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 processes x 30 interactions")
    parser.add_argument("--interactions", type=int, default=400, help="the largest size (400)")
    parser.add_argument("--processes", type=int, help="concurrent recorders (8; quick 4)")
    parser.add_argument("--per-process", type=int, help="interactions each (60; quick 30)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    with tempfile.TemporaryDirectory(prefix="tapedeck-recording-") as folder:
        report = measure(
            Path(folder),
            largest=args.interactions,
            processes=args.processes or (4 if args.quick else 8),
            per_process=args.per_process or (30 if args.quick else 60),
            server_core=server_core,
            client_core=client_core,
        )
    print("\n".join(render(report)))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["valid"] and report["sizes"]["flat"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
