"""Differential conformance of a proxy (LiteLLM, Envoy AI Gateway, your own): Tapedeck is
the proxy's upstream, so it knows exactly what was sent, and when.

    client (here) ──▶ proxy under test ──▶ upstream (here, upstream)
         │  events + arrival times              │  frames + send times, by nonce
         └──────────────▶ compare ◀─────────────┘

Each scenario (``scenarios``) is one request through the proxy. What comes out is judged
against (1) the client protocol's rules (``checks.validate``) and (2) what the upstream
sent (``compare``). ``run_conformance`` returns a Report (``report``:
a table, JUnit XML, an assertion helper); ``tapedeck check`` prints it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp

from mockserver.conformance.client import Downstream, endpoint, fetch
from mockserver.conformance.compare import compare
from mockserver.conformance.fault_scenarios import judge, plan
from mockserver.conformance.report import Outcome, Report
from mockserver.conformance.scenarios import DEFAULT_MODEL
from mockserver.conformance.upstream import Upstream
from mockserver.dialects import DEFAULT_DIALECT
from mockserver.errors import ConformanceError


def refused(down: Downstream, url: str) -> ConformanceError:
    """The error for a proxy that refused the key (401 or 403): the run cannot go on."""
    text = down.body[:300].decode("utf-8", "replace")
    return ConformanceError(
        f"the proxy at {url} refused the request with HTTP {down.status}: {text}. Way out: "
        "pass a key it accepts with --api-key (LiteLLM: its master key or a virtual key)."
    )


async def listen(upstream: Upstream, host: str, port: int) -> str:
    """Start the upstream on host:port; its URL, or a ConformanceError naming the way out."""
    try:
        return await upstream.start(host, port)
    except OSError as exc:
        raise ConformanceError(
            f"cannot listen on {host}:{port} for the upstream: {exc.strerror or exc}. "
            "Way out: pick a free port with --upstream-port, and point the proxy's upstream "
            "(LiteLLM: api_base) at it."
        ) from None


async def run_conformance_async(
    proxy_url: str,
    upstream_port: int,
    *,
    model: str = DEFAULT_MODEL,
    api_key: str = "tapedeck",
    dialects: Sequence[str] = (DEFAULT_DIALECT,),
    scenarios: Sequence[str] | None = None,
    timeout: float = 60.0,
    host: str = "127.0.0.1",
    faults: bool = False,
) -> Report:
    """``run_conformance`` inside a running event loop."""
    planned = plan(dialects, scenarios, faults, timeout)
    upstream = Upstream(planned)
    upstream_url = await listen(upstream, host, upstream_port)
    report = Report(proxy_url, upstream_url)
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=limits, auto_decompress=True) as session:
            for scenario in planned:
                url = endpoint(proxy_url, scenario.dialect)
                began = time.monotonic()
                down = await fetch(session, url, scenario, model, api_key)
                if down.status in (401, 403):
                    raise refused(down, url)
                sents = upstream.answers(scenario)
                if scenario.fault is not None:
                    findings = judge(scenario, down, sents)
                else:
                    findings = compare(scenario, down, sents)
                seconds = time.monotonic() - began
                report.outcomes.append(Outcome(scenario, findings, seconds, down.body))
    finally:
        await upstream.stop()
    if report.outcomes and all(not upstream.answers(o.scenario) for o in report.outcomes):
        report.notes.append(
            f"The proxy never reached the upstream at {upstream_url}: point its upstream "
            f"(LiteLLM: api_base: {upstream_url}/v1) there, and check that --model names a "
            "model it routes and that it accepts --api-key."
        )
    if upstream.stray:
        report.notes.append(
            f"The upstream also got {len(upstream.stray)} request(s) without a scenario tag "
            f"(first: {upstream.stray[0].summary()}), answered with an error."
        )
    return report


def run_conformance(
    proxy_url: str,
    upstream_port: int,
    *,
    model: str = DEFAULT_MODEL,
    api_key: str = "tapedeck",
    dialects: Sequence[str] = (DEFAULT_DIALECT,),
    scenarios: Sequence[str] | None = None,
    timeout: float = 60.0,
    faults: bool = False,
) -> Report:
    """Run the scenario catalogue through the proxy at ``proxy_url`` (its root URL), with
    Tapedeck listening on 127.0.0.1:``upstream_port`` as the proxy's upstream.

    ``dialects`` are the protocols the client speaks to the proxy; ``scenarios`` picks
    scenarios by name (fault scenarios too); ``faults`` adds the fault scenarios
    (``fault_scenarios``: the upstream resets, truncates, fails, answers 429, stalls).
    Raises ConformanceError when the run cannot happen (proxy down,
    key refused, port taken); otherwise returns the Report, fails included."""
    return asyncio.run(
        run_conformance_async(
            proxy_url,
            upstream_port,
            model=model,
            api_key=api_key,
            dialects=dialects,
            scenarios=scenarios,
            timeout=timeout,
            faults=faults,
        )
    )
