"""The real LiteLLM proxy, with Tapedeck as its upstream, through the conformance catalogue.

The proxy starts once, in one test (15-25 s on 2 cores: reference/sdk-behaviour.md §4),
offline: local cost map and data files, a master key, no database. What it does to
the streams is asserted exactly as observed with the installed version (``litellm[proxy]``
1.108.7 here: the newest whose proxy extra the package index resolves); each expectation
says how it compares with wire-formats.md §11, which was written against 1.63.11.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mockserver.cli import main
from mockserver.conformance import run_conformance
from mockserver.conformance.load import LoadPlan, run_load
from mockserver.conformance.report import Report
from tests.proxies import free_port


def missing_proxy_extra() -> list[str]:
    """What of ``litellm[proxy]`` is not installed: the ``litellm-proxy`` extra brings it,
    and the ``dev`` install leaves it out (~350 MB for this one module)."""
    try:
        requires = importlib.metadata.requires("litellm") or []
    except importlib.metadata.PackageNotFoundError:
        return ["litellm"]
    missing = []
    for requirement in map(Requirement, requires):
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):
            continue  # litellm's own requirements, installed with it
        if not marker.evaluate({"extra": "proxy"}):
            continue  # another extra
        try:
            importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    return missing


if missing := missing_proxy_extra():
    pytest.skip(
        f"the LiteLLM proxy is not installed (missing: {', '.join(missing)}): "
        "pip install -e '.[dev,litellm-proxy]' to run this test",
        allow_module_level=True,
    )

MASTER_KEY = "sk-tapedeck-conformance"
MODEL = "tapedeck-model"
VERSION = importlib.metadata.version("litellm")
OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "NO_DOCS": "True",
}
CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: upstream-key
general_settings:
  master_key: {key}
"""


class LiteLLMProxy:
    def __init__(self, folder: Path) -> None:
        self.port, self.upstream = free_port(), free_port()
        config = folder / "config.yaml"
        config.write_text(CONFIG.format(model=MODEL, upstream=self.upstream, key=MASTER_KEY))
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | OFFLINE
        command = [str(Path(sys.executable).parent / "litellm"), "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready = threading.Event()
        self.log: list[str] = []
        # Drain its output (a full pipe would stall it) and learn when uvicorn listens.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if "Uvicorn running on" in line:
                self.ready.set()
        self.ready.set()  # it exited: the fixture reports the log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.reader.join(timeout=30)  # it reads to the end of the output, then stops
        assert self.process.stdout is not None
        self.process.stdout.close()


def scenarios(report: Report, rule: str) -> set[str]:
    return {f.scenario for f in report.findings if f.rule == rule}


USAGE_SCENARIOS = {"text-usage", "tools-parallel", "n2", "slow", "unicode-split"}


def test_the_litellm_proxy_through_the_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One test, not one per finding: under pytest-xdist each worker would start its own
    # proxy (25 s and ~320 MB each) for the tests it happens to get.
    proxy = LiteLLMProxy(tmp_path)
    try:
        started = proxy.ready.wait(timeout=180)
        if not started or proxy.process.poll() is not None:
            pytest.fail("the LiteLLM proxy did not start:\n" + "".join(proxy.log[-40:]))
        chat = run_conformance(proxy.url, proxy.upstream, model=MODEL, api_key=MASTER_KEY)
        openai_chat_findings(chat)
        translated = run_conformance(
            proxy.url,
            proxy.upstream,
            model=MODEL,
            api_key=MASTER_KEY,
            dialects=["anthropic", "openai_responses"],
        )
        translations(translated)
        command_line(proxy, capsys)
        under_faults(proxy)
        under_load(proxy)
    finally:
        proxy.stop()


def openai_chat_findings(report: Report) -> None:
    context = f"LiteLLM {VERSION}\n{report.table()}"
    # Exactly two fails. wire-formats §11, BerriAI/litellm#8450 and #28735, still there:
    # every scenario asking for include_usage gets its usage on a chunk whose choices is
    # [{"index":0,"delta":{}}] instead of [].
    assert report.rules("fail") == {"usage-on-choices-chunk", "finish-reason-missing"}, context
    assert scenarios(report, "usage-on-choices-chunk") == USAGE_SCENARIOS, context
    (finding,) = [f for f in report.fails if f.scenario == "text-usage"]
    assert '"choices": [{"index": 0, "delta": {}}], "usage": {' in finding.downstream
    assert '"choices": [], "usage": {' in finding.upstream
    # Not in §11 (1.63.11 lost choice 1's role): with n = 2, choice 1 never gets its
    # finish chunk; its text still arrives whole (no text-mismatch).
    (finding,) = [f for f in report.findings if f.rule == "finish-reason-missing"]
    assert finding.scenario == "n2" and "for choice 1" in finding.message, context
    # Everything else comes through: text, fragmented tool arguments, usage numbers, a
    # ~1,200-event stream, characters split across writes, pacing (no buffering), and
    # the mid-stream error (sent on as an {"error": ...} chunk, without [DONE]).
    # §11 / #9657: no "usage": null on the other chunks (a warn: no SDK reads it).
    assert report.rules("warn") == {"usage-null-missing"}, context
    assert scenarios(report, "usage-null-missing") == USAGE_SCENARIOS
    # The client's model alias comes back (the upstream said gpt-4o-mini), and LiteLLM
    # asks its upstream for include_usage even when the client did not (then strips it).
    # §11's echo of stream_options on every chunk is gone: no chunk-fields-changed.
    assert report.rules("info") == {"model-rewritten", "upstream-request-changed"}, context
    assert scenarios(report, "upstream-request-changed") == {"text", "long", "midstream-error"}
    changed = [f.message for f in report.findings if f.rule == "upstream-request-changed"]
    assert all('stream_options: absent -> {"include_usage": true}' in m for m in changed)


def translations(report: Report) -> None:
    # A client speaking Anthropic Messages (/v1/messages) to a model routed to OpenAI:
    # LiteLLM calls the upstream's Responses API and translates back. Text, tool calls,
    # finish reasons, usage, pacing and the mid-stream error (an event: error after the
    # text so far) all survive; so does the Responses API passed straight through.
    context = f"LiteLLM {VERSION}\n{report.table()}"
    assert report.rules("fail") == set() and report.rules("warn") == set(), context
    anthropic = {f"anthropic/{s}" for s in ("text", "tools-parallel", "long", "slow")}
    assert anthropic <= scenarios(report, "upstream-translated"), context
    translated = [f.message for f in report.findings if f.rule == "upstream-translated"]
    assert all("in openai_responses" in message for message in translated)
    # Ids are LiteLLM's own (msg_<uuid>, and long encoded resp_ ids); the Responses
    # deltas gain a model field; the Anthropic side says the alias, not gpt-4o-mini.
    expected = {"upstream-translated", "id-rewritten", "model-rewritten", "chunk-fields-changed"}
    assert report.rules("info") == expected, context


def command_line(proxy: LiteLLMProxy, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = ["check", "--proxy", proxy.url, "--upstream-port", str(proxy.upstream)]
    code = main([*args, "--model", MODEL, "--api-key", MASTER_KEY, "--scenario", "text-usage"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL text-usage usage-on-choices-chunk" in out
    # A wrong key: without a database LiteLLM cannot look virtual keys up, and says so
    # with a 400 (not a 401): a fail with its message, and a note naming the way out.
    code = main([*args, "--model", MODEL, "--api-key", "sk-wrong", "--scenario", "text"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.out + captured.err
    assert "FAIL text proxy-http-error: expected 200, found 400 (the upstream was never " in (
        captured.out
    )
    assert "No connected db" in captured.out and "accepts --api-key" in captured.out


def under_faults(proxy: LiteLLMProxy) -> None:
    # The upstream breaks its stream (~8 s with a 3 s --timeout). LiteLLM passes a reset
    # and a mid-stream error on as an {"error": ...} chunk (no [DONE]), and retries a 429
    # after the retry-after asked (1 s) before streaming the answer. Two fails: a stream
    # the upstream ended early (a clean end, no finish, no [DONE]) comes out with a
    # finish_reason "stop" and [DONE] invented, so the client takes the cut text for the
    # whole answer; and a stalled upstream keeps the client waiting (LiteLLM's own
    # timeout is 600 s by default).
    names = ["fault-reset", "fault-truncate", "fault-error", "fault-429", "fault-stall"]
    report = run_conformance(
        proxy.url, proxy.upstream, model=MODEL, api_key=MASTER_KEY, scenarios=names, timeout=3
    )
    context = f"LiteLLM {VERSION}\n{report.table()}"
    assert report.rules("fail") == {"end-invented", "stall-hung"}, context
    assert scenarios(report, "end-invented") == {"fault-truncate"}, context
    (invented,) = [f for f in report.fails if f.rule == "end-invented"]
    assert "[DONE]" in invented.message and "finish reason 'stop'" in invented.message
    assert scenarios(report, "stall-hung") == {"fault-stall"}, context
    # Whether the text already sent before the reset reaches the client is a race inside
    # LiteLLM (it drops what it had not flushed when the upstream connection dies): seen
    # both ways on this machine, so a lost text may be reported, and nothing else.
    assert report.rules("warn") <= {"text-lost"}, context
    assert scenarios(report, "text-lost") <= {"fault-reset"}, context
    seen = {f.scenario: f.message for f in report.findings if f.rule == "fault-passed"}
    assert seen["fault-reset"].startswith("an error event after 4 events"), context
    assert seen["fault-error"].startswith("an error event after 4 events"), context
    assert seen["fault-429"].startswith("retried upstream 1."), context


def under_load(proxy: LiteLLMProxy) -> None:
    # Eight streams in flight for 3 s each way (~8 s): every stream through LiteLLM comes
    # back with its own words, in order, whole, and none fails. Its figures (throughput,
    # added time to first event, events held) depend on the machine: shown, not asserted.
    plan = LoadPlan(8, 3.0)
    report = run_load(proxy.url, proxy.upstream, plan, model=MODEL, api_key=MASTER_KEY)
    context = f"LiteLLM {VERSION}\n{report.table()}"
    assert report.rules("fail") == set(), context
    assert report.proxy.wrong_count == report.proxy.error_count == 0, context
    assert report.proxy.finished >= plan.concurrency and not report.notes, context
