"""A lean HTTP/1.1 load generator: N keep-alive connections, closed loop, full responses.

Run by ``run.py`` in its own process, pinned to the core the servers do not use. It shares
no code with the server under test (a bug there cannot hide here) and is built to cost
little per response, so that it measures the server and not itself:

- one ``asyncio.Protocol`` per connection: bytes are parsed in ``data_received`` and the
  next request is written from there, with no task switch or stream reader per chunk;
- a sample of chunked responses is walked chunk by chunk (that is how the client counts
  the HTTP chunks a stream arrives in) and compared byte for byte; the others are only
  skimmed, since walking 100 chunks in Python costs as much as the server's whole answer
  (see ``Connection``);
- every response is still checked for its status and its exact framed length, and every
  Content-Length body is compared whole.

Output: one JSON object on stdout (see ``Result``). Usage::

    python benchmarks/loadgen.py --port 8080 --workload FILE [--connections 32]
        [--warmup 1] [--duration 5] [--server-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# Past the first pass over the workload, one response in SAMPLE_EVERY is walked and compared.
SAMPLE_EVERY = 16
DRAIN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Item:
    """One request to send, as the exact bytes, and what must come back."""

    request: bytes
    status: int
    body: bytes


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """A keep-alive JSON POST, as an SDK would send it (minus its dozen extra headers)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: */*\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def write_workload(path: Path, items: Sequence[Item]) -> None:
    document = [
        {
            "request": base64.b64encode(item.request).decode("ascii"),
            "status": item.status,
            "body": base64.b64encode(item.body).decode("ascii"),
        }
        for item in items
    ]
    path.write_text(json.dumps(document))


def read_workload(path: Path) -> list[Item]:
    return [
        Item(base64.b64decode(raw["request"]), int(raw["status"]), base64.b64decode(raw["body"]))
        for raw in json.loads(path.read_text())
    ]


@dataclass(frozen=True, slots=True)
class Result:
    """What one measurement found; ``run.py`` reads it back from JSON."""

    connections: int
    seconds: float
    completed: int  # responses completed inside the measured window
    rate: float  # completed / seconds
    total_completed: int  # warm-up and drain included (for memory-per-request figures)
    latency_median_ms: float
    latency_p99_ms: float
    chunks_min: int  # HTTP chunks per walked response; 0 for Content-Length bodies
    chunks_max: int
    walked_responses: int  # chunked responses parsed chunk by chunk
    body_bytes: int
    validated_bodies: int  # responses whose whole body was compared byte for byte
    checked_responses: int  # responses whose status and framed length were checked
    errors: int
    first_error: str | None
    client_cpu: float  # this process's CPU time / wall time in the window (1.0 = one core)
    server_cpu_us: float | None  # server CPU time per completed response
    other_cpu: float | None  # cores' worth of CPU used by anything else during the window


class Stats:
    """Shared by all connections of one run; only touched from the event loop."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items
        # The framed (on the wire) body length of each item's responses, learnt by walking
        # the first one; later responses of the same item must have exactly that length.
        self.wire_lengths: list[int | None] = [None] * len(items)
        self.completed = 0
        self.in_flight = 0
        self.measuring = False
        self.stopping = False
        self.latencies: list[float] = []
        self.walked = 0
        self.chunks_min = sys.maxsize
        self.chunks_max = 0
        self.body_bytes = 0
        self.validated = 0
        self.errors = 0
        self.first_error: str | None = None
        self.drained: asyncio.Future[None] | None = None

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message

    def done(self, latency: float, chunks: int | None) -> None:
        self.completed += 1
        self.in_flight -= 1
        if self.measuring:
            self.latencies.append(latency)
        if chunks is not None:
            self.walked += 1
            self.chunks_min = min(self.chunks_min, chunks)
            self.chunks_max = max(self.chunks_max, chunks)
        self._maybe_drained()

    def lost(self) -> None:
        self.in_flight -= 1
        self._maybe_drained()

    def _maybe_drained(self) -> None:
        if self.stopping and self.in_flight == 0 and self.drained and not self.drained.done():
            self.drained.set_result(None)


class Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole response, send the next.

    A chunked response is either *walked* (every chunk header parsed, chunks counted, the
    body reassembled and compared byte for byte: the first response of each item, then one
    in SAMPLE_EVERY) or *skimmed* (complete when its framed length reaches the length the
    walked responses of the same item had, and it ends with the last-chunk marker). Walking
    a 100-chunk stream costs ~45 us of Python, as much as a server's whole answer; skimming
    costs ~1 us and still rejects any response whose framing or length changed.
    """

    def __init__(self, stats: Stats, first: int) -> None:
        self.stats = stats
        self.next_index = first
        self.served = 0
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self._start_response(0)

    def _start_response(self, index: int) -> None:
        self.index = index
        self.item = self.stats.items[index]
        self.sent_at = 0.0
        self.head_seen = False
        self.body_start = 0
        self.position = 0  # parse position in ``buffer``
        self.chunked = False
        self.length = -1
        self.status = 0
        self.walk = False
        self.chunks = 0
        self.received = 0
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:  # aborted by us, already reported
            return
        self.transport = None
        if self.busy:
            self.busy = False
            self.stats.fail(f"connection closed mid-response ({exc or 'by the server'})")
            self.stats.lost()
        elif not self.stats.stopping:
            # A closed connection sends no more: the rate would drop for no visible reason.
            self.stats.fail(f"the server closed a keep-alive connection ({exc or 'FIN'})")

    def send(self) -> None:
        stats = self.stats
        if stats.stopping or self.transport is None:
            return
        index = self.next_index % len(stats.items)
        self.next_index += 1
        self._start_response(index)
        self.walk = (
            self.served < len(stats.items)
            or self.served % SAMPLE_EVERY == 0
            or stats.wire_lengths[index] is None
        )
        self.busy = True
        stats.in_flight += 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.item.request)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self._abort(f"{len(data)} bytes arrived with no request outstanding")
            return
        self.buffer += data
        try:
            complete = self._parse()
        except ValueError as exc:
            self._abort(f"malformed response: {exc}")
            return
        if complete:
            self._finish()

    def _parse(self) -> bool:
        """True once the whole response is in ``buffer``; keeps its place between calls."""
        buffer = self.buffer
        if not self.head_seen:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            self._head(bytes(buffer[:end]).lower())
            self.head_seen = True
            self.body_start = self.position = end + 4
        if not self.chunked:
            return len(buffer) - self.body_start >= self.length
        if not self.walk:
            expected = self.stats.wire_lengths[self.index]
            assert expected is not None
            have = len(buffer) - self.body_start
            if have < expected and not buffer.endswith(b"\r\n0\r\n\r\n"):
                return False
            if have == expected and buffer.endswith(b"0\r\n\r\n"):
                self.position = len(buffer)
                return True
            # Shorter, longer or oddly ended: walk it to say what is wrong.
            self.walk = True
        return self._walk()

    def _head(self, head: bytes) -> None:
        if not head.startswith(b"http/1.1 "):
            raise ValueError(f"expected an HTTP/1.1 status line, found {head[:40]!r}")
        self.status = int(head[9:12])
        if b"\r\nconnection: close" in head:
            raise ValueError("the server closes the connection (no keep-alive)")
        self.chunked = b"\r\ntransfer-encoding: chunked" in head
        if not self.chunked:
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ValueError("neither chunked nor Content-Length")
            line_end = head.find(b"\r\n", at + 2)
            self.length = int(head[at + 17 : line_end if line_end > 0 else len(head)])

    def _walk(self) -> bool:
        buffer = self.buffer
        position = self.position
        available = len(buffer)
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return False
            size = int(buffer[position:line_end].partition(b";")[0], 16)
            if size == 0:
                # The last chunk; no trailers are expected, so the blank line ends it.
                if line_end + 4 > available:
                    return False
                if buffer[line_end + 2 : line_end + 4] != b"\r\n":
                    raise ValueError("trailers after the last chunk")
                self.position = line_end + 4
                return True
            data_end = line_end + 2 + size
            if data_end + 2 > available:
                return False
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise ValueError(f"chunk {self.chunks} is not {size} bytes long")
            self.parts.append(bytes(buffer[line_end + 2 : data_end]))
            self.chunks += 1
            position = data_end + 2
            self.position = position

    def _finish(self) -> None:
        stats, item = self.stats, self.item
        latency = time.perf_counter() - self.sent_at
        end = self.position if self.chunked else self.body_start + self.length
        if len(self.buffer) != end:
            self._abort(f"{len(self.buffer) - end} bytes after the end of the response")
            return
        body: bytes | bytearray | None = None
        if not self.chunked:
            # A Content-Length body is one slice: comparing it whole costs next to nothing.
            body = self.buffer[self.body_start : end]
        elif self.walk:
            body = b"".join(self.parts)
            wire = end - self.body_start
            if stats.wire_lengths[self.index] is None:
                stats.wire_lengths[self.index] = wire
            elif stats.wire_lengths[self.index] != wire:
                stats.fail(
                    f"framed body of {wire} bytes where earlier responses to the same request "
                    f"had {stats.wire_lengths[self.index]}"
                )
        if self.status != item.status:
            stats.fail(f"expected status {item.status}, got {self.status}")
        elif body is not None:
            if body != item.body:
                stats.fail(f"the body ({len(body)} bytes) differs from the expected bytes")
            else:
                stats.validated += 1
                stats.body_bytes = len(body)
        del self.buffer[:]
        self.busy = False
        self.served += 1
        stats.done(latency, self.chunks if self.chunked and self.walk else None)
        self.send()

    def _abort(self, message: str) -> None:
        self.stats.fail(message)
        if self.busy:
            self.busy = False
            self.stats.lost()
        if self.transport is not None:
            self.transport.abort()
            self.transport = None


def server_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process, from /proc (Linux)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" closing the command name, utime and stime are fields 12 and 13.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU time all cores spent on anything but idling since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters read at a boundary of the measured window."""

    completed: int
    wall: float
    own_cpu: float
    server_cpu: float | None
    machine_busy: float | None

    @classmethod
    def take(cls, stats: Stats, server_pid: int | None) -> Snapshot:
        return cls(
            stats.completed,
            time.perf_counter(),
            time.process_time(),
            server_cpu_seconds(server_pid),
            machine_busy_seconds(),
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(fraction * len(values) + 0.5) - 1))
    return values[rank]


async def measure(
    host: str,
    port: int,
    items: Sequence[Item],
    *,
    connections: int,
    warmup: float,
    duration: float,
    server_pid: int | None,
) -> Result:
    loop = asyncio.get_running_loop()
    stats = Stats(items)
    stride = max(1, len(items) // connections)

    def factory(first: int) -> Callable[[], Connection]:
        return lambda: Connection(stats, first)

    opened = await asyncio.gather(
        *(
            # Connections start at different items so that all of them are in play at once.
            loop.create_connection(factory(i * stride), host, port)
            for i in range(connections)
        )
    )
    # The phases are timed by the clock; the counters are read at each boundary.
    await asyncio.sleep(warmup)
    start = Snapshot.take(stats, server_pid)
    stats.measuring = True
    await asyncio.sleep(duration)
    stats.measuring = False
    end = Snapshot.take(stats, server_pid)
    stats.stopping = True
    stats.drained = loop.create_future()
    if stats.in_flight > 0:
        try:
            await asyncio.wait_for(stats.drained, DRAIN_TIMEOUT)
        except asyncio.TimeoutError:  # not the builtin one before Python 3.11
            stats.fail(
                f"{stats.in_flight} responses still unfinished {DRAIN_TIMEOUT} s after the end"
            )
    for transport, _ in opened:
        transport.close()

    seconds = end.wall - start.wall
    completed = end.completed - start.completed
    own = end.own_cpu - start.own_cpu
    latencies = sorted(stats.latencies)
    server = None
    if start.server_cpu is not None and end.server_cpu is not None:
        server = end.server_cpu - start.server_cpu
    other = None
    if start.machine_busy is not None and end.machine_busy is not None:
        # What the machine did besides this client and the server: other processes
        # (tests someone runs), plus a few percent of interrupt work for the traffic.
        other = (end.machine_busy - start.machine_busy - own - (server or 0.0)) / seconds
    return Result(
        connections=connections,
        seconds=seconds,
        completed=completed,
        rate=completed / seconds,
        total_completed=stats.completed,
        latency_median_ms=percentile(latencies, 0.5) * 1e3,
        latency_p99_ms=percentile(latencies, 0.99) * 1e3,
        chunks_min=stats.chunks_min if stats.walked else 0,
        chunks_max=stats.chunks_max,
        walked_responses=stats.walked,
        body_bytes=stats.body_bytes,
        validated_bodies=stats.validated,
        checked_responses=stats.completed,
        errors=stats.errors,
        first_error=stats.first_error,
        client_cpu=own / seconds,
        server_cpu_us=server / completed * 1e6 if server is not None and completed else None,
        other_cpu=other,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workload", type=Path, required=True, help="JSON from write_workload")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, not measured")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--server-pid", type=int, help="read this process's CPU time")
    args = parser.parse_args(argv)
    items = read_workload(args.workload)
    if not items:
        parser.error("the workload is empty")
    result = asyncio.run(
        measure(
            args.host,
            args.port,
            items,
            connections=args.connections,
            warmup=args.warmup,
            duration=args.duration,
            server_pid=args.server_pid,
        )
    )
    json.dump(asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
