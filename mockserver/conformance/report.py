"""Findings of a conformance run and how they are shown: a readable table, JUnit XML for
CI, an exit code, and an assertion helper for pytest.

A finding has a stable rule id, a verdict, one sentence, and the evidence: the offending
event as the client got it, with the upstream's event beside it. Verdicts:

- ``fail``: a client following the protocol breaks or gets wrong data;
- ``warn``: the protocol's letter is broken, or something degrades, but the SDKs cope;
- ``info``: the proxy changed something it may change (the model name, the ids...).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field

from mockserver.conformance.scenarios import Scenario

VERDICTS = ("fail", "warn", "info")

RULES: dict[str, tuple[str, str]] = {
    "proxy-http-error": ("fail", "The proxy answers a valid stream request with 200."),
    "upstream-not-reached": (
        "fail",
        "The proxy asks its upstream: an answer the upstream "
        "never sent (a cache, a mock) cannot be compared.",
    ),
    "upstream-retried": ("info", "The proxy sent the request upstream more than once."),
    "upstream-not-streamed": (
        "warn",
        "The proxy asks its upstream for a stream when its "
        "client does; otherwise the client waits for the whole answer.",
    ),
    "upstream-translated": (
        "info",
        "The proxy speaks another protocol to its upstream (compared on meaning).",
    ),
    "upstream-request-changed": (
        "info",
        "The proxy changed the request body on its way "
        "upstream (fields added, removed or rewritten).",
    ),
    "content-type": ("warn", "A stream is served with its protocol's content type."),
    "stream-broken": ("fail", "The stream ends cleanly, not by a reset or a timeout."),
    "text-mismatch": ("fail", "Each choice's text is the upstream's, character for character."),
    "content-reordered": ("fail", "Text fragments arrive in the upstream's order."),
    "tool-call-mismatch": ("fail", "Each tool call keeps its name and its arguments (as JSON)."),
    "tool-call-id-rewritten": ("info", "Tool call ids are the upstream's."),
    "finish-reason-mismatch": ("fail", "Each choice's finish reason is the upstream's."),
    "usage-mismatch": ("fail", "Usage numbers are the upstream's (no recount, no loss)."),
    "usage-invented": (
        "warn",
        "Usage reaches the client only if the upstream sent it (a "
        "proxy's own count differs from the provider's bill).",
    ),
    "model-rewritten": ("info", "The model name is the upstream's."),
    "id-rewritten": ("info", "The response id is the upstream's."),
    "chunk-fields-changed": ("info", "Chunks carry the upstream's top-level fields."),
    "midstream-error-swallowed": (
        "fail",
        "An upstream mid-stream error reaches the client "
        "(an error event, or a broken connection), not a clean end.",
    ),
    "stream-buffered": (
        "fail",
        "Events reach the client as the upstream sends them: the "
        "first one before the upstream has finished.",
    ),
    "gaps-collapsed": (
        "warn",
        "The pauses between events survive (the arrival spread is at least half the upstream's).",
    ),
}
"""Differential rules: id -> (verdict, what is required)."""

PROTOCOL_VERDICTS: dict[str, str] = {
    # The OpenAI docs promise these, but no SDK depends on them: --strict makes them fail.
    "usage-null-missing": "warn",
    "chunk-identity-changed": "warn",
    "role-not-first": "warn",
}


@dataclass(frozen=True)
class Finding:
    scenario: str
    rule: str
    verdict: str
    message: str
    downstream: str = ""
    """The offending event as the client got it (``event 7 @0.153s: data: {...}``)."""
    upstream: str = ""
    """The upstream's event beside it, when there is one."""

    def __str__(self) -> str:
        return self.describe(evidence=True)

    def describe(self, evidence: bool) -> str:
        lines = [f"{self.verdict.upper()} {self.scenario} {self.rule}: {self.message}"]
        if not evidence:
            return lines[0]
        if self.downstream:
            lines.append(f"    proxy sent:    {self.downstream}")
        if self.upstream:
            lines.append(f"    upstream sent: {self.upstream}")
        return "\n".join(lines)


@dataclass
class Outcome:
    scenario: Scenario
    findings: list[Finding]
    seconds: float
    received: bytes = b""
    """The body the client got from the proxy, for a closer look."""

    @property
    def failed(self) -> bool:
        return any(f.verdict == "fail" for f in self.findings)


@dataclass
class Report:
    proxy: str
    upstream: str
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for outcome in self.outcomes for f in outcome.findings]

    def by_verdict(self, verdict: str) -> list[Finding]:
        return [f for f in self.findings if f.verdict == verdict]

    @property
    def fails(self) -> list[Finding]:
        return self.by_verdict("fail")

    def rules(self, verdict: str | None = None) -> set[str]:
        """The rule ids found (with that verdict, when given)."""
        return {f.rule for f in self.findings if verdict is None or f.verdict == verdict}

    def strict(self) -> Report:
        """The same report with every warn counted as a fail (the OpenAI spec's letter)."""
        outcomes = [
            Outcome(
                o.scenario,
                [
                    Finding(f.scenario, f.rule, "fail", f.message, f.downstream, f.upstream)
                    if f.verdict == "warn"
                    else f
                    for f in o.findings
                ],
                o.seconds,
                o.received,
            )
            for o in self.outcomes
        ]
        return Report(self.proxy, self.upstream, outcomes, list(self.notes))

    @property
    def exit_code(self) -> int:
        return 1 if self.fails else 0

    def table(self) -> str:
        """The report as text: one line per scenario, then every finding with evidence."""
        lines = [f"Tapedeck conformance of {self.proxy} (upstream {self.upstream})", ""]
        width = max([len(o.scenario.label) for o in self.outcomes] + [8])
        lines.append(f"  {'scenario':<{width}}  {'result':<6}  {'time':>6}  findings")
        for o in self.outcomes:
            counts = ", ".join(
                f"{sum(f.verdict == v for f in o.findings)} {v}"
                for v in VERDICTS
                if any(f.verdict == v for f in o.findings)
            )
            result = "FAIL" if o.failed else "ok"
            lines.append(
                f"  {o.scenario.label:<{width}}  {result:<6}  {o.seconds:>5.2f}s  {counts or '-'}"
            )
        for verdict in VERDICTS:
            found = self.by_verdict(verdict)
            if found:
                lines += ["", f"{verdict.upper()} ({len(found)})"]
                # An info is a fact, its message says it all: no evidence, no noise.
                lines += [f.describe(evidence=verdict != "info") for f in found]
        lines += ["", *(f"Note: {note}" for note in self.notes)] if self.notes else []
        failed = sum(o.failed for o in self.outcomes)
        lines += [
            "",
            f"{len(self.outcomes)} scenario(s): {len(self.outcomes) - failed} passed, "
            f"{failed} failed; {len(self.fails)} fail, {len(self.by_verdict('warn'))} warn, "
            f"{len(self.by_verdict('info'))} info finding(s)",
        ]
        return "\n".join(lines)

    def junit(self) -> str:
        """JUnit XML: one testcase per scenario, failing on its fail findings; warns and
        infos go to the testcase's system-out."""
        suite = ET.Element(
            "testsuite",
            name="tapedeck-conformance",
            tests=str(len(self.outcomes)),
            failures=str(sum(o.failed for o in self.outcomes)),
            errors="0",
            skipped="0",
            time=f"{sum(o.seconds for o in self.outcomes):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="proxy", value=self.proxy)
        ET.SubElement(properties, "property", name="upstream", value=self.upstream)
        for o in self.outcomes:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"tapedeck.conformance.{o.scenario.dialect}",
                name=o.scenario.name,
                time=f"{o.seconds:.3f}",
            )
            fails = [f for f in o.findings if f.verdict == "fail"]
            if fails:
                rules = ", ".join(dict.fromkeys(f.rule for f in fails))
                failure = ET.SubElement(case, "failure", message=f"{len(fails)} fail: {rules}")
                failure.set("type", fails[0].rule)
                failure.text = "\n".join(str(f) for f in fails)
            others = [str(f) for f in o.findings if f.verdict != "fail"]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(others)
        if self.notes:
            ET.SubElement(suite, "system-out").text = "\n".join(self.notes)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"

    def assert_conforms(self, *, allow: Collection[str] = (), strict: bool = False) -> None:
        """Raise AssertionError, with the table, when a finding fails (a warn too, with
        ``strict``), unless its rule is in ``allow`` (known, accepted deviations)."""
        report = self.strict() if strict else self
        unexpected = [f for f in report.fails if f.rule not in allow]
        if unexpected:
            rules = ", ".join(sorted({f.rule for f in unexpected}))
            raise AssertionError(f"the proxy breaks {rules}\n\n{report.table()}")
