"""What ``check --load`` found, and how it is shown: the figures of both sides (straight
to the upstream, and through the proxy) next to each other, findings with the verdicts of
the single-stream check (``report``: fail, warn, info), JUnit XML and an exit code.

The figures, per side:

- streams finished, wrong (a clean end with content not its own: ``tally``), errors;
- throughput: streams finished per second of the run;
- TTFE: from sending the request to the first event;
- event delay: from the upstream sending an event to the client having it whole;
- event gap: between two events at the client (the upstream paced them ``gap`` apart);
  an event is *coalesced* when less than half of that pause survived, and *late* when
  it was held for longer than a whole pacing interval.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mockserver.conformance.report import VERDICTS, Finding
from mockserver.conformance.tally import WRONG_KINDS, Tally, percentile

if TYPE_CHECKING:
    from mockserver.conformance.load import LoadPlan

DISTORTION = 0.10
"""Share of events coalesced or late, beyond the direct baseline's, that makes a warn."""

LOAD_RULES: dict[str, tuple[str, str]] = {
    "stream-mixed": (
        "fail",
        "Each stream carries its own content only, however many are in flight.",
    ),
    "stream-cut": ("fail", "A stream that ends cleanly carries all of its content and its finish."),
    "stream-reordered": ("fail", "Each stream's content arrives in order under load."),
    "stream-garbled": ("fail", "Each stream's content arrives unchanged under load."),
    "errors-over-threshold": (
        "fail",
        "Streams failing through the proxy (HTTP errors, broken streams) stay within --max-errors.",
    ),
    "errors": ("info", "Some streams failed, within --max-errors."),
    "gaps-distorted": (
        "warn",
        "The pauses between events survive the load: at most 10% more events coalesced, "
        "or held past a pacing interval, than straight from the upstream.",
    ),
    "baseline-disturbed": (
        "warn",
        "The baseline (straight to the upstream) comes back clean: if not, this machine "
        "cannot carry the load and the figures are unreliable.",
    ),
}
"""Load rules: id -> (verdict, what is required)."""

CASES = {
    "streams-intact": ("stream-mixed", "stream-cut", "stream-reordered", "stream-garbled"),
    "errors": ("errors-over-threshold", "errors"),
    "event-pacing": ("gaps-distorted",),
    "baseline": ("baseline-disturbed",),
}
"""JUnit test cases and the rules each one reports."""

WRONG = {
    "mixed": "carried another stream's content",
    "cut": "ended cleanly without all of their content",
    "reordered": "had their content out of order",
    "garbled": "had content changed, doubled or lost",
}


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


Row = tuple[str, str, str, Callable[[Tally], float | None]]


def _rows(gap_ms: float) -> list[Row]:
    """(key, label, how the two sides compare, the figure)."""
    return [
        ("streams", "streams finished", "", lambda t: t.finished),
        ("wrong", "wrong", "", lambda t: t.wrong_count),
        ("errors", "errors", "", lambda t: t.error_count),
        ("rate", "throughput (streams/s)", "x", lambda t: t.rate),
        ("ttfe_p50_ms", "TTFE p50 (ms)", "+", lambda t: _ms(percentile(t.ttfe, 50))),
        ("ttfe_p99_ms", "TTFE p99 (ms)", "+", lambda t: _ms(percentile(t.ttfe, 99))),
        ("delay_p50_ms", "event delay p50 (ms)", "+", lambda t: _ms(percentile(t.delays, 50))),
        ("delay_p99_ms", "event delay p99 (ms)", "+", lambda t: _ms(percentile(t.delays, 99))),
        (
            "gap_p50_ms",
            f"event gap p50 (ms; paced {gap_ms:g})",
            "+",
            lambda t: _ms(percentile(t.gaps, 50)),
        ),
        ("gap_p99_ms", "event gap p99 (ms)", "+", lambda t: _ms(percentile(t.gaps, 99))),
        ("coalesced_pct", "coalesced events (%)", "+", lambda t: _pct(t.coalesced_share)),
        ("late_pct", f"late events (%; held > {gap_ms:g} ms)", "+", lambda t: _pct(t.late_share)),
    ]


def _show(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _compare(how: str, direct: float | None, proxy: float | None) -> str:
    if direct is None or proxy is None or not how:
        return ""
    if how == "x":
        return f"{proxy / direct:.2f}x" if direct else ""
    return f"{proxy - direct:+,.1f}"


@dataclass(frozen=True)
class LoadReport:
    proxy_url: str
    upstream_url: str
    plan: LoadPlan
    dialects: tuple[str, ...]
    direct: Tally
    proxy: Tally
    notes: list[str]
    strict: bool = False
    """Count warns as fails (``--strict``)."""

    def as_strict(self) -> LoadReport:
        return replace(self, strict=True)

    def figures(self) -> dict[str, float | None]:
        """Every figure of both sides: ``direct.rate``, ``proxy.ttfe_p99_ms``..."""
        return {
            f"{tally.name}.{key}": get(tally)
            for key, _, _, get in _rows(self.plan.gap * 1000)
            for tally in (self.direct, self.proxy)
        }

    @property
    def findings(self) -> list[Finding]:
        found = self._findings()
        if not self.strict:
            return found
        return [replace(f, verdict="fail") if f.verdict == "warn" else f for f in found]

    def rules(self, verdict: str | None = None) -> set[str]:
        return {f.rule for f in self.findings if verdict is None or f.verdict == verdict}

    @property
    def exit_code(self) -> int:
        return 1 if self.rules("fail") else 0

    def _findings(self) -> list[Finding]:
        out: list[Finding] = []

        def add(rule: str, message: str, evidence: str = "") -> None:
            out.append(Finding("load", rule, LOAD_RULES[rule][0], message, evidence))

        p, d, plan = self.proxy, self.direct, self.plan
        for kind in WRONG_KINDS:
            if p.wrong[kind]:
                evidence = "\n                   ".join(e for k, e in p.examples if k == kind)
                add(
                    f"stream-{kind}",
                    f"expected every stream intact, found {p.wrong[kind]} of {p.streams} "
                    f"streams through the proxy that {WRONG[kind]}",
                    evidence,
                )
        if p.error_count:
            share = p.error_count / p.streams
            message, count = p.errors.most_common(1)[0]
            found = (
                f"{p.error_count} of {p.streams} streams through the proxy failed "
                f"({share:.1%}; allowed: {plan.max_error_rate:.1%}); most often ({count}x): "
                f"{message}"
            )
            add("errors-over-threshold" if share > plan.max_error_rate else "errors", found)
        co_p, co_d, late_p, late_d = (
            p.coalesced_share,
            d.coalesced_share,
            p.late_share,
            d.late_share,
        )
        excess = max(
            (co_p - co_d) if co_p is not None and co_d is not None else 0.0,
            (late_p - late_d) if late_p is not None and late_d is not None else 0.0,
        )
        if excess > DISTORTION:
            assert co_p is not None and co_d is not None
            gap_ms = plan.gap * 1000
            message = (
                f"expected the upstream's {gap_ms:g} ms pauses between events, found "
                f"{co_p:.0%} of events coalesced with the one before (direct: {co_d:.0%})"
            )
            if late_p is not None and late_d is not None:
                message += f", {late_p:.0%} held past a pacing interval (direct: {late_d:.0%})"
            held = percentile(p.held_first, 50)
            span = (plan.events - 1) * plan.gap
            if held is not None and held > span / 2:
                message += (
                    f"; the first event reaches the client {held * 1000:.0f} ms after the "
                    f"upstream sent it (median), past half of the {span * 1000:.0f} ms the "
                    "whole stream takes: the proxy holds whole streams under this load (it buffers "
                    "them, or is too busy to pass them on)"
                )
            add("gaps-distorted", message)
        if d.wrong_count or d.error_count:
            add(
                "baseline-disturbed",
                f"expected a clean baseline, found {d.wrong_count} wrong and {d.error_count} "
                f"failed of {d.streams} streams straight to the upstream: this machine cannot "
                "carry the load; lower --load",
            )
        elif max(co_d or 0.0, late_d or 0.0) > DISTORTION:
            add(
                "baseline-disturbed",
                f"expected the upstream's pace straight from it, found {co_d or 0.0:.0%} of "
                f"events coalesced and {late_d or 0.0:.0%} late: this machine cannot carry "
                "the load; lower --load",
            )
        return out

    def verdict(self) -> str:
        fails, warns = self.rules("fail"), self.rules("warn")
        if fails:
            return f"FAIL ({', '.join(sorted(fails))})"
        if warns:
            return f"PASS with warnings ({', '.join(sorted(warns))})"
        return "PASS"

    def table(self) -> str:
        plan = self.plan
        lines = [
            f"Tapedeck load check of {self.proxy_url} (upstream {self.upstream_url})",
            f"{plan.concurrency} stream(s) in flight for {plan.duration:g}s each way "
            f"({', '.join(self.dialects)}); each stream {plan.events} events "
            f"{plan.gap * 1000:g} ms apart, its words derived from its nonce",
            "",
            f"  {'':<34}{'direct':>10}{'proxy':>10}  proxy vs direct",
        ]
        for _, label, how, get in _rows(plan.gap * 1000):
            direct, proxy = get(self.direct), get(self.proxy)
            lines.append(
                f"  {label:<34}{_show(direct):>10}{_show(proxy):>10}  "
                f"{_compare(how, direct, proxy)}".rstrip()
            )
        for verdict in VERDICTS:
            found = [f for f in self.findings if f.verdict == verdict]
            if found:
                lines += ["", f"{verdict.upper()} ({len(found)})"]
                lines += [f.describe(evidence=verdict != "info") for f in found]
        lines += ["", *(f"Note: {note}" for note in self.notes)] if self.notes else []
        lines += ["", f"Verdict: {self.verdict()}"]
        return "\n".join(lines)

    def junit(self) -> str:
        """JUnit XML: one testcase per kind of finding (``CASES``), every figure as a
        property, the table in the suite's system-out."""
        findings = self.findings
        cases = []
        for name, rules in CASES.items():
            mine = [f for f in findings if f.rule in rules]
            cases.append((name, [f for f in mine if f.verdict == "fail"], mine))
        suite = ET.Element(
            "testsuite",
            name="tapedeck-load",
            tests=str(len(cases)),
            failures=str(sum(bool(fails) for _, fails, _ in cases)),
            errors="0",
            skipped="0",
            time=f"{self.direct.seconds + self.proxy.seconds:.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        settings = {
            "proxy": self.proxy_url,
            "upstream": self.upstream_url,
            "concurrency": self.plan.concurrency,
            "duration": self.plan.duration,
        }
        for key, value in (settings | self.figures()).items():
            ET.SubElement(properties, "property", name=key, value=_property(value))
        for name, fails, mine in cases:
            case = ET.SubElement(suite, "testcase", classname="tapedeck.load", name=name)
            if fails:
                found = ", ".join(dict.fromkeys(f.rule for f in fails))
                failure = ET.SubElement(case, "failure", message=f"{len(fails)} fail: {found}")
                failure.set("type", fails[0].rule)
                failure.text = "\n".join(str(f) for f in fails)
            others = [str(f) for f in mine if f.verdict != "fail"]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(others)
        ET.SubElement(suite, "system-out").text = self.table()
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _property(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
