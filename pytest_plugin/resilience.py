"""``assert_resilient``: a client call run under each fault in turn, against the
``tapedeck`` fixture's server, and judged on what it did (README 'Resilience').

    call(base_url) once, no fault ──▶ the full answer, and the requests one call makes
    for each fault: queue it ──▶ call(base_url) on a thread ──▶ Outcome ──▶ table

The call reports the answer it got as text (``call(base_url) -> str``): the text a
streaming client joined, the content of a plain answer. That is what makes the check
honest: a call that returns part of the answer as if it were all of it is caught by
comparing texts, whatever the SDK does inside. A call may also raise (it saw the fault:
fine), retry (counted from the server's request log), wait (timed against the
retry-after the server asked for) or hang (still running past its own timeout).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mockserver.faults import FaultSpec
    from pytest_plugin.handle import Tapedeck

Call = Callable[[str], str]

SLACK = 0.05
"""Seconds a retry may come early (clock and scheduling) before it counts as too soon."""
GRACE = 2.0
"""Seconds per attempt, on top of its timeout, for connecting and an SDK's own backoff."""
RATE_LIMITED = 1.0
"""The retry-after of a 429 whose spec names none (every dialect's own: 1 s)."""


def default_faults(timeout: float = 5.0, max_retries: int = 0) -> tuple[str, ...]:
    """The faults ``assert_resilient`` runs when none are given: one of each way an
    answer breaks, the stall outlasting every attempt a call with that ``timeout`` and
    ``max_retries`` may make."""
    stall = min(deadline(timeout, max_retries, 0.0) + GRACE, 600.0)
    return (
        "status:code=429,retry_after=1,times=1",
        "status:code=503,times=1",
        "reset:after=2",
        "truncate:after=2",
        "error:after=2",
        "corrupt:at=1",
        f"stall:before=1,seconds={stall:g}",
    )


def deadline(timeout: float, max_retries: int | None, waits: float) -> float:
    """Seconds after which a call counts as hung: its ``timeout`` for each attempt it may
    make, the waits the server asked for, and ``GRACE`` per attempt."""
    attempts = 1 + (max_retries or 0)
    return attempts * (timeout + GRACE) + waits


@dataclass(frozen=True)
class Outcome:
    """What a call did under one fault."""

    fault: str
    result: str
    """completed, raised, truncated (a partial answer returned as complete) or hung."""
    requests: int
    seconds: float
    retries: int = 0
    error: str = ""
    """The exception the call raised (``RateLimitError: ...``), when it raised."""
    text: str = ""
    problems: tuple[str, ...] = ()
    """Why this outcome fails the check (empty: it passes)."""

    def describe(self) -> str:
        """``raised RateLimitError``, ``completed after 1 retry``, ``SILENTLY TRUNCATED``..."""
        retried = f" after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        retried = retried if self.retries else ""
        if self.result == "raised":
            return f"raised {self.error.partition(':')[0]}{retried}"
        if self.result == "truncated":
            return f"SILENTLY TRUNCATED{retried}"
        if self.result == "hung":
            return "HUNG"
        return f"completed{retried}"


@dataclass(frozen=True)
class Resilience:
    """Every outcome of one ``assert_resilient``, and the answer they were judged by."""

    expected: str
    outcomes: tuple[Outcome, ...]
    skipped: tuple[str, ...] = ()
    """Faults not run: an earlier call hung, and its thread still runs."""

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problems]

    def table(self) -> str:
        width = max([len(o.fault) for o in self.outcomes] + [5])
        lines = [f"  {'fault':<{width}}  {'outcome':<32}  requests  seconds"]
        for o in self.outcomes:
            lines.append(
                f"  {o.fault:<{width}}  {o.describe():<32}  {o.requests:>8}  {o.seconds:>7.2f}"
            )
            lines += [f"      {problem}" for problem in o.problems]
            if o.error and not o.problems:
                lines.append(f"      {o.error[:200]}")
        lines += [f"  {fault:<{width}}  not run (an earlier call hung)" for fault in self.skipped]
        return "\n".join(lines)


def assert_resilient(
    call: Call,
    faults: Sequence[str] | None = None,
    *,
    server: Tapedeck,
    timeout: float,
    max_retries: int | None = None,
    dialect: str | None = None,
    expected: str | None = None,
) -> Resilience:
    """Run ``call(base_url)`` under each fault (``default_faults`` when none are given)
    and raise AssertionError, with a table of outcomes, when it returned a partial answer
    as if complete, retried more than ``max_retries`` times, retried sooner than a
    retry-after asked, or ran past its own ``timeout`` (seconds per attempt).

    ``server`` is the ``tapedeck`` fixture; ``dialect`` picks the base URL the call gets
    (``server.base_url(dialect)``); ``expected`` is the full answer's text (by default
    what the call returns without a fault). Returns the outcomes when all is well."""
    from mockserver.faults import parse

    specs = [parse(spec) for spec in faults or default_faults(timeout, max_retries or 0)]
    base_url = server.base_url(dialect)
    with server.faults_replaced():  # the baseline: no fault, not even the test's own
        before = len(server.requests)
        baseline = _run(call, base_url, deadline(timeout, max_retries, 0.0))
        if baseline.error or not isinstance(baseline.value, str):
            raise AssertionError(
                f"the call fails without any fault ({baseline.error or baseline.value!r}): "
                "make it pass against the server first (a cassette, or the marker's "
                "synthesize=True)"
            )
    per_call = max(len(server.requests) - before, 1)
    want = baseline.value if expected is None else expected
    outcomes: list[Outcome] = []
    for number, spec in enumerate(specs):
        outcome = _judged(call, spec, server, base_url, (want, per_call), timeout, max_retries)
        outcomes.append(outcome)
        if outcome.result == "hung":
            skipped = tuple(str(s) for s in specs[number + 1 :])
            break
    else:
        skipped = ()
    report = Resilience(want, tuple(outcomes), skipped)
    if report.failed or skipped:
        names = ", ".join(o.fault for o in report.failed)
        raise AssertionError(
            f"the call is not resilient to {names}\n(full answer: {want[:120]!r})\n"
            + report.table()
        )
    return report


@dataclass
class _Ran:
    value: object = None
    error: str = ""
    seconds: float = 0.0
    done: bool = False


def _run(call: Call, base_url: str, limit: float) -> _Ran:
    """``call(base_url)`` on a thread, waited for ``limit`` seconds at most (a call that
    hangs cannot be stopped: its thread is left to end when the server answers)."""
    ran = _Ran()

    def target() -> None:
        began = time.monotonic()
        try:
            ran.value = call(base_url)
        except BaseException as exc:  # the outcome, whatever it is
            ran.error = f"{type(exc).__name__}: {exc}"
        ran.seconds = time.monotonic() - began
        ran.done = True

    thread = threading.Thread(target=target, name="tapedeck-resilience", daemon=True)
    began = time.monotonic()
    thread.start()
    thread.join(limit)
    if not ran.done:
        ran.seconds = time.monotonic() - began
    return ran


def _judged(
    call: Call,
    spec: FaultSpec,
    server: Tapedeck,
    base_url: str,
    baseline: tuple[str, int],
    timeout: float,
    max_retries: int | None,
) -> Outcome:
    """One fault, queued alone on the server (no standing fault of the test's), judged
    against the ``baseline``: the full answer, and how many requests a call makes."""
    want, per_call = baseline
    wait = _retry_after(spec)
    waits = wait * (spec.times or 1)  # a stall gets no allowance: the timeout is for it
    with server.faults_replaced(spec):  # alone: none of the test's standing faults
        before = len(server.requests)
        ran = _run(call, base_url, deadline(timeout, max_retries, waits))
    log = server.requests[before:]
    faulted = sum(1 for r in log if r.fault)
    retries = max(len(log) - per_call, 0)
    outcome = functools.partial(Outcome, str(spec), requests=len(log), seconds=ran.seconds)
    if not ran.done:
        problem = (
            f"hung: still running {ran.seconds:.1f}s after it began (allowed: {timeout:g}s "
            f"per attempt, {1 + (max_retries or 0)} attempt(s), {GRACE:g}s each to spare"
            + (f", {waits:g}s of retry-after" if waits else "")
            + ")"
        )
        return outcome(result="hung", retries=retries, problems=(problem,))
    if not faulted:
        raise AssertionError(
            f"the call sent no request that got the fault {spec} ({len(log)} request(s) "
            f"in all): it must send its requests to the base URL it is given ({base_url})"
        )
    problems: list[str] = []
    if max_retries is not None and retries > max_retries:
        problems.append(f"retried {retries} times, more than the {max_retries} allowed")
    if wait and retries and ran.seconds < min(faulted, retries) * wait - SLACK:
        problems.append(
            f"retried {min(faulted, retries)} time(s) within {ran.seconds:.2f}s: sooner "
            f"than the retry-after of {wait:g}s the server asked for"
        )
    if ran.error:
        return outcome(result="raised", retries=retries, error=ran.error, problems=tuple(problems))
    if not isinstance(ran.value, str):
        raise TypeError(
            f"the call returned {type(ran.value).__name__}, not the text of the answer it "
            "got (str): assert_resilient compares that text with the full answer"
        )
    result = "completed"
    if ran.value != want:
        result, how = "truncated", "a prefix" if want.startswith(ran.value) else "not the answer"
        problems.insert(
            0,
            f"returned {len(ran.value)} of {len(want)} characters ({how}) without raising: "
            f"{ran.value[:80]!r}",
        )
    return outcome(result=result, retries=retries, text=ran.value, problems=tuple(problems))


def _retry_after(spec: FaultSpec) -> float:
    """The retry-after the server sends with this fault (0: none)."""
    if spec.kind != "status":
        return 0.0
    given = spec.float("retry_after")
    if given >= 0:
        return given
    return RATE_LIMITED if spec.int("code") == 429 else 0.0
