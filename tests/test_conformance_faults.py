"""``tapedeck check --faults``: the upstream resets, truncates, fails mid-stream, answers
429 and stalls, and small local proxies (tests/proxies.py) are judged on what their client
gets: a faithful one passes every fault scenario; each defective one is caught by the rule
its defect breaks, with the evidence."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mockserver.cli import main
from mockserver.conformance import run_conformance
from mockserver.conformance.fault_scenarios import FAULT_RULES, fault_catalogue, plan
from mockserver.conformance.report import Report
from mockserver.faults import parse
from tests.proxies import ToyProxy, free_port

FAULTS = [s.name for s in fault_catalogue("openai_chat", 1.0)]
TIMEOUT = 2.0
"""The client's --timeout: the stall outlasts it, the proxies' read timeout does not."""


def check(name: str, scenarios: list[str] = FAULTS) -> Report:
    port = free_port()
    with ToyProxy(port, name, read_timeout=0.5) as proxy:
        return run_conformance(proxy.url, port, scenarios=scenarios, timeout=TIMEOUT)


def found(report: Report, rule: str) -> set[str]:
    return {f.scenario for f in report.findings if f.rule == rule}


def passed(report: Report, scenario: str) -> str:
    (finding,) = [f for f in report.findings if f.scenario == scenario and f.rule == "fault-passed"]
    return finding.message


def test_the_catalogue_specs_parse_and_the_stall_outlasts_the_timeout() -> None:
    scenarios = fault_catalogue("openai_chat", 7.0)
    assert FAULTS == ["fault-reset", "fault-truncate", "fault-error", "fault-429", "fault-stall"]
    stall = parse(scenarios[-1].fault or "")
    assert stall.kind == "stall" and stall.float("seconds") > 7.0
    assert {r[0] for r in FAULT_RULES.values()} == {"fail", "warn", "info"}


def test_fault_scenarios_run_only_when_asked_or_named() -> None:
    regular = [s.name for s in plan(["openai_chat"], None, False, 5.0)]
    assert not any(name.startswith("fault-") for name in regular)
    every = [s.name for s in plan(["openai_chat"], None, True, 5.0)]
    assert every == regular + FAULTS
    assert [s.name for s in plan(["openai_chat"], ["text", "fault-429"], False, 5.0)] == [
        "text",
        "fault-429",
    ]
    with pytest.raises(ValueError, match=r"unknown scenario\(s\) \['fault-nope'\].*fault-stall"):
        plan(["openai_chat"], ["fault-nope"], False, 5.0)


def test_a_faithful_proxy_passes_every_fault_on() -> None:
    report = check("faithful")
    assert report.rules("fail") == set() and report.rules("warn") == set(), report.table()
    assert found(report, "fault-passed") == set(FAULTS), report.table()
    assert passed(report, "fault-reset").startswith("a broken stream after 3 events")
    assert passed(report, "fault-truncate") == "a clean end after 3 events, no end marker"
    assert passed(report, "fault-error").startswith("an error event after 4 events")
    assert passed(report, "fault-429").startswith("HTTP 429 passed on (retry-after: 1)")
    assert passed(report, "fault-stall").startswith("a broken stream after 3 events")
    stall = next(o for o in report.outcomes if o.scenario.name == "fault-stall")
    assert stall.seconds < TIMEOUT  # the proxy's own read timeout ended it


def test_a_proxy_inventing_the_end_of_a_broken_stream_is_caught() -> None:
    report = check("invent-done", ["fault-reset", "fault-truncate", "fault-stall"])
    assert found(report, "end-invented") == {"fault-reset", "fault-truncate", "fault-stall"}
    finding = next(f for f in report.fails if f.scenario == "fault-reset")
    assert "found the end of stream marker ([DONE] or its kind), finish reason 'stop'" in (
        finding.message
    )
    assert "after 3 events" in finding.message and "data: [DONE]" in finding.downstream
    assert report.exit_code == 1


def test_a_proxy_swallowing_a_429_is_caught() -> None:
    report = check("swallow-429", ["fault-429"])
    assert report.rules("fail") == {"error-swallowed"}, report.table()
    (finding,) = report.fails
    assert "found HTTP 200 though the upstream only ever answered 429" in finding.message


def test_a_proxy_retrying_a_429_at_once_is_caught() -> None:
    report = check("retry-now", ["fault-429"])
    assert report.rules("fail") == {"retry-after-ignored"}, report.table()
    (finding,) = report.fails
    assert finding.message.startswith("expected the retry 1s or more after the 429, found 0.0")


def test_a_proxy_keeping_its_client_waiting_on_a_stall_is_caught() -> None:
    report = check("hang-on-stall", ["fault-stall", "fault-reset"])
    assert found(report, "stall-hung") == {"fault-stall"}, report.table()
    # The same defect hides a reset: the client waits out its own timeout.
    assert report.rules("fail") == {"stall-hung", "failure-hidden"}
    assert found(report, "failure-hidden") == {"fault-reset"}
    assert passed(report, "fault-reset").startswith("the client timed out after 3 events")


def test_a_proxy_hiding_a_midstream_error_is_caught() -> None:
    report = check("swallow-error", ["fault-error"])
    assert found(report, "end-invented") == {"fault-error"}, report.table()


def test_the_command_line_runs_the_fault_scenarios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, junit = free_port(), tmp_path / "faults.xml"
    with ToyProxy(port, "invent-done", read_timeout=0.5) as proxy:
        args = ["check", "--proxy", proxy.url, "--upstream-port", str(port), "--faults"]
        code = main([*args, "--timeout", str(TIMEOUT), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL fault-truncate end-invented: expected the stream" in out
    assert "  text  " in out  # the regular catalogue ran too
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["fault-truncate"].find("failure") is not None
    assert cases["fault-429"].find("failure") is None
