"""One pacer per server: every paced stream's events leave from one timer.

Where it sits: after ``timing`` (whose ``Schedule`` says when each event is due), before
the app, which sends a paced stream's status line and headers and then hands the stream
here, awaiting one future for all of it.

A coroutine sleeping before each event costs a task wake-up, a future and a timer handle
per event, and a frame per stream; here a paced stream is one small record in a heap keyed
by its next deadline, and one timer (``loop.call_at``) wakes for the earliest. Each wake
writes every event that is due straight to its transport: the next chunk of the entry's
chunk-coded ``wire`` (a memoryview slice, never a copy; the last one carries the end of the
body), or the frame itself for an HTTP/1.0 client. A client that went away (its transport
closing) ends its stream at its next deadline; a handler cancelled (server shutdown) too.
A slow reader is never skipped ahead: its transport buffers what it has not read yet, at
most the rest of the entry.

How late each event left is counted (``lateness``): beyond what one core can write, gaps
stretch, and the pacer says so instead of hiding it, in a warning at most once a
``WINDOW`` (tests read ``lateness()`` and ``last_window``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from mockserver.timing import Schedule

log = logging.getLogger("tapedeck")

WINDOW = 10.0
"""Seconds of lateness summed up before a warning (so at most one per WINDOW)."""
TOLERANCE = 0.10
"""An event is late when it leaves later than this share of its gap after its deadline..."""
LATE_FLOOR = 0.002
"""...and later than this: the event loop's timers fire up to a millisecond late."""
WARN_SHARE = 0.01
"""A window with more late events than this share gets a warning."""
BATCH = 128
"""Events written at most per wake-up (~2 ms of writes): a pacer far behind still lets the
loop accept and read in between, so new requests are not starved."""
BOUNDS = tuple(1e-5 * 1.1**k for k in range(170))
"""Lateness buckets: 10 µs to 100 s, each 10% wider than the one before."""


@dataclass(frozen=True, slots=True)
class Lateness:
    """How late paced events left their deadlines (percentiles to within 10%)."""

    events: int
    late: int
    """Events later than ``TOLERANCE`` of their gap (and ``LATE_FLOOR``)."""
    p50: float
    p99: float
    worst: float
    seconds: float
    """The time these events were written over (0 for the lifetime totals)."""

    @property
    def late_share(self) -> float:
        return self.late / self.events if self.events else 0.0

    def describe(self) -> str:
        over = ""
        if self.seconds:
            over = f" over {self.seconds:.0f} s at {self.events / self.seconds:,.0f} events/s"
        return (
            f"p50 {self.p50 * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, worst "
            f"{self.worst * 1000:.1f} ms{over}; "
            f"{self.late_share:.1%} of {self.events:,} events left more than "
            f"{TOLERANCE:.0%} of their gap late"
        )


class _Tally:
    """A histogram of lateness (the pacer's own, never shared)."""

    __slots__ = ("counts", "events", "late", "worst")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.events = 0
        self.late = 0
        self.worst = 0.0

    def add(self, lateness: float, gap: float) -> None:
        self.counts[bisect_left(BOUNDS, lateness)] += 1
        self.events += 1
        if lateness > LATE_FLOOR and lateness > TOLERANCE * gap:
            self.late += 1
        if lateness > self.worst:
            self.worst = lateness

    def merge(self, other: _Tally) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.events += other.events
        self.late += other.late
        self.worst = max(self.worst, other.worst)

    def quantile(self, share: float) -> float:
        wanted, seen = share * self.events, 0
        for index, count in enumerate(self.counts):
            seen += count
            if count and seen >= wanted:
                return min(BOUNDS[index], self.worst) if index < len(BOUNDS) else self.worst
        return 0.0

    def summary(self, seconds: float) -> Lateness:
        return Lateness(
            self.events, self.late, self.quantile(0.5), self.quantile(0.99), self.worst, seconds
        )


class _Stream:
    """One paced stream: where it is, and what it writes next."""

    __slots__ = (
        "done", "frames", "gap", "number", "offsets", "position", "speed", "start", "transport",
        "wire",
    )  # fmt: skip

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        frames: Sequence[bytes],
        wire: memoryview | None,
        schedule: Schedule,
        start: float,
        done: asyncio.Future[bool],
    ) -> None:
        self.transport = transport
        self.frames = frames
        self.wire = wire
        self.offsets = schedule.timing.events  # Schedule.at, inlined: this is the hot path
        self.speed = schedule.speed
        self.start = start
        self.done = done
        self.number = 0
        self.position = 0
        self.gap = schedule.at(0) - schedule.headers

    def send(self) -> float | None:
        """Write the due event; the next one's deadline, or None after the last."""
        frame = self.frames[self.number]
        last = self.number + 1 == len(self.frames)
        wire = self.wire
        if wire is None:
            if frame:
                self.transport.write(frame)
        elif last:
            self.transport.write(wire[self.position :])  # with the end of the body
        elif frame:  # an empty frame has no chunk: it would end the body
            size = len(frame)
            end = self.position + (size.bit_length() + 3) // 4 + size + 4  # hex CRLF data CRLF
            self.transport.write(wire[self.position : end])
            self.position = end
        if last:
            return None
        number = self.number = self.number + 1
        offsets, speed = self.offsets, self.speed
        due = offsets[number] / speed
        self.gap = due - offsets[number - 1] / speed
        return self.start + due


class Pacer:
    """Every paced stream of one server (one event loop)."""

    def __init__(self, window: float = WINDOW) -> None:
        """``window``: seconds of lateness summed up per warning (at most one each)."""
        self.window = window
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, _Stream]] = []
        self._open = 0
        self._order = itertools.count()  # equal deadlines go out in the order handed over
        self._timer: asyncio.TimerHandle | None = None
        self._window = _Tally()
        self._window_start = 0.0
        self._total = _Tally()
        self.last_window: Lateness | None = None
        """The last full ``WINDOW`` of paced events, late or not."""

    @property
    def streams(self) -> int:
        """Paced streams still playing: not yet written out, nor left by their client (seen
        at their next deadline), nor cancelled with their handler."""
        return self._open

    def lateness(self) -> Lateness:
        """Every paced event so far (the lifetime of this pacer)."""
        total = _Tally()
        total.merge(self._total)
        total.merge(self._window)
        return total.summary(0.0)

    def play(
        self,
        transport: asyncio.WriteTransport,
        frames: Sequence[bytes],
        schedule: Schedule,
        start: float,
        wire: bytes | None = None,
    ) -> asyncio.Future[bool]:
        """Write ``frames`` to ``transport``, each at ``start + schedule.at(n)`` on the loop
        clock: as the next chunk of ``wire`` (their chunked coding, as ``framing.http.chunked``
        makes it) when given, else as they are. The future is True once every event is
        written, False when the client went away first."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._open and self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    "a Pacer serves one event loop at a time, and this one has paced streams "
                    "open on another: give each running server its own ServerState"
                )
            # A new server on this state (the last one's loop is gone, and its streams).
            self._loop, self._timer, self._heap, self._open = loop, None, [], 0
        done: asyncio.Future[bool] = loop.create_future()
        if not frames:  # nothing to pace: only the end of the body
            if wire:
                transport.write(wire)
            done.set_result(True)
            return done
        view = memoryview(wire) if wire is not None else None
        stream = _Stream(transport, frames, view, schedule, start, done)
        heapq.heappush(self._heap, (start + schedule.at(0), next(self._order), stream))
        self._open += 1
        done.add_done_callback(self._ended)
        self._arm()
        return done

    def _ended(self, _: asyncio.Future[bool]) -> None:
        self._open -= 1
        if not self._open:  # only ended streams left (cancelled ones): drop them now
            self._heap.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self) -> None:
        assert self._loop is not None
        if not self._heap:  # the timer (if any) fires once more, on an empty heap
            return
        first = self._heap[0][0]
        if self._timer is not None:
            if self._timer.when() <= first:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(first, self._wake)

    def _wake(self) -> None:
        assert self._loop is not None
        self._timer = None
        clock, heap, count, order = self._loop.time, self._heap, self._window.add, self._order
        now = clock()
        if not self._window_start:
            self._window_start = now
        for _ in range(BATCH):
            if not heap or heap[0][0] > now:
                break
            due, _, stream = heap[0]
            if stream.done.done():  # its handler was cancelled: the server is stopping
                heapq.heappop(heap)
                continue
            if stream.transport.is_closing():  # the client went away
                heapq.heappop(heap)
                stream.done.set_result(False)
                continue
            now = clock()
            count(now - due if now > due else 0.0, stream.gap)
            following = stream.send()
            if following is None:
                heapq.heappop(heap)
                stream.done.set_result(True)
            else:  # one sift instead of a pop and a push
                heapq.heapreplace(heap, (following, next(order), stream))
        if now - self._window_start >= self.window:
            self._roll(now)
        self._arm()

    def _roll(self, now: float) -> None:
        window = self._window.summary(now - self._window_start)
        self.last_window = window
        self._total.merge(self._window)
        self._window, self._window_start = _Tally(), now
        if window.late_share > WARN_SHARE:
            log.warning(
                "paced streams ran late: %s. The server is CPU-bound: spread the streams "
                "over more processes (tapedeck serve --workers N), or replay at a lower --speed",
                window.describe(),
            )
