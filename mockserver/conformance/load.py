"""``tapedeck check --load``: what a proxy does to many streams at once, against a known
truth. The single-stream check (``run``) cannot see a proxy that mixes up concurrent
streams, adds latency, or buffers only when busy; this can.

    C workers ──▶ upstream                 the baseline, for ``duration`` seconds
    C workers ──▶ proxy ──▶ upstream       the same load through the proxy
       │ each stream: a fresh nonce, its own words, paced ``gap`` apart by the upstream
       └──▶ tally.judge as it ends ──▶ Tally per side ──▶ load_report (table, JUnit, exit)

Each worker sends one stream after the other until the duration is over (a closed loop:
the offered load is C streams in flight, whatever the proxy's speed). Client and upstream
share this process and its event loop on both sides, so their own cost is in the baseline
too: the comparison is what the proxy adds.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from mockserver.conformance.client import endpoint, fetch
from mockserver.conformance.load_report import LoadReport
from mockserver.conformance.run import listen, refused
from mockserver.conformance.scenarios import CATALOGUES, DEFAULT_MODEL
from mockserver.conformance.tally import MAX_EVENTS, StreamResult, Tally, judge, load_scenario
from mockserver.conformance.upstream import Upstream
from mockserver.dialects import DEFAULT_DIALECT
from mockserver.errors import ConformanceError

MAX_CONCURRENCY = 256
"""Streams in flight: each holds a few sockets here and in the proxy."""
MAX_DURATION = 600.0
"""Seconds per side."""
MIN_GAP = 0.005
"""Pacing finer than the event loop's timer resolution would measure the loop."""

Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LoadPlan:
    """``concurrency`` streams in flight for ``duration`` seconds each way; each stream is
    ``events`` words paced ``gap`` seconds apart; more than ``max_error_rate`` (a share)
    of streams failing through the proxy fails the check."""

    concurrency: int
    duration: float
    gap: float = 0.02
    events: int = 20
    max_error_rate: float = 0.01

    def __post_init__(self) -> None:
        problems = [
            f"--load must be 1 to {MAX_CONCURRENCY} streams in flight, got {self.concurrency}"
            if not 1 <= self.concurrency <= MAX_CONCURRENCY
            else "",
            f"--duration must be above 0 and at most {MAX_DURATION:.0f} s, got {self.duration}"
            if not 0 < self.duration <= MAX_DURATION
            else "",
            f"--gap must be {MIN_GAP} s to 1 s, got {self.gap}"
            if not MIN_GAP <= self.gap <= 1
            else "",
            f"events must be 2 to {MAX_EVENTS - 1}, got {self.events}"
            if not 2 <= self.events < MAX_EVENTS
            else "",
            f"--max-errors must be 0 to 100 (%), got {self.max_error_rate * 100:g}"
            if not 0 <= self.max_error_rate <= 1
            else "",
        ]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))


async def run_load_async(
    proxy_url: str,
    upstream_port: int,
    plan: LoadPlan,
    *,
    model: str = DEFAULT_MODEL,
    api_key: str = "tapedeck",
    dialects: Sequence[str] = (DEFAULT_DIALECT,),
    timeout: float = 60.0,
    host: str = "127.0.0.1",
    progress: Progress = to_stderr,
) -> LoadReport:
    """``run_load`` inside a running event loop."""
    unknown = [d for d in dialects if d not in CATALOGUES]
    if unknown or not dialects:
        raise ValueError(f"no load streams for {unknown}; known: {sorted(CATALOGUES)}")
    upstream = Upstream([])
    upstream_url = await listen(upstream, host, upstream_port)
    try:
        notes = await _warm_up(upstream, proxy_url, dialects[0], model, api_key, timeout)
        sides = []
        for name, root in (("direct", upstream_url), ("proxy", proxy_url)):
            tally = Tally(name, root, plan.gap)
            strays = len(upstream.stray)
            await _side(tally, upstream, plan, dialects, model, api_key, timeout, progress)
            if len(upstream.stray) > strays:
                notes.append(
                    f"The upstream got {len(upstream.stray) - strays} request(s) it no longer "
                    f"expected during the {name} run (retries after the client gave up, or "
                    "requests without a tag), answered with an error."
                )
            sides.append(tally)
    finally:
        await upstream.stop()
    direct, through = sides
    if through.streams and through.unreached == through.streams:
        notes.append(
            f"The proxy never reached the upstream at {upstream_url}: point its upstream "
            f"(LiteLLM: api_base: {upstream_url}/v1) there, and check that --model names a "
            "model it routes and that it accepts --api-key."
        )
    return LoadReport(proxy_url, upstream_url, plan, tuple(dialects), direct, through, notes)


def run_load(
    proxy_url: str,
    upstream_port: int,
    plan: LoadPlan,
    *,
    model: str = DEFAULT_MODEL,
    api_key: str = "tapedeck",
    dialects: Sequence[str] = (DEFAULT_DIALECT,),
    timeout: float = 60.0,
    progress: Progress = to_stderr,
) -> LoadReport:
    """Send ``plan.concurrency`` concurrent streams straight to Tapedeck (listening on
    127.0.0.1:``upstream_port``), then the same load through the proxy at ``proxy_url``
    (whose upstream must be that port), and compare. ``progress`` gets a line a second.

    Raises ConformanceError when the run cannot happen (proxy down, key refused, port
    taken), ValueError for a plan out of bounds or an unknown dialect; otherwise returns
    the LoadReport, fails included."""
    return asyncio.run(
        run_load_async(
            proxy_url,
            upstream_port,
            plan,
            model=model,
            api_key=api_key,
            dialects=dialects,
            timeout=timeout,
            progress=progress,
        )
    )


async def _warm_up(
    upstream: Upstream, proxy_url: str, name: str, model: str, api_key: str, timeout: float
) -> list[str]:
    """One stream through the proxy, not counted: it stops a run against a proxy that is
    down or refuses the key before the baseline is spent, and lets the proxy open its
    connections (LiteLLM's first request is much slower than the rest)."""
    scenario = load_scenario(name, secrets.token_hex(6), 2, MIN_GAP)
    upstream.expect(scenario)
    url = endpoint(proxy_url, name)
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    async with aiohttp.ClientSession(timeout=limits) as session:
        began = time.monotonic()
        down = await fetch(session, url, scenario, model, api_key)
    if down.status in (401, 403):
        raise refused(down, url)
    result = judge(scenario, down, upstream.forget(scenario), began)
    problem = result.error or result.detail
    if not problem:
        return []
    return [f"The first stream through the proxy (a warm-up, not counted) failed: {problem}"]


async def _side(
    tally: Tally,
    upstream: Upstream,
    plan: LoadPlan,
    dialects: Sequence[str],
    model: str,
    api_key: str,
    timeout: float,
    progress: Progress,
) -> None:
    urls = {d: endpoint(tally.url, d) for d in dialects}
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    start = time.monotonic()
    deadline = start + plan.duration

    async def worker(first: int) -> None:
        # Staggered over one stream's length: C requests at the same instant, again at
        # every turn, would measure the burst rather than the proxy.
        await asyncio.sleep(first * plan.events * plan.gap / plan.concurrency)
        turn = first
        while time.monotonic() < deadline:
            name = dialects[turn % len(dialects)]
            turn += plan.concurrency
            scenario = load_scenario(name, secrets.token_hex(6), plan.events, plan.gap)
            upstream.expect(scenario)
            began = time.monotonic()
            try:
                down = await fetch(session, urls[name], scenario, model, api_key)
            except ConformanceError as exc:  # it stopped taking connections under load
                upstream.forget(scenario)
                tally.add(StreamResult(scenario.nonce, error=str(exc), reached=False))
                continue
            tally.add(judge(scenario, down, upstream.forget(scenario), began))

    ticker = asyncio.create_task(_tick(tally, start, progress))
    try:
        async with aiohttp.ClientSession(timeout=limits, connector=connector) as session:
            await asyncio.gather(*(worker(i) for i in range(plan.concurrency)))
    finally:
        ticker.cancel()
    tally.seconds = time.monotonic() - start
    progress(
        f"{tally.name}: {tally.finished} streams in {tally.seconds:.1f}s "
        f"({tally.rate:.1f}/s), {tally.wrong_count} wrong, {tally.error_count} errors"
    )


async def _tick(tally: Tally, start: float, progress: Progress) -> None:
    """A line a second: streams done, wrong, errors, and the rate over that second."""
    second, before = 1, 0
    while True:
        # Absolute deadlines: a busy loop must not make the seconds drift.
        await asyncio.sleep(max(0.0, start + second - time.monotonic()))
        done = tally.streams
        progress(
            f"{tally.name} {second:>3}s: {done} streams, {tally.wrong_count} wrong, "
            f"{tally.error_count} errors, {done - before} streams/s"
        )
        second, before = second + 1, done
