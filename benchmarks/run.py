"""Tapedeck's throughput and scaling benchmarks, in one command: ``python benchmarks/run.py``.

What it measures, all in one run so that the ratios compare like with like (the machine is
a shared VM: absolute figures move by up to a factor of two between runs, ratios less):

1. streamed responses per second of ``tapedeck serve`` replaying a 100-event OpenAI chat
   stream, against two minimal aiohttp servers sending the same bytes: one write per event,
   and the whole stream in one write; plus the HTTP chunks the client saw per response;
2. non-streaming requests per second, against a minimal aiohttp JSON server;
3. time per request with cassettes of 10, 1,000 and 100,000 interactions (flat: the index
   is a dict), and how long each cassette takes to load;
5. recording: time per recorded request with 10 and with 400 interactions in the cassette
   (flat: a recording is appended), and recorders sharing one cassette (``recording.py``).
6. ``serve --workers 1`` against ``--workers 2``, the load generators unpinned beside them
   (``workers.py``).

Servers run on one core and the load generator (``loadgen.py``, not Tapedeck's code) on
the other. Every response's status, framing and length are checked and a sample of bodies
is compared byte for byte, so a broken server cannot look fast. Results are printed as a
table and written as JSON (``--out``, default benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import recording
import workloads
from baseline_server import write_payload
from loadgen import Item, http_request, machine_busy_seconds, write_workload

from mockserver import cassettes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
DEFAULT_OUT = HERE / "results" / "latest.json"
SIZES = (10, 1_000, 100_000)
SIZE_SAMPLES = 50  # distinct interactions requested per cassette, first to last
READY_POLL = 0.01  # seconds between attempts to connect to a starting server
TARGET = 0.90  # Tapedeck's rate as a share of its baseline's: streams and JSON answers
FLAT_LIMIT = 1.5  # 100k/10 median latency ratio above which "flat" is not claimed
CLIENT_BOUND = 0.90  # load generator CPU share above which a rate is a lower bound
# Cores' worth of CPU used by other processes above which a round counts as disturbed.
# The machine is shared (other people's test runs land on both cores), and one busy
# neighbour halves a rate; interrupt work for our own traffic stays well below this.
QUIET_LIMIT = 0.15

TAPEDECK = "tapedeck serve"
TAPEDECK_UVLOOP = "tapedeck serve --loop uvloop"
PER_EVENT = "aiohttp, one write per event"
SINGLE_WRITE = "aiohttp, one write per stream"
JSON_BASELINE = "aiohttp, JSON response"


class BenchmarkError(RuntimeError):
    """A server that did not start, a load generator that failed: the run is void."""


@dataclass(frozen=True, slots=True)
class Settings:
    duration: float
    warmup: float
    rounds: int
    connections: int
    latency_connections: int
    sizes: tuple[int, ...]
    large_format: str
    server_core: int | None
    client_core: int | None
    ready_timeout: float
    patience: float  # seconds the whole run may wait for other processes to go quiet


# --------------------------------------------------------------------------- processes


def pinned(core: int | None) -> Callable[[], None] | None:
    """A preexec hook keeping a child on one core, so servers and client never share one."""
    if core is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_seconds: float
    rss_at_ready: int
    served: int = 0  # responses completed by all load runs against it

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_server(name: str, argv: Sequence[str], settings: Settings, log: Path) -> Server:
    """Start a server pinned to the server core; return once its port accepts connections."""
    port = free_port()
    command = [sys.executable, *argv, "--port", str(port)]
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(settings.server_core),
        )
    deadline = started + settings.ready_timeout
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise BenchmarkError(f"{name} exited with {process.returncode} before serving:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            break
        if time.perf_counter() > deadline:
            process.kill()
            raise BenchmarkError(
                f"{name} did not accept connections within {settings.ready_timeout} s"
            )
        time.sleep(READY_POLL)  # polling the port is the readiness check
    ready = time.perf_counter() - started
    return Server(name, process, port, log, ready, rss_bytes(process.pid))


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def servers_running() -> Iterator[list[Server]]:
    """Every server started inside is stopped on the way out, even on failure."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            stop_server(server)


def machine_load(seconds: float) -> float:
    """Cores' worth of CPU the whole machine used over the next ``seconds``."""
    before = machine_busy_seconds()
    time.sleep(seconds)  # a sampling window, not a synchronization
    after = machine_busy_seconds()
    return 0.0 if before is None or after is None else (after - before) / seconds


@dataclass
class QuietGate:
    """Before each round, waits until other processes leave the cores alone (our servers
    are idle between rounds, so what the machine does then is other people's work), within
    one budget for the whole run so that a long neighbour cannot stall it."""

    budget: float
    log: Callable[[str], None]
    waited: float = 0.0

    def wait(self) -> float:
        """The load other processes put on the machine when we stop waiting, in cores."""
        load = machine_load(0.5)
        if load > QUIET_LIMIT and self.waited < self.budget:
            left = self.budget - self.waited
            self.log(f"  other processes use {load:.2f} cores; waiting up to {left:.0f} s")
            started = time.perf_counter()
            while load > QUIET_LIMIT and time.perf_counter() - started < left:
                load = machine_load(0.5)
            self.waited += time.perf_counter() - started
        return load


def run_load(
    server: Server,
    workload: Path,
    connections: int,
    settings: Settings,
    gate: QuietGate,
) -> dict[str, Any]:
    """One measurement: the load generator in its own process, on the client core."""
    load_before = gate.wait()
    command = [
        sys.executable,
        str(HERE / "loadgen.py"),
        *("--host", HOST, "--port", str(server.port), "--workload", str(workload)),
        *("--connections", str(connections), "--server-pid", str(server.pid)),
        *("--warmup", str(settings.warmup), "--duration", str(settings.duration)),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        timeout=settings.warmup + settings.duration + 60,
        preexec_fn=pinned(settings.client_core),
        check=False,
    )
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")[-2000:]
        raise BenchmarkError(f"load generator failed against {server.name}:\n{stderr}")
    if server.process.poll() is not None:
        raise BenchmarkError(f"{server.name} died during the run:\n{server.log_tail()}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["other_cpu_before"] = load_before
    server.served += result["total_completed"]
    result["valid"] = result["errors"] == 0 and result["validated_bodies"] > 0
    return result


# --------------------------------------------------------------------------- measures


def disturbed(result: dict[str, Any]) -> bool:
    other = result.get("other_cpu")
    return other is not None and float(other) > QUIET_LIMIT


@dataclass
class Series:
    """One server under one workload, measured once per round; the best round counts,
    since noise from other processes can only slow a run down."""

    server: str
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        quiet = [r for r in self.rounds if not disturbed(r)]
        return max(quiet or self.rounds, key=lambda result: float(result["rate"]))

    @property
    def valid(self) -> bool:
        return all(result["valid"] for result in self.rounds)

    @property
    def cpu_us(self) -> float:
        """The least server CPU per response in any round. On this VM the rate of a round
        swings with the host's load (a halted vCPU waits for the host to wake it), and so
        does the CPU a response costs, though less: other work and slow wake-ups can only
        add to it, never take away, so the least is the closest to the cost itself (as the
        best rate is to the rate), and it backs the rate ratio up."""
        values = [float(r["server_cpu_us"]) for r in self.rounds if r["server_cpu_us"]]
        return min(values) if values else float("nan")

    @property
    def chunks(self) -> tuple[int, int]:
        """Fewest and most HTTP chunks in any walked response, over all rounds."""
        walked = [r for r in self.rounds if r["walked_responses"]]
        if not walked:
            return (0, 0)
        return (min(r["chunks_min"] for r in walked), max(r["chunks_max"] for r in walked))

    def summary(self) -> dict[str, Any]:
        return asdict(self) | {"best": self.best, "cpu_us": self.cpu_us, "chunks": self.chunks}


def item(port: int, request_body: bytes, response_body: bytes) -> Item:
    return Item(http_request(HOST, port, workloads.CHAT_PATH, request_body), 200, response_body)


def compare(
    pairs: Sequence[tuple[Server, Path]], settings: Settings, gate: QuietGate
) -> list[Series]:
    """Interleave the servers round by round, so a slow spell of the machine hits all."""
    series = [Series(server.name) for server, _ in pairs]
    for round_number in range(settings.rounds):
        order = list(range(len(pairs)))
        if round_number % 2:
            order.reverse()
        for index in order:
            server, workload = pairs[index]
            result = run_load(server, workload, settings.connections, settings, gate)
            series[index].rounds.append(result)
            gate.log(f"  round {round_number + 1}: {server.name}: {result['rate']:,.0f}/s")
    return series


def measure_throughput(settings: Settings, folder: Path, gate: QuietGate) -> dict[str, Any]:
    """Measures 1 and 2: one tapedeck serve (both interactions in one cassette) and the
    three baselines, all started up front on the server core."""
    stream, small = workloads.stream_exchange(), workloads.json_exchange()
    cassette = folder / "serve.yaml"
    cassettes.dump([stream, small], cassette)
    stream_entry, json_entry = workloads.served(stream), workloads.served(small)
    payloads = {
        PER_EVENT: ("per-event", stream_entry),
        SINGLE_WRITE: ("single-write", stream_entry),
        JSON_BASELINE: ("json", json_entry),
    }
    with servers_running() as running:
        serve = ["-m", "mockserver", "serve", "--no-index-cache", "--host", HOST]
        serve += ["--cassettes", str(cassette)]
        tapedeck = start_server(TAPEDECK, serve, settings, folder / "tapedeck.log")
        running.append(tapedeck)
        uvloop = start_server(
            TAPEDECK_UVLOOP, [*serve, "--loop", "uvloop"], settings, folder / "uvloop.log"
        )
        running.append(uvloop)
        baselines: dict[str, Server] = {}
        for name, (mode, entry) in payloads.items():
            payload = folder / f"{mode}.json"
            write_payload(payload, entry.exchange.response.status, entry.headers, entry.frames)
            server = start_server(
                name,
                [str(HERE / "baseline_server.py"), "--mode", mode, "--payload", str(payload)],
                settings,
                folder / f"{mode}.log",
            )
            running.append(server)
            baselines[name] = server

        def workload(server: Server, exchange_body: bytes, response: bytes, name: str) -> Path:
            path = folder / f"workload-{name}-{server.port}.json"
            write_workload(path, [item(server.port, exchange_body, response)])
            return path

        stream_body, json_body = stream.response.body, small.response.body
        gate.log(f"measure 1: streams of {len(stream_entry.frames)} events, {len(stream_body):,} B")
        stream_series = compare(
            [
                (server, workload(server, stream.request.body, stream_body, "stream"))
                for server in (tapedeck, uvloop, baselines[PER_EVENT], baselines[SINGLE_WRITE])
            ],
            settings,
            gate,
        )
        gate.log(f"measure 2: non-streaming JSON, {len(json_body):,} B")
        json_series = compare(
            [
                (server, workload(server, small.request.body, json_body, "json"))
                for server in (tapedeck, uvloop, baselines[JSON_BASELINE])
            ],
            settings,
            gate,
        )
        memory = {
            server.name: {
                "rss_at_ready": server.rss_at_ready,
                "rss_after": rss_bytes(server.pid),
                "responses_served": server.served,
            }
            for server in running
        }
    streams = {s.server: s for s in stream_series}
    jsons = {s.server: s for s in json_series}
    events = len(stream_entry.frames)
    return {
        "stream": {
            "events": events,
            "body_bytes": len(stream_body),
            "series": [s.summary() for s in stream_series],
            "ratios": ratios("stream", streams),
            "one_chunk_per_event": streams[TAPEDECK].chunks == (events, events),
            "valid": all(s.valid for s in stream_series),
        },
        "json": {
            "body_bytes": len(json_body),
            "series": [s.summary() for s in json_series],
            "ratios": ratios("json", jsons),
            "valid": all(s.valid for s in json_series),
        },
        "memory": memory,
    }


RATIOS = {
    "stream": (
        ("tapedeck / single write", TAPEDECK, SINGLE_WRITE),
        ("tapedeck uvloop / single write", TAPEDECK_UVLOOP, SINGLE_WRITE),
        ("tapedeck / write per event", TAPEDECK, PER_EVENT),
        ("single write / write per event", SINGLE_WRITE, PER_EVENT),
    ),
    "json": (
        ("tapedeck / aiohttp JSON", TAPEDECK, JSON_BASELINE),
        ("tapedeck uvloop / aiohttp JSON", TAPEDECK_UVLOOP, JSON_BASELINE),
    ),
}


def ratios(part: str, series: dict[str, Series]) -> dict[str, dict[str, float]]:
    return {name: ratio_of(series[mine], series[theirs]) for name, mine, theirs in RATIOS[part]}


def recomputed(report: dict[str, Any]) -> dict[str, Any]:
    """A saved report with its derived figures (best round, CPU per response, ratios)
    computed again from its rounds: ``--render`` prints a saved run with today's rules."""
    for part in ("stream", "json"):
        if part in report:
            rebuilt = [Series(entry["server"], entry["rounds"]) for entry in report[part]["series"]]
            report[part]["series"] = [series.summary() for series in rebuilt]
            report[part]["ratios"] = ratios(part, {series.server: series for series in rebuilt})
    return report


def ratio_of(mine: Series, theirs: Series) -> dict[str, float]:
    """``mine`` as a multiple of ``theirs``: by rate, and by server CPU per response
    (theirs / mine, so that both read "higher is better for mine")."""
    return {
        "rate": float(mine.best["rate"]) / float(theirs.best["rate"]),
        "cpu": theirs.cpu_us / mine.cpu_us,
    }


def measure_sizes(settings: Settings, folder: Path, gate: QuietGate) -> dict[str, Any]:
    """Measure 3: one tapedeck serve per cassette size, requests spread over the cassette,
    few connections so that the latency is the service time and not a queue."""
    rows: list[dict[str, Any]] = []
    for size in settings.sizes:
        fmt = "yaml" if size <= workloads.DUMP_LIMIT else settings.large_format
        cassette = workloads.write_size_cassette(size, folder, fmt)
        gate.log(
            f"measure 3: {size:,} interactions, {cassette.file_bytes / 1e6:.1f} MB {fmt} "
            f"written in {cassette.write_seconds:.1f} s; loading"
        )
        with servers_running() as running:
            load_before = gate.wait()  # so that "ready" times the load alone
            server = start_server(
                f"{TAPEDECK} ({size:,})",
                # Every start reads the cassette (the index cache would make a re-run
                # measure a cache hit instead; benchmarks/startup.py measures that).
                [
                    "-m",
                    "mockserver",
                    "serve",
                    "--no-index-cache",
                    "--host",
                    HOST,
                    "--cassettes",
                    str(cassette.path),
                ],
                settings,
                folder / f"tapedeck-{size}.log",
            )
            running.append(server)
            indices = workloads.spread(size, SIZE_SAMPLES)
            path = folder / f"workload-size-{size}.json"
            write_workload(
                path, [item(server.port, *pair) for pair in workloads.size_items(indices)]
            )
            result = run_load(server, path, settings.latency_connections, settings, gate)
            rows.append(
                {
                    "interactions": size,
                    "format": fmt,
                    "written_by": cassette.written_by,
                    "write_seconds": cassette.write_seconds,
                    "file_bytes": cassette.file_bytes,
                    "ready_seconds": server.ready_seconds,
                    "other_cpu_before_start": load_before,
                    "rss_at_ready": server.rss_at_ready,
                    "requested_indices": [indices[0], indices[len(indices) // 2], indices[-1]],
                    "distinct_requests": len(indices),
                    "result": result,
                }
            )
            gate.log(
                f"  ready in {server.ready_seconds:.2f} s, "
                f"median {result['latency_median_ms']:.3f} ms"
            )
        cassette.path.unlink()  # 100 MB that no later step needs
    first, last = rows[0]["result"], rows[-1]["result"]
    return {
        "rows": rows,
        "ratios": {
            "median": last["latency_median_ms"] / first["latency_median_ms"],
            "p99": last["latency_p99_ms"] / first["latency_p99_ms"],
        },
        "valid": all(row["result"]["valid"] for row in rows),
    }


def measure_paced(folder: Path, *, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Measures 6: memory per open paced stream (``paced_memory.py``) and gap accuracy at
    5,000 to 45,000 paced events/s (``pacing.py --load``), each against its naive aiohttp
    baseline in the same run; their own tables, and their JSON."""
    parts: dict[str, Any] = {}
    commands = {
        "memory": [str(HERE / "paced_memory.py"), *(["--quick"] if quick else [])],
        "accuracy": [str(HERE / "pacing.py"), "--load", "--baseline"]
        + (["--rates", "5000,30000"] if quick else ["--rounds", "2"]),
    }
    for name, argv in commands.items():
        out = folder / f"paced-{name}.json"
        log(f"measure 6: paced streams, {name}")
        done = subprocess.run(
            [sys.executable, *argv, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode not in (0, 1):  # 1: a figure over its budget, still a result
            raise BenchmarkError(f"{argv[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        parts[name] = {
            "table": done.stdout.rstrip().splitlines(),
            "within_budget": done.returncode == 0,
            "results": json.loads(out.read_text()) if out.exists() else None,
        }
    return parts


def render_paced(paced: dict[str, Any]) -> list[str]:
    out = ["6. Paced streams (--speed 1), each against a naive aiohttp handler in the same run"]
    for name, part in paced.items():
        out.append(f"  {name}:" + ("" if part["within_budget"] else " OVER BUDGET"))
        out += [f"    {line}" for line in part["table"]]
    return out


# --------------------------------------------------------------------------- report


def machine(settings: Settings) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
        "server_core": settings.server_core,
        "client_core": settings.client_core,
    }


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} us"


def _throughput_table(series: Sequence[dict[str, Any]], unit: str) -> list[str]:
    head = (
        f"  {'server':<31} {unit:>10} {'server CPU':>11} {'client':>7} {'other':>6}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'chunks':>7}"
    )
    lines = [head]
    for entry in series:
        best = entry["best"]
        low, high = entry["chunks"]
        chunks = f"{low}" if low == high else f"{low}-{high}"
        flags = ("*" if best["client_cpu"] > CLIENT_BOUND else "") + (
            "!" if disturbed(best) else ""
        )
        lines.append(
            f"  {entry['server']:<31} {best['rate']:>10,.0f} {_us(entry['cpu_us']):>11}"
            f" {best['client_cpu']:>7.0%} {_share(best['other_cpu']):>6}"
            f" {best['latency_median_ms']:>7.2f} {best['latency_p99_ms']:>7.2f}"
            f" {chunks:>7} {flags}".rstrip()
        )
    return lines


def _share(value: float | None) -> str:
    # Tick-based accounting can leave a small negative remainder on an idle machine.
    return "-" if value is None else f"{max(value, 0.0):.0%}"


def _verdict(part: dict[str, Any], baseline: str) -> str:
    """The 90% target, judged by rate only when neither figure was disturbed (a busy
    neighbour during one server's rounds moves the rate ratio anywhere)."""
    bests = {entry["server"]: entry["best"] for entry in part["series"]}
    mine, theirs = bests[TAPEDECK], bests[baseline]
    share_by_rate = float(mine["rate"]) / float(theirs["rate"])
    cpu = {entry["server"]: entry["cpu_us"] for entry in part["series"]}
    share_by_cpu = cpu[baseline] / cpu[TAPEDECK]
    head = f"  target: tapedeck >= {TARGET:.0%} of {baseline}: "
    if not (disturbed(mine) or disturbed(theirs)):
        return head + ("met" if share_by_rate >= TARGET else f"NOT MET ({share_by_rate:.0%})")
    return head + (
        f"not judged by rate (disturbed rounds); by server CPU {share_by_cpu:.0%}: "
        + ("met" if share_by_cpu >= TARGET else "NOT MET")
    )


def _ratio_lines(ratios: dict[str, dict[str, float]]) -> list[str]:
    width = max(map(len, ratios))
    return [
        f"  {name:<{width}} = {pair['rate']:5.2f} by rate, {pair['cpu']:5.2f} by server CPU"
        for name, pair in ratios.items()
    ]


def render(report: dict[str, Any]) -> str:
    settings, where = report["settings"], report["machine"]
    out = [
        f"Tapedeck benchmarks, {report['date']}",
        f"  {where['cpus']} CPUs ({where['cpu_model']}), Python {where['python']}, "
        f"aiohttp {where['aiohttp']}; servers on core {where['server_core']}, "
        f"load generator on core {where['client_core']}",
        f"  each figure: best of {settings['rounds']} round(s) of {settings['duration']} s "
        f"after {settings['warmup']} s of warm-up, {settings['connections']} keep-alive "
        "connections;",
        "  server CPU: per response, the least of the rounds; client: load generator's share of "
        "its core;",
        "  other: CPU used by other processes meanwhile, in cores (a round above "
        f"{QUIET_LIMIT:.0%} is disturbed)",
        "",
    ]
    if "stream" in report:
        stream = report["stream"]
        low, high = stream["series"][0]["chunks"]
        events = stream["events"]
        out += [
            f"1. Streamed responses/s: OpenAI chat stream, {events} events, "
            f"{stream['body_bytes']:,} B ({stream['body_bytes'] / events:.0f} B/event)",
            *_throughput_table(stream["series"], "streams/s"),
            *_ratio_lines(stream["ratios"]),
            _verdict(stream, SINGLE_WRITE),
            "4. HTTP chunks the client saw per tapedeck stream: "
            + (
                f"{events} for {events} events in every walked response: one chunk per event"
                if stream["one_chunk_per_event"]
                else f"{low}-{high} for {events} events: NOT one chunk per event"
            ),
            "",
        ]
        small = report["json"]
        out += [
            f"2. Non-streaming requests/s: JSON chat completion, {small['body_bytes']:,} B",
            *_throughput_table(small["series"], "req/s"),
            *_ratio_lines(small["ratios"]),
            _verdict(small, JSON_BASELINE),
            "",
        ]
        out.append("   server memory (RSS)            at ready     after   responses  growth/resp")
        for name, memory in report["memory"].items():
            growth = memory["rss_after"] - memory["rss_at_ready"]
            per = growth / memory["responses_served"] if memory["responses_served"] else 0.0
            out.append(
                f"  {name:<31} {memory['rss_at_ready'] / 2**20:>6.1f} MB "
                f"{memory['rss_after'] / 2**20:>6.1f} MB {memory['responses_served']:>11,}"
                f" {per:>8,.0f} B"
            )
        out.append("")
    if "sizes" in report:
        sizes = report["sizes"]
        out += [
            f"3. Time per request by cassette size ({settings['latency_connections']} "
            f"connection(s), {SIZE_SAMPLES} distinct requests from first to last interaction)",
            f"  {'interactions':>12} {'file':>9} {'ready':>8} {'RSS':>8} {'req/s':>8}"
            f" {'p50 ms':>8} {'p99 ms':>8} {'server CPU':>11} {'other':>6}",
        ]
        for row in sizes["rows"]:
            result = row["result"]
            out.append(
                f"  {row['interactions']:>12,} {row['file_bytes'] / 1e6:>6.1f} MB"
                f" {row['ready_seconds']:>7.2f}s {row['rss_at_ready'] / 2**20:>5.0f} MB"
                f" {result['rate']:>8,.0f} {result['latency_median_ms']:>8.3f}"
                f" {result['latency_p99_ms']:>8.3f} {_us(result['server_cpu_us']):>11}"
                f" {_share(result['other_cpu']):>6} {'!' if disturbed(result) else ''}".rstrip()
            )
        ratios = sizes["ratios"]
        last = sizes["rows"][-1]
        flat = ratios["median"] <= FLAT_LIMIT
        out += [
            f"  {last['interactions']:,}/{sizes['rows'][0]['interactions']:,}: median "
            f"{ratios['median']:.2f}, p99 {ratios['p99']:.2f} "
            f"({'flat' if flat else 'NOT FLAT'})",
            "  ready = process start to port open: interpreter, imports, cassette load, index.",
        ]
        for row in sizes["rows"]:
            if row["format"] != "yaml" or row["written_by"] != "cassettes.dump":
                out.append(
                    f"  {row['interactions']:,}: {row['format'].upper()} cassette, "
                    f"{row['written_by']}"
                    + (
                        "; vcrpy's JSON layout, read by the same cassettes.load, because a "
                        "YAML file this size takes about a minute to load (measure it with "
                        "--large-format yaml)"
                        if row["format"] == "json"
                        else ""
                    )
                )
        out.append("")
    if "recording" in report:
        out += [*recording.render(report["recording"]), ""]
    if "paced" in report:
        out += [*render_paced(report["paced"]), ""]
    if "startup" in report:
        import startup

        out += [*startup.render(report["startup"]), ""]
    if "workers" in report:
        import workers

        out += [*workers.render(report["workers"]), ""]
    checked = report["checked"]
    out.append(
        f"Validation: {checked['responses']:,} responses checked (status, framing, length), "
        f"{checked['bodies']:,} bodies compared byte for byte, {checked['errors']} errors: "
        + ("OK" if report["valid"] else f"FAILED ({checked['first_error']})")
    )
    bests = [
        entry["best"]
        for key in ("stream", "json")
        if key in report
        for entry in report[key]["series"]
    ] + [row["result"] for row in report.get("sizes", {}).get("rows", [])]
    if any(best["client_cpu"] > CLIENT_BOUND for best in bests):
        out.append("  * load generator near 100% CPU: that rate is a lower bound")
    if any(disturbed(best) for best in bests):
        out.append(
            "  ! other processes were busy during that figure (no quiet round): rerun on an "
            "idle machine; the server CPU column is the steadier guide"
        )
    return "\n".join(out)


def all_results(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("stream", "json"):
        if key in report:
            for entry in report[key]["series"]:
                yield from entry["rounds"]
    if "sizes" in report:
        for row in report["sizes"]["rows"]:
            yield row["result"]


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="2 s per figure, one round")
    parser.add_argument("--duration", type=float, help="seconds measured per figure (5)")
    parser.add_argument("--warmup", type=float, help="seconds of unmeasured load first (1)")
    parser.add_argument("--rounds", type=int, help="rounds of throughput figures (2)")
    parser.add_argument("--connections", type=int, default=32, help="for throughput (32)")
    parser.add_argument(
        "--latency-connections", type=int, default=1, help="for the cassette sizes (1)"
    )
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="cassette sizes, comma-separated (10,1000,100000)",
    )
    parser.add_argument(
        "--large-format",
        choices=("json", "yaml"),
        default="json",
        help=f"format of cassettes above {workloads.DUMP_LIMIT:,} interactions (json)",
    )
    parser.add_argument(
        "--only",
        choices=("throughput", "sizes", "recording", "paced", "startup", "workers"),
        help="run one part of the benchmark",
    )
    parser.add_argument(
        "--patience",
        type=float,
        help="seconds the run may spend waiting for other processes to go quiet (30; quick 10)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print a saved run's table, measure nothing"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = tuple(sorted(int(size.replace("_", "")) for size in args.sizes.split(",")))
    if not sizes or sizes[0] < 1:
        parser.error("--sizes needs positive numbers")
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    large = sizes[-1] > workloads.DUMP_LIMIT and args.large_format == "yaml"
    settings = Settings(
        duration=args.duration or (2.0 if quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if quick else 1.0),
        rounds=args.rounds or (1 if quick else 2),
        connections=args.connections,
        latency_connections=args.latency_connections,
        sizes=sizes,
        large_format=args.large_format,
        server_core=server_core,
        client_core=client_core,
        # Loading 100,000 interactions from YAML takes about a minute on this machine.
        ready_timeout=600.0 if large else 120.0,
        patience=args.patience if args.patience is not None else (10.0 if quick else 30.0),
    )
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    settings, args = parse_args(argv)
    if args.render is not None:
        print(render(recomputed(json.loads(args.render.read_text()))))
        return 0
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    if settings.server_core is None:
        log("warning: fewer than 2 CPUs available; servers and load generator share a core")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(settings),
        "settings": asdict(settings),
    }
    gate = QuietGate(settings.patience, log)
    folder = Path(tempfile.mkdtemp(prefix="tapedeck-bench-"))
    try:
        if args.only in (None, "throughput"):
            report |= measure_throughput(settings, folder, gate)
        if args.only in (None, "sizes"):
            report["sizes"] = measure_sizes(settings, folder, gate)
        if args.only in (None, "recording"):
            gate.wait()
            report["recording"] = recording.measure(
                folder,
                processes=4 if args.quick else 8,
                per_process=30 if args.quick else 60,
                server_core=settings.server_core,
                client_core=settings.client_core,
                log=log,
            )
        if args.only in (None, "paced"):
            report["paced"] = measure_paced(folder, quick=args.quick, log=log)
        if args.only in (None, "startup"):
            import startup

            gate.wait()
            report["startup"] = startup.measure_all(
                SIZES[-1], ("json", "yaml"), rounds=1 if args.quick else 2, folder=folder
            )
        if args.only in (None, "workers"):
            import workers  # deferred: it imports this module for its helpers

            report["workers"] = workers.measure(settings, folder, gate)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results = list(all_results(report))
    errors = [result for result in results if result["errors"]]
    report["checked"] = {
        "responses": sum(result["checked_responses"] for result in results),
        "bodies": sum(result["validated_bodies"] for result in results),
        "errors": sum(result["errors"] for result in results),
        "first_error": errors[0]["first_error"] if errors else None,
    }
    report["valid"] = all(result["valid"] for result in results)
    if "recording" in report:
        report["checked"]["responses"] += report["recording"]["checked"]
        report["checked"]["bodies"] += report["recording"]["checked"]
    if "recording" in report and not report["recording"]["valid"]:
        report["valid"] = False
        report["checked"]["errors"] += report["recording"]["errors"]
        report["checked"]["first_error"] = report["checked"]["first_error"] or (
            "recording: a response differed from the upstream's, or interactions were lost"
        )
    if "workers" in report:
        report["checked"]["responses"] += report["workers"]["checked"]
        report["checked"]["bodies"] += report["workers"]["validated"]
        report["checked"]["errors"] += report["workers"]["errors"]
        report["valid"] = report["valid"] and report["workers"]["valid"]
    report["wall_seconds"] = time.perf_counter() - started
    report["waited_for_quiet_seconds"] = gate.waited
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(
        f"\n(JSON: {args.out}; whole run {report['wall_seconds']:.0f} s, of which "
        f"{gate.waited:.0f} s waiting for other processes to go quiet)"
    )
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    sys.modules["run"] = sys.modules[__name__]  # workers.py's ``import run``: this copy
    raise SystemExit(main())
