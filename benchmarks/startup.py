"""Start-up of ``tapedeck serve`` on a large cassette, without and with the index cache.

    python benchmarks/startup.py [--size 100000] [--formats json,yaml] [--rounds 2]

For each format, a cassette of SIZE distinct interactions (benchmarks/workloads.py) and a
fresh cache folder, three kinds of start of the real ``tapedeck serve`` (a subprocess):

- ``no cache``: ``--no-index-cache``, what every start cost before the cache;
- ``first``: the cache empty: the cassette is read, and the cache written while serving;
- ``second``: the cache written by ``first``: the cassette's index is mapped from it.

Each figure is the time from the process's start (interpreter and imports included) to
the FIRST RESPONSE: one request (the cassette's last interaction) sent as soon as the
port accepts it, its body checked; and the server's resident memory (VmRSS) then. The
best of ``--rounds`` counts. ``first`` also says when the cache file appeared (the write
runs after the first response) and how big it is. The servers run a copy of the
mockserver source taken when the benchmark starts: the source is in the cache key, and
an edit made meanwhile in a shared checkout would turn a second start into a first. A
``second`` start that missed all the same is retried, and never counted as a second.

The machine's load average is printed before and after: read figures from a busy machine
as upper bounds, and compare ratios, which come from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workloads

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
POLL = 0.005  # seconds between attempts while the server is not listening yet
TIMEOUT = 600.0


@dataclass(frozen=True)
class Start:
    kind: str
    first_response: float
    rss_mb: float
    cache_written: float | None = None  # seconds after the first response
    cache_mb: float | None = None


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cache_files(folder: Path) -> set[Path]:
    return set((folder / "index").glob("*.tdx"))


def ask(port: int, body: bytes) -> bytes | None:
    """The answer's body, or None while nothing listens."""
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        connection.request("POST", workloads.CHAT_PATH, body, {"content-type": "application/json"})
        return connection.getresponse().read()
    except ConnectionRefusedError:
        return None
    finally:
        connection.close()


def start(kind: str, cassette: Path, cache: Path, item: tuple[bytes, bytes], source: Path) -> Start:
    port = free_port()
    argv = [sys.executable, "-m", "mockserver", "serve", "--cassettes", str(cassette)]
    argv += ["--port", str(port), "--host", HOST]
    if kind == "no cache":
        argv.append("--no-index-cache")
    environ = {**os.environ, "TAPEDECK_CACHE_DIR": str(cache)}
    environ.pop("TAPEDECK_INDEX_CACHE", None)
    before = cache_files(cache)
    log = cache.parent / f"serve-{port}.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=source, env=environ, stdout=sink, stderr=sink)
    try:
        while (answer := ask(port, item[0])) is None:
            if process.poll() is not None:
                raise RuntimeError(f"{kind}: server exited: {log.read_text()[-2000:]}")
            if time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(f"{kind}: no answer within {TIMEOUT} s")
            time.sleep(POLL)  # polling the port is the readiness check
        first = time.perf_counter() - started
        if answer != item[1]:
            raise RuntimeError(f"{kind}: wrong answer {answer[:200]!r}")
        memory = rss_mb(process.pid)
        written = size = None
        banner = log.read_text()
        if kind != "no cache" and " 0 read" not in banner:  # it read and writes a file
            while not (new := cache_files(cache) - before) and process.poll() is None:
                if time.perf_counter() - started > first + TIMEOUT:
                    break
                time.sleep(POLL)
            if new:
                written = time.perf_counter() - started - first
                size = sum(path.stat().st_size for path in new) / 1e6
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return Start(kind, first, memory, written, size)


def measure(fmt: str, size: int, rounds: int, folder: Path, source: Path) -> dict[str, Any]:
    cassette = workloads.write_size_cassette(size, folder, fmt)
    item = workloads.size_items([size - 1])[0]
    print(f"{size:,} interactions, {fmt}, {cassette.file_bytes / 1e6:.1f} MB", flush=True)
    results: dict[str, list[Start]] = {"no cache": [], "first": [], "second": []}
    for round_ in range(rounds):
        cache = folder / f"cache-{fmt}-{round_}"
        results["no cache"].append(start("no cache", cassette.path, cache, item, source))
        results["first"].append(start("first", cassette.path, cache, item, source))
        for _ in range(3):
            warm = start("second", cassette.path, cache, item, source)
            if warm.cache_written is None:
                results["second"].append(warm)
                break
            print("  (the second start missed the cache: not counted; again)")
        for kind, starts in results.items():
            if not starts:
                continue
            s = starts[-1]
            extra = f", cache written {s.cache_written:.2f} s later" if s.cache_written else ""
            extra += f" ({s.cache_mb:.0f} MB)" if s.cache_mb else ""
            print(
                f"  round {round_ + 1} {kind:>8}: first response {s.first_response:6.2f} s, "
                f"RSS {s.rss_mb:6.0f} MB{extra}",
                flush=True,
            )
    cassette.path.unlink()
    if not results["second"]:
        raise RuntimeError("no second start found the cache: is the source snapshot writable?")
    best = {kind: min(starts, key=lambda s: s.first_response) for kind, starts in results.items()}
    return {
        "format": fmt,
        "interactions": size,
        "file_mb": cassette.file_bytes / 1e6,
        "best": {kind: vars(s) for kind, s in best.items()},
        "ratios": {
            "first / no cache": best["first"].first_response / best["no cache"].first_response,
            "second / no cache": best["second"].first_response / best["no cache"].first_response,
            "RSS second / no cache": best["second"].rss_mb / best["no cache"].rss_mb,
        },
    }


def measure_all(size: int, formats: Sequence[str], *, rounds: int, folder: Path) -> dict[str, Any]:
    """Every format measured, from a snapshot of the source (see the module docstring)."""
    load_before = os.getloadavg()
    source = folder / "startup-source"
    shutil.copytree(REPO / "mockserver", source / "mockserver")
    try:
        rows = [measure(fmt, size, rounds, folder, source) for fmt in formats]
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return {"load_before": load_before, "load_after": os.getloadavg(), "rows": rows}


def render(report: dict[str, Any]) -> list[str]:
    """The table ``run.py`` prints."""
    rows = report["rows"]
    out = [
        f"7. Start-up: {rows[0]['interactions']:,} interactions, seconds from process start to "
        "the first response (checked), and RSS then",
        f"  {'cassette':<16} {'no cache':>17} {'first start':>17} {'second start':>17}"
        f" {'second/no cache':>16}",
    ]
    for row in rows:
        best = row["best"]
        cells = " ".join(
            f"{best[kind]['first_response']:>7.2f} s {best[kind]['rss_mb']:>5.0f} MB"
            for kind in ("no cache", "first", "second")
        )
        label = f"{row['format'].upper()}, {row['file_mb']:.0f} MB"
        out.append(f"  {label:<16} {cells} {row['ratios']['second / no cache']:>16.3f}")
    out.append(
        "  first start: the cache is empty and written after the first response; second: "
        "the index mapped from it. Load average before/after: "
        f"{report['load_before'][0]:.1f} / {report['load_after'][0]:.1f}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--formats", default="json,yaml")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tapedeck-startup-") as folder:
        source = Path(folder) / "source"
        shutil.copytree(REPO / "mockserver", source / "mockserver")
        for fmt in args.formats.split(","):
            rows.append(measure(fmt, args.size, args.rounds, Path(folder), source))
    print(f"load average after: {os.getloadavg()}")
    print("\nbest of each (seconds to the first response from process start; RSS then):")
    for row in rows:
        best = row["best"]
        cells = ", ".join(
            f"{kind} {best[kind]['first_response']:.2f} s / {best[kind]['rss_mb']:.0f} MB"
            for kind in ("no cache", "first", "second")
        )
        print(f"  {row['format']}: {cells}")
        print("    " + ", ".join(f"{name} {value:.3f}" for name, value in row["ratios"].items()))
    if args.out:
        args.out.write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=2))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
