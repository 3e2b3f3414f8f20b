"""``tapedeck check`` against small proxies written here: a faithful one passes, each broken
one is caught by the rule for its defect and by nothing else; a proxy that is down,
refuses the key or answers errors gets a clear message, never a traceback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mockserver.cli import main
from mockserver.conformance import run_conformance
from mockserver.conformance.client import endpoint
from mockserver.conformance.report import PROTOCOL_VERDICTS, RULES, VERDICTS
from mockserver.conformance.scenarios import CATALOGUES, NONCE, catalogue
from tests.proxies import ToyProxy, free_port

FINDING = re.compile(r"^(FAIL|WARN|INFO) (\S+) (\S+): ", re.MULTILINE)
ALL = [s.name for s in CATALOGUES["openai_chat"]]


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, set[tuple[str, str]]]:
    """Run ``tapedeck check``: exit code, output, and the (verdict, rule) pairs found."""
    code = main(["check", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err, {(v.lower(), rule) for v, _, rule in FINDING.findall(out)}


@pytest.fixture
def port() -> int:
    return free_port()


def test_a_faithful_proxy_passes_every_scenario(
    capsys: pytest.CaptureFixture[str], port: int, tmp_path: Path
) -> None:
    junit = tmp_path / "conformance.xml"
    with ToyProxy(port) as proxy:
        code, out, found = check(
            capsys, "--proxy", proxy.url, "--upstream-port", str(port), "--junit", str(junit)
        )
    assert (code, found) == (0, set()), out
    assert f"{len(ALL)} scenario(s): {len(ALL)} passed, 0 failed" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.iter("testcase")] == ALL


DEFECTS = {
    # defect: (exit code, the (verdict, rule) pairs it must cause, and only those)
    "drop-usage": (1, {("fail", "usage-chunk-missing")}),
    "usage-choices": (1, {("fail", "usage-on-choices-chunk")}),
    "strip-done": (1, {("fail", "done-missing")}),
    "buffer": (1, {("fail", "stream-buffered")}),
    "drop-usage-null": (0, {("warn", "usage-null-missing")}),
    "corrupt-args": (1, {("fail", "tool-call-mismatch")}),
    "reorder": (1, {("fail", "content-reordered")}),
    "recount-usage": (1, {("fail", "usage-mismatch")}),
    "swallow-error": (1, {("fail", "midstream-error-swallowed")}),
    "rewrite-model": (0, {("info", "model-rewritten")}),
    "decode-per-chunk": (1, {("fail", "text-mismatch")}),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_is_caught_by_its_rule_alone(
    capsys: pytest.CaptureFixture[str], port: int, defect: str
) -> None:
    with ToyProxy(port, defect) as proxy:
        code, out, found = check(capsys, "--proxy", proxy.url, "--upstream-port", str(port))
    assert (code, found) == DEFECTS[defect], out
    # Evidence for fails and warns: the proxy's event, the upstream's beside it.
    assert ("    proxy sent:    event " in out) is (code == 1 or "WARN" in out)


def test_strict_counts_warnings_as_failures(capsys: pytest.CaptureFixture[str], port: int) -> None:
    with ToyProxy(port, "drop-usage-null") as proxy:
        args = ["--proxy", proxy.url, "--upstream-port", str(port), "--scenario", "text-usage"]
        code, out, found = check(capsys, *args, "--strict")
    assert (code, found) == (1, {("fail", "usage-null-missing")}), out


def test_check_runs_as_a_command(port: int, tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    with ToyProxy(port, "usage-choices") as proxy:
        args = ["--proxy", proxy.url, "--upstream-port", str(port), "--junit", str(junit)]
        done = subprocess.run(
            [sys.executable, "-m", "mockserver", "check", *args, "--scenario", "text-usage"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL text-usage usage-on-choices-chunk" in done.stdout
    (case,) = ET.parse(junit).getroot().iter("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "usage-on-choices-chunk"
    assert '"choices": [{"index": 0, "delta": {}}]' in (failure.text or "")


def test_a_proxy_that_is_down_gets_a_clear_message(
    capsys: pytest.CaptureFixture[str], port: int
) -> None:
    down = free_port()
    code, out, _ = check(
        capsys, "--proxy", f"http://127.0.0.1:{down}", "--upstream-port", str(port)
    )
    assert code == 2
    assert f"tapedeck: cannot connect to the proxy at http://127.0.0.1:{down}/v1/chat/" in out
    assert "Is it running" in out


def test_a_proxy_refusing_the_key_gets_a_clear_message(
    capsys: pytest.CaptureFixture[str], port: int
) -> None:
    with ToyProxy(port, status=401) as proxy:
        code, out, _ = check(capsys, "--proxy", proxy.url, "--upstream-port", str(port))
    assert code == 2
    assert "refused the request with HTTP 401" in out and "--api-key" in out


def test_a_proxy_answering_errors_fails_and_says_the_upstream_was_never_reached(
    capsys: pytest.CaptureFixture[str], port: int
) -> None:
    with ToyProxy(port, status=500) as proxy:
        code, out, found = check(capsys, "--proxy", proxy.url, "--upstream-port", str(port))
    assert (code, found) == (1, {("fail", "proxy-http-error")})
    assert "expected 200, found 500 (the upstream was never asked)" in out
    assert f"Note: The proxy never reached the upstream at http://127.0.0.1:{port}" in out


def test_a_taken_upstream_port_gets_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        code, out, _ = check(capsys, "--proxy", "http://127.0.0.1:9", "--upstream-port", busy)
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{busy} for the upstream" in out


def test_unknown_scenarios_are_named(capsys: pytest.CaptureFixture[str], port: int) -> None:
    code, out, _ = check(
        capsys, "--proxy", "http://127.0.0.1:9", "--upstream-port", str(port), "--scenario", "x"
    )
    assert code == 2 and "unknown scenario(s) ['x'] for openai_chat; known: text, " in out


def test_run_conformance_and_assert_conforms_for_pytest(port: int) -> None:
    with ToyProxy(port, "drop-usage") as proxy:
        report = run_conformance(proxy.url, port, scenarios=["text", "text-usage"])
    assert report.rules("fail") == {"usage-chunk-missing"}
    with pytest.raises(AssertionError, match="the proxy breaks usage-chunk-missing"):
        report.assert_conforms()
    report.assert_conforms(allow={"usage-chunk-missing"})
    assert report.exit_code == 1 and len(report.outcomes) == 2


def test_rules_have_verdicts_and_descriptions() -> None:
    for rule, (verdict, description) in RULES.items():
        assert verdict in VERDICTS and description.endswith("."), rule
        assert rule == rule.lower() and " " not in rule, rule
    assert set(PROTOCOL_VERDICTS.values()) <= set(VERDICTS)


def test_scenarios_carry_a_nonce_the_upstream_finds_in_any_body() -> None:
    first, second = catalogue("openai_chat"), catalogue("openai_chat")
    assert [s.nonce for s in first] != [s.nonce for s in second]
    for scenario in first:
        content = scenario.body("m")["messages"][0]["content"]
        found = NONCE.search(content)
        assert found is not None and found.groups() == (scenario.name, scenario.nonce)
    assert endpoint("http://proxy:4000/", "openai_chat") == "http://proxy:4000/v1/chat/completions"
    assert (
        endpoint("http://proxy:4000/v1", "openai_chat") == "http://proxy:4000/v1/chat/completions"
    )
