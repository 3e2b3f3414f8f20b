"""Fault scenarios of a conformance run (``tapedeck check --faults``): the upstream
misbehaves the way a fault spec says (``mockserver.faults``) and the proxy is judged on
what its client gets.

    plan ──▶ upstream breaks its answer (Scenario.fault) ──▶ proxy ──▶ client ──▶ judge

The judgement is the one a client needs: a broken upstream stream stays visibly broken
(no ``[DONE]``, finish reason or usage the upstream never sent), a reset or a mid-stream
error reaches the client as an error it can see, a 429 reaches it (with its retry-after)
or is retried no sooner than asked, and a stalled upstream does not hang the client past
its own timeout. Findings are the report's (``report.Finding``), with ``FAULT_RULES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from mockserver.conformance.compare import compare, summarize
from mockserver.conformance.report import Finding
from mockserver.conformance.scenarios import TEXT, Scenario, catalogue
from mockserver.conformance.upstream import Sent
from mockserver.dialects import dialect
from mockserver.dialects._kit.summary import Summary
from mockserver.faults import FaultSpec, parse
from mockserver.model import Event, Script, header

if TYPE_CHECKING:
    from mockserver.conformance.client import Downstream

PREFIX = "fault-"
RETRY_AFTER = 1.0
"""Seconds the upstream's 429 asks for."""
SLACK = 0.05
"""Seconds a retry may come early (clock and scheduling), before it counts as too soon."""

FAULT_RULES: dict[str, tuple[str, str]] = {
    "end-invented": (
        "fail",
        "After the upstream's stream broke (reset, truncated, failed), the client gets no "
        "[DONE], finish reason or usage the upstream never sent: a complete-looking stream "
        "hides the loss.",
    ),
    "failure-hidden": (
        "fail",
        "A reset or a mid-stream error upstream reaches the client as an error it can see "
        "(an error event, a broken connection, an error status), not as a clean end.",
    ),
    "text-invented": ("fail", "After a fault, the client's text is a prefix of the upstream's."),
    "text-lost": ("warn", "Text the upstream sent before the fault reaches the client."),
    "error-swallowed": (
        "fail",
        "An upstream error status reaches the client, or the proxy retries until it gets an "
        "answer: never a 200 the upstream did not give.",
    ),
    "retry-after-ignored": (
        "fail",
        "A proxy retrying a 429 waits at least the retry-after the upstream asked for.",
    ),
    "retry-after-dropped": (
        "warn",
        "A 429 passed on keeps its retry-after header (SDKs wait as long as it says).",
    ),
    "status-changed": (
        "warn",
        "An upstream 429 reaches the client as a 429 (SDKs retry it and wait as asked).",
    ),
    "stall-hung": (
        "fail",
        "When the upstream stalls, the proxy ends the client's request (an error, its own "
        "timeout) before the client's --timeout.",
    ),
    "fault-passed": ("info", "How the proxy passed the fault on to its client."),
}
"""The fault scenarios' rules: id -> (verdict, what is required)."""


def fault_catalogue(name: str, timeout: float) -> list[Scenario]:
    """The fault scenarios for a client protocol, fresh nonces. The stall outlasts the
    client's ``timeout``, so only a proxy that gives up on its own ends it in time."""
    stall = min(timeout + 2.0, 600.0)
    faults = {
        "reset": ("reset:after=3", "the upstream resets the connection after 3 events"),
        "truncate": ("truncate:after=3", "the upstream ends its stream cleanly after 3 events"),
        "error": ("error:after=3", "the upstream sends its mid-stream error after 3 events"),
        "429": (
            f"status:code=429,retry_after={RETRY_AFTER:g},times=1",
            f"the upstream answers 429 (retry-after {RETRY_AFTER:g}) once, then streams",
        ),
        "stall": (
            f"stall:before=3,seconds={stall:g}",
            f"the upstream stalls after 3 events for {stall:g}s (past --timeout)",
        ),
    }
    catalogue(name, [])  # an unknown protocol raises, listing the known ones
    return [
        Scenario(PREFIX + kind, name, described, Script(text=TEXT, chunk_size=8), fault=spec)
        for kind, (spec, described) in faults.items()
    ]


def plan(
    dialects: Sequence[str], names: Sequence[str] | None, faults: bool, timeout: float
) -> list[Scenario]:
    """The scenarios of a run: those named (from either catalogue), else the catalogue,
    followed by the fault scenarios when ``faults``."""
    out: list[Scenario] = []
    for name in dialects:
        extra = fault_catalogue(name, timeout)
        if not names:
            out += catalogue(name) + (extra if faults else [])
            continue
        known = {s.name for s in extra}
        unknown = set(names) - known - {s.name for s in catalogue(name)}
        if unknown:
            listed = ", ".join([s.name for s in catalogue(name)] + sorted(known))
            raise ValueError(f"unknown scenario(s) {sorted(unknown)} for {name}; known: {listed}")
        regular = [n for n in names if n not in known]
        out += catalogue(name, regular) if regular else []
        out += [s for s in extra if s.name in names]
    return out


def judge(scenario: Scenario, down: Downstream, sents: Sequence[Sent]) -> list[Finding]:
    """Every finding for one fault scenario (those of ``FAULT_RULES``, and ``compare``'s
    on the answer a proxy got after retrying)."""
    assert scenario.fault is not None
    fault = parse(scenario.fault)
    found: list[Finding] = []

    def add(rule: str, message: str, downstream: str = "", upstream: str = "") -> None:
        verdict = FAULT_RULES[rule][0] if rule in FAULT_RULES else "fail"
        found.append(Finding(scenario.label, rule, verdict, message, downstream, upstream))

    if not sents:
        add("upstream-not-reached", "expected the request at the upstream, found none")
        return found
    if fault.kind == "status":
        return _refused(scenario, fault, down, sents, add) + found
    _broken(scenario, fault, down, sents[0], add)
    if len(sents) > 1:
        add("upstream-retried", f"the upstream got this request {len(sents)} times")
    return found


def _refused(
    scenario: Scenario, fault: FaultSpec, down: Downstream, sents: Sequence[Sent], add: Add
) -> list[Finding]:
    code, first = fault.int("code"), sents[0]
    body = down.body[:200].decode("utf-8", "replace")
    asked = f"the upstream was asked {len(sents)} time(s)"
    if down.status == code:
        retry_after = header(down.headers, "retry-after")
        if retry_after is None:
            add(
                "retry-after-dropped",
                f"expected the upstream's retry-after: {_wanted(fault):g} on the {code}, "
                "found none",
            )
        add("fault-passed", f"HTTP {code} passed on (retry-after: {retry_after}); {asked}")
        return []
    if down.status != 200:
        add("status-changed", f"expected HTTP {code} or a retry, found {down.status}: {body}")
        add("fault-passed", f"HTTP {down.status} instead of {code}; {asked}")
        return []
    if len(sents) < 2 or all(s.status == code for s in sents):
        add(
            "error-swallowed",
            f"expected HTTP {code} or a retry, found HTTP 200 though the upstream only ever "
            f"answered {code} ({asked})",
            _last(down),
        )
        return []
    waited = sents[1].arrived - first.times[-1]
    wanted = _wanted(fault)
    if waited < wanted - SLACK:
        add(
            "retry-after-ignored",
            f"expected the retry {wanted:g}s or more after the {code}, found {waited:.3f}s",
        )
    add("fault-passed", f"retried upstream {waited:.2f}s after the {code}, then HTTP 200; {asked}")
    # The answer that came through is judged like any other, against the one it came from.
    return compare(replace(scenario, fault=None), down, [s for s in sents if s.status != code])


def _broken(scenario: Scenario, fault: FaultSpec, down: Downstream, up: Sent, add: Add) -> None:
    how = {
        "reset": "reset",
        "truncate": "cut short",
        "error": "ended by an error",
        "stall": "stalled",
    }.get(fault.kind, fault.kind)
    if down.timed_out:
        rule = "stall-hung" if fault.kind == "stall" else "failure-hidden"
        add(
            rule,
            f"expected the proxy to end the request once the upstream's stream was {how} "
            f"after {len(_events(up))} events, found nothing more until the client's own "
            f"timeout ({len(down.events)} events, "
            f"{'HTTP ' + str(down.status) if down.status else 'no answer'})",
            _last(down),
        )
    if down.status not in (0, 200):
        text = down.body[:200].decode("utf-8", "replace")
        add("fault-passed", f"HTTP {down.status} ({text.strip()})")
        return
    if down.status == 0:
        add("fault-passed", _seen(down, Summary()).replace("after 0 events", "before any answer"))
        return
    up_events = _events(up)
    mine = summarize(scenario.dialect, down.events) or Summary()
    theirs = summarize(up.dialect, up_events) or Summary()
    invented = _invented(mine, theirs)
    if invented:
        add(
            "end-invented",
            f"expected the stream to stay incomplete (the upstream's was {how} after "
            f"{len(up_events)} events), found {', '.join(invented)}",
            _last(down),
        )
    visible = bool(down.broken) or mine.error
    if fault.kind in ("reset", "error") and not (visible or invented or down.timed_out):
        add(
            "failure-hidden",
            f"expected an error the client can see (the upstream's stream was {how}), found "
            f"a clean end after {len(down.events)} events",
            _last(down),
        )
    for n in sorted(set(theirs.texts) | set(mine.texts)):
        want, got = theirs.texts.get(n, ""), mine.texts.get(n, "")
        if not want.startswith(got):
            add("text-invented", f"expected choice {n} to read a prefix of {want!r}, found {got!r}")
        elif len(got) < len(want):
            add("text-lost", f"expected choice {n} to read {want!r}, found {got!r}")
    add("fault-passed", _seen(down, mine))


Add = Callable[..., None]


def _invented(mine: Summary, theirs: Summary) -> list[str]:
    out = ["the end of stream marker ([DONE] or its kind)"] if mine.done and not theirs.done else []
    out += [
        f"finish reason {reason!r} for choice {n}"
        for n, reason in sorted(mine.finishes.items())
        if reason is not None and theirs.finishes.get(n) is None
    ]
    if mine.usage and any(mine.usage) and not theirs.usage:
        out.append(f"usage {mine.usage}")
    return out


def _seen(down: Downstream, mine: Summary) -> str:
    """What the client saw at the end, in a few words (the README's table)."""
    events = f"after {len(down.events)} events"
    if down.timed_out:
        return f"the client timed out {events} (the proxy kept the request open)"
    if down.broken:
        return f"a broken stream {events} ({down.broken})"
    if mine.error:
        return f"an error event {events}, then a clean end"
    finished = any(reason is not None for reason in mine.finishes.values())
    ends = [word for word, on in (("[DONE]", mine.done), ("a finish", finished)) if on]
    return f"a clean end {events}" + (f" with {' and '.join(ends)}" if ends else ", no end marker")


def _events(up: Sent) -> list[Event]:
    """The events the upstream sent (its frames, read back)."""
    return list(dialect(up.dialect).framing_for(up.request).events(up.body))


def _last(down: Downstream) -> str:
    if not down.events:
        return ""
    raw = down.events[-1].raw.decode("utf-8", "replace").strip()
    return f"event {len(down.events) - 1}: {raw[:300]}"


def _wanted(fault: FaultSpec) -> float:
    """The retry-after the upstream sent: the spec's, or a dialect's own 1 s on a 429."""
    return fault.float("retry_after") if fault.float("retry_after") >= 0 else RETRY_AFTER
