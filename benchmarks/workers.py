"""Throughput of ``tapedeck serve --workers 1`` against ``--workers 2``, load generator
included, in one run: ``python benchmarks/workers.py [--quick]`` (or ``run.py --only
workers``).

The same two workloads as ``run.py``'s figures 1 and 2 (a 100-event OpenAI chat stream,
a small JSON answer), served from one cassette. Nothing is pinned: on a 2-core machine
two workers and the load generator compete for the same cores, and pinning two workers
to one core would measure nothing. So each configuration is run twice, with one load
generator process and with two (each half the connections), and the figures say what
the client cost: on a machine with more cores than workers, the client runs elsewhere.

Per configuration: responses/s (best round), server CPU per response (all workers
summed), each worker's share of that CPU (how evenly the kernel spread the connections),
and the load generators' CPU. Every response is checked by ``loadgen.py`` (status,
framing, length; a sample byte for byte), so a broken server cannot look fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import run as bench
import workloads
from loadgen import server_cpu_seconds, write_workload

from mockserver import cassettes

STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")
CONFIGS = ((1, 1), (2, 1), (1, 2), (2, 2))
"""(workers, load generator processes), measured in this order, reversed every other round."""


@dataclass
class Pool:
    server: bench.Server
    workers: int
    pids: list[int]

    @property
    def name(self) -> str:
        return f"--workers {self.workers}"


def worker_pids(server: bench.Server, count: int, timeout: float) -> list[int]:
    """The workers' pids, from the supervisor's log lines (the server itself for one)."""
    if count == 1:
        return [server.pid]
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        found = {int(m[1]): int(m[2]) for m in STARTED.finditer(server.log.read_text())}
        if len(found) == count:
            return [found[number] for number in sorted(found)]
        time.sleep(bench.READY_POLL)  # polling the log is how the pids are learnt
    raise bench.BenchmarkError(f"{server.name}: {count} workers not started:\n{server.log_tail()}")


def start(workers: int, cassette: Path, folder: Path, settings: bench.Settings) -> Pool:
    argv = ["-m", "mockserver", "serve", "--cassettes", str(cassette), "--host", bench.HOST]
    argv += ["--workers", str(workers)]
    name = f"tapedeck serve --workers {workers}"
    server = bench.start_server(name, argv, settings, folder / f"workers-{workers}.log")
    return Pool(server, workers, worker_pids(server, workers, settings.ready_timeout))


def load(
    pool: Pool, workload: Path, generators: int, settings: bench.Settings, gate: bench.QuietGate
) -> dict[str, Any]:
    """One measurement: ``generators`` load generator processes at once, unpinned."""
    other_before = gate.wait()
    cpu = [server_cpu_seconds(pid) or 0.0 for pid in pool.pids]
    command = [
        sys.executable,
        str(bench.HERE / "loadgen.py"),
        *("--host", bench.HOST, "--port", str(pool.server.port), "--workload", str(workload)),
        *("--connections", str(max(1, settings.connections // generators))),
        *("--warmup", str(settings.warmup), "--duration", str(settings.duration)),
    ]
    clients = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(generators)
    ]
    outputs = [
        client.communicate(timeout=settings.warmup + settings.duration + 60) for client in clients
    ]
    after = [server_cpu_seconds(pid) or 0.0 for pid in pool.pids]
    spent = [end - start for start, end in zip(cpu, after, strict=True)]
    for client, (_, stderr) in zip(clients, outputs, strict=True):
        if client.returncode != 0:
            raise bench.BenchmarkError(f"load generator failed:\n{stderr.decode()[-2000:]}")
    if pool.server.process.poll() is not None:
        raise bench.BenchmarkError(f"{pool.name} died:\n{pool.server.log_tail()}")
    results = [json.loads(stdout) for stdout, _ in outputs]
    total = sum(r["total_completed"] for r in results)
    return {
        "workers": pool.workers,
        "generators": generators,
        "rate": sum(r["rate"] for r in results),
        "server_cpu_us": sum(spent) / total * 1e6 if total else None,
        "server_cores": sum(spent) / (settings.warmup + settings.duration),
        "worker_shares": [s / sum(spent) if sum(spent) else 0.0 for s in spent],
        "client_cpu": sum(r["client_cpu"] for r in results),
        "latency_median_ms": max(r["latency_median_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
        "checked": sum(r["checked_responses"] for r in results),
        "validated": sum(r["validated_bodies"] for r in results),
        "other_cpu_before": other_before,
    }


def measure(settings: bench.Settings, folder: Path, gate: bench.QuietGate) -> dict[str, Any]:
    settings = replace(settings, server_core=None, client_core=None)
    stream, small = workloads.stream_exchange(), workloads.json_exchange()
    cassette = folder / "workers.yaml"
    cassettes.dump([stream, small], cassette)
    report: dict[str, Any] = {"valid": True, "load_average_before": os.getloadavg()}
    with bench.servers_running() as running:
        pools = {}
        for count in sorted({workers for workers, _ in CONFIGS}):
            pools[count] = start(count, cassette, folder, settings)
            running.append(pools[count].server)
        for kind, exchange in (("stream", stream), ("json", small)):
            gate.log(f"workers: {kind}")
            rows: dict[tuple[int, int], list[dict[str, Any]]] = {config: [] for config in CONFIGS}
            for round_number in range(settings.rounds):
                order = list(CONFIGS) if round_number % 2 == 0 else list(reversed(CONFIGS))
                for workers, generators in order:
                    pool = pools[workers]
                    path = folder / f"workload-{kind}-{workers}.json"
                    request, body = exchange.request.body, exchange.response.body
                    write_workload(path, [bench.item(pool.server.port, request, body)])
                    result = load(pool, path, generators, settings, gate)
                    rows[(workers, generators)].append(result)
                    gate.log(
                        f"  --workers {workers}, {generators} load generator(s): "
                        f"{result['rate']:,.0f}/s, shares "
                        + "/".join(f"{share:.0%}" for share in result["worker_shares"])
                    )
            best = {
                config: max(results, key=lambda r: r["rate"]) for config, results in rows.items()
            }
            report[kind] = {
                "rounds": {f"{w}x{g}": results for (w, g), results in rows.items()},
                "best": {f"{w}x{g}": result for (w, g), result in best.items()},
                "ratios": {
                    f"{g} load generator(s)": best[(2, g)]["rate"] / best[(1, g)]["rate"]
                    for g in sorted({g for _, g in CONFIGS})
                },
            }
            report["valid"] &= all(
                r["errors"] == 0 and r["validated"] > 0
                for results in rows.values()
                for r in results
            )
    report["load_average_after"] = os.getloadavg()
    every = [r for kind in ("stream", "json") for rs in report[kind]["rounds"].values() for r in rs]
    report["checked"] = sum(r["checked"] for r in every)
    report["validated"] = sum(r["validated"] for r in every)
    report["errors"] = sum(r["errors"] for r in every)
    return report


def render(report: dict[str, Any]) -> list[str]:
    out = [
        "8. Workers: tapedeck serve --workers 1 vs 2 (nothing pinned: the load generators "
        "share the cores)"
    ]
    for kind, unit in (("stream", "streams/s"), ("json", "req/s")):
        part = report[kind]
        out.append(f"  {'100-event stream' if kind == 'stream' else 'JSON answer'}:")
        out.append(
            f"  {'workers':>7} {'loadgens':>8} {unit:>10} {'server CPU':>11} {'server cores':>12}"
            f" {'worker split':>13} {'client cores':>12}"
        )
        for best in part["best"].values():
            split = "/".join(f"{share:.0%}" for share in best["worker_shares"])
            out.append(
                f"  {best['workers']:>7} {best['generators']:>8} {best['rate']:>10,.0f}"
                f" {best['server_cpu_us']:>8,.0f} us {best['server_cores']:>12.2f}"
                f" {split:>13} {best['client_cpu']:>12.2f}"
            )
        out += [
            f"  2 workers / 1 worker, {name}: {ratio:.2f}" for name, ratio in part["ratios"].items()
        ]
        cpu = min(best["server_cpu_us"] for best in part["best"].values())
        out.append(
            f"  server CPU per response {cpu:,.0f} us: one worker per core tops out near "
            f"{1e6 / cpu:,.0f}/s per core, with the clients on other cores"
        )
    before, after = report["load_average_before"], report["load_average_after"]
    out.append(f"  load average before {before[0]:.2f}, after {after[0]:.2f} (1 min)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/workers.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="2 s per figure, one round")
    args = parser.parse_args(argv)
    settings, _ = bench.parse_args(["--quick"] if args.quick else [])
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="tapedeck-workers-"))
    try:
        report = measure(settings, folder, bench.QuietGate(settings.patience, log))
    except bench.BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(render(report)))
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
