"""Fault specs: what they say, what is refused and how, and which request gets which fault
(the header, the queue of ``tapedeck.fault``, the standing ones of ``--fault`` and the
marker). The bytes on the wire are test_faults_wire.py's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings

from mockserver.errors import TapedeckError
from mockserver.faults import Faults, FaultSpecError, parse
from mockserver.server_thread import BackgroundServer
from pytest_plugin.handle import Tapedeck
from pytest_plugin.strategies import faults
from tests import rawhttp, upstream
from tests.test_recorder import chat_case, record_with, stream_events
from tests.upstream import Upstream, running

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_a_bare_kind_takes_its_defaults() -> None:
    spec = parse("reset")
    assert (spec.kind, dict(spec.params), spec.times, spec.rate, spec.seed) == (
        "reset", {"after": 0}, None, 1.0, 0,
    )  # fmt: skip


def test_keys_are_read_with_their_types() -> None:
    spec = parse(" status:code=429, retry_after=1.5,times=2 ")
    assert spec.params == {"code": 429, "retry_after": 1.5} and spec.times == 2
    assert str(spec) == "status:code=429, retry_after=1.5,times=2"
    assert parse("error:after=2,type=overloaded_error,message=busy now").params == {
        "after": 2, "type": "overloaded_error", "message": "busy now",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("explode", "unknown fault kind 'explode'"),
        ("reset:aftr=3", "unknown key 'aftr' for fault 'reset'"),
        ("reset:after", "'after' in 'reset:after' is not key=value"),
        ("reset:after=x", "after='x' is not an integer"),
        ("stall:seconds=601", "seconds=601 is out of range [0, 600]"),
        ("status:code=200", "code=200 is out of range [400, 599]"),
        ("drip:rate=2", "rate=2 is out of range [0, 1]"),
        ("drip:times=0", "times=0 is out of range"),
        ("reset:after=1,after=2", "key 'after' given twice"),
    ],
)
def test_a_bad_spec_says_what_is_wrong_and_lists_the_vocabulary(spec: str, named: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse(spec)
    message = str(caught.value)
    assert named in message
    if "twice" not in named:
        assert "status(code, retry_after)" in message and "times, rate, seed" in message
    assert isinstance(caught.value, TapedeckError) and isinstance(caught.value, ValueError)


def test_times_counts_the_requests_a_header_spec_was_applied_to() -> None:
    plan = Faults()
    asked = parse("status:code=429,times=2")
    chosen = [plan.choose(parse("status:code=429,times=2")) for _ in range(4)]
    assert [c is not None for c in chosen] == [True, True, False, False]
    assert plan.choose(parse("status:code=500,times=2")) is not None  # another spec: its count
    assert asked.times == 2


def test_rate_is_reproducible_with_a_seed() -> None:
    def draws(seed: int) -> list[bool]:
        plan = Faults(standing=(parse(f"reset:rate=0.5,seed={seed}"),))
        return [plan.choose(None) is not None for _ in range(64)]

    first = draws(7)
    assert first == draws(7) and 16 < sum(first) < 48  # about half, the same half each run
    assert first != draws(8)


def test_queued_faults_apply_to_the_next_requests_then_standing_ones() -> None:
    plan = Faults(standing=(parse("drip:gap=0.1"),))
    plan.queue(parse("reset"))
    plan.queue(parse("truncate:times=2"))
    kinds = [getattr(plan.choose(None), "kind", None) for _ in range(5)]
    assert kinds == ["reset", "truncate", "truncate", "drip", "drip"]
    assert getattr(plan.choose(parse("corrupt")), "kind", None) == "corrupt"  # the header first


@settings(max_examples=60, deadline=None)
@given(faults("anthropic"))
def test_the_strategy_draws_specs_that_parse(spec: str) -> None:
    assert parse(spec).kind == spec.partition(":")[0]


def _post(url: str, fault: str | None = None) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if fault:
        headers["x-tapedeck-fault"] = fault
    body = json.dumps({**CHAT, "stream": True}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.tapedeck(synthesize=True, faults=["status:code=503,times=1"])
def test_the_marker_faults_stand_for_the_test(tapedeck: Tapedeck) -> None:
    assert _post(tapedeck.url)[0] == 503
    status, body = _post(tapedeck.url)
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    assert [r.fault for r in tapedeck.requests] == ["status:code=503,times=1", ""]


@pytest.mark.tapedeck(synthesize=True)
def test_the_handle_queues_a_fault_for_the_next_request(tapedeck: Tapedeck) -> None:
    tapedeck.fault("truncate:after=1")
    status, cut = _post(tapedeck.url)
    assert status == 200 and cut.count(b"data: ") == 1 and b"[DONE]" not in cut
    assert _post(tapedeck.url)[1].endswith(b"data: [DONE]\n\n")
    assert [r.fault for r in tapedeck.requests] == ["truncate:after=1", ""]
    with pytest.raises(FaultSpecError):
        tapedeck.fault("truncate:before=1")


@pytest.mark.tapedeck(synthesize=True)
def test_the_header_is_not_part_of_the_logged_request(tapedeck: Tapedeck) -> None:
    _post(tapedeck.url, "drip:gap=0")
    (logged,) = tapedeck.requests
    assert logged.fault == "drip:gap=0"
    assert all(name.lower() != "x-tapedeck-fault" for name, _ in logged.headers)


def test_a_bad_marker_spec_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.tapedeck(faults=["reset:aftr=1"])
            def test_x(tapedeck):
                pass
            """
        )
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*marker faults: unknown key 'aftr' for fault 'reset'*"])


def test_serve_refuses_a_bad_fault_before_starting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--fault", "stall:seconds=9999"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "seconds=9999 is out of range [0, 600]" in done.stderr


def test_the_header_is_never_forwarded_nor_saved_when_recording(tmp_path: Path) -> None:
    case = chat_case()
    provider = Upstream({case.upstream_path: upstream.Script(stream_events(case))})
    target = tmp_path / "recorded.yaml"
    with running(provider), BackgroundServer() as server:
        recorder = record_with(server, "all", target, provider.url)
        headers = {**case.auth, "x-tapedeck-fault": "truncate:after=1"}
        answer = rawhttp.request(server.url, case.path, case.body, headers=headers)
        assert answer.status == 200
        assert recorder.failures == []
    assert all("x-tapedeck-fault" not in {k.lower() for k in sent} for sent in provider.requests)
    assert "x-tapedeck-fault" not in target.read_text().lower()
