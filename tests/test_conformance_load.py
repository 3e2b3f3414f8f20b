"""``tapedeck check --load`` against small proxies written here: a faithful one passes; one
that buffers is reported with the pauses it removes; one that mixes up concurrent streams
is caught every time under a load that guarantees overlap (and passes alone, which is why
the single-stream check cannot see it); a slow one's added time to first event is
measured; errors beyond the threshold fail. The known truth is the stream's own words,
derived from its nonce, and the pace the upstream kept."""

from __future__ import annotations

import asyncio
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from aiohttp import web

from mockserver.cli import main
from mockserver.conformance.client import Downstream
from mockserver.conformance.load import LoadPlan, run_load
from mockserver.conformance.load_report import LOAD_RULES
from mockserver.conformance.report import VERDICTS
from mockserver.conformance.tally import judge, load_scenario, text_for
from mockserver.dialects import dialect
from mockserver.framing import sse
from mockserver.model import Request, Script
from tests.proxies import ToyProxy, free_port

GAP = 0.02
EVENTS = 20
SPAN = (EVENTS - 1) * GAP
"""How long the upstream takes to send one stream (the defaults of --gap and events)."""
DURATION = "1"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def load(capsys: pytest.CaptureFixture[str], proxy: str, port: int, *args: str) -> tuple[int, str]:
    """``check --load``: exit code and the table (the progress lines checked on the way)."""
    code, out, err = check(
        capsys, "--proxy", proxy, "--upstream-port", str(port), "--duration", DURATION, *args
    )
    assert "direct   1s: " in err and "proxy   1s: " in err, err  # a line a second
    assert "\ndirect: " in "\n" + err and "\nproxy: " in err, err  # and one per side
    return code, out


@pytest.fixture
def port() -> int:
    return free_port()


class MixingProxy(ToyProxy):
    """Forwards faithfully while it has one request in flight. With two or more, it writes
    every event to the response of the request that arrived last: the shared "current
    response" of a proxy that keeps per-request state in one place."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.in_flight: list[web.StreamResponse] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"content-type": "application/json"}
        async with self.session.post(
            self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            out = web.StreamResponse(status=answer.status)
            out.content_type = answer.content_type
            await out.prepare(request)
            self.in_flight.append(out)
            try:
                decoder = sse.Decoder()
                async for piece in answer.content.iter_any():
                    for event in decoder.feed(piece):
                        await self.in_flight[-1].write(event.raw)
            finally:
                self.in_flight.remove(out)
            await out.write_eof()
            return out


class SlowStartProxy(ToyProxy):
    """Faithful, but takes ``DELAY`` before it forwards a request (an auth lookup...)."""

    DELAY = 0.05

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.DELAY)
        return await super().handle(request)


class FlakyProxy(ToyProxy):
    """Faithful on odd requests; answers 503 to even ones."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.count = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.count += 1
        if self.count % 2 == 0:
            await request.read()
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        return await super().handle(request)


def test_a_faithful_proxy_passes(
    capsys: pytest.CaptureFixture[str], port: int, tmp_path: Path
) -> None:
    junit = tmp_path / "load.xml"
    with ToyProxy(port) as proxy:
        code, out = load(capsys, proxy.url, port, "--load", "4", "--junit", str(junit))
    assert code == 0, out
    assert "Verdict: PASS\n" in out + "\n" and "WARN" not in out and "FAIL" not in out, out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    cases = [case.get("name") for case in suite.iter("testcase")]
    assert cases == ["streams-intact", "errors", "event-pacing", "baseline"]
    figures = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert figures["concurrency"] == "4" and figures["proxy.wrong"] == "0"
    # Four workers, each stream about SPAN long, for a second: at least a stream each.
    assert int(figures["direct.streams"] or 0) >= 4 and int(figures["proxy.streams"] or 0) >= 4


def test_a_proxy_mixing_up_concurrent_streams_is_caught(
    capsys: pytest.CaptureFixture[str], port: int, tmp_path: Path
) -> None:
    junit = tmp_path / "load.xml"
    with MixingProxy(port) as proxy:
        # Four workers start at once and each stream lasts SPAN: they overlap for sure.
        code, out = load(capsys, proxy.url, port, "--load", "4", "--junit", str(junit))
    assert code == 1, out
    assert "FAIL load stream-mixed: expected every stream intact, found " in out
    assert "word(s) of other streams" in out  # the evidence: whose words it got
    assert "Verdict: FAIL (" in out and "stream-mixed" in out.rsplit("Verdict:", 1)[1]
    (case,) = [c for c in ET.parse(junit).iter("testcase") if c.get("name") == "streams-intact"]
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "stream-mixed"


def test_the_mixing_proxy_passes_one_stream_at_a_time(port: int) -> None:
    # What the single-stream check sees of it: nothing wrong.
    with MixingProxy(port) as proxy:
        report = run_load(proxy.url, port, LoadPlan(1, 1.0), progress=lambda _: None)
    assert report.exit_code == 0 and report.proxy.wrong_count == 0, report.table()
    assert report.proxy.finished >= 2  # each stream takes about SPAN


def test_a_buffering_proxy_is_reported_with_the_pauses_it_removes(
    capsys: pytest.CaptureFixture[str], port: int
) -> None:
    with ToyProxy(port, "buffer") as proxy:
        code, out = load(capsys, proxy.url, port, "--load", "4", "--strict")
    assert code == 1, out  # a warn; --strict makes it count
    assert "FAIL load gaps-distorted: expected the upstream's 20 ms pauses" in out
    assert "the proxy holds whole streams under this load" in out
    assert "Verdict: FAIL (gaps-distorted)" in out


def test_what_buffering_does_to_the_figures(port: int) -> None:
    with ToyProxy(port, "buffer") as proxy:
        report = run_load(proxy.url, port, LoadPlan(4, 1.0), progress=lambda _: None)
    figures = report.figures()
    # Known truth: the proxy cannot send the first event before the upstream's last one,
    # which leaves SPAN after the first; straight from the upstream, the first comes at once.
    assert (figures["proxy.ttfe_p50_ms"] or 0) >= SPAN * 1000
    assert (figures["direct.ttfe_p50_ms"] or 0) < SPAN * 1000 / 2
    # All events of a stream arrive in one go: every pause but none is gone.
    assert (figures["proxy.coalesced_pct"] or 0) > 90
    assert (figures["direct.coalesced_pct"] or 0) < 10
    assert report.rules() == {"gaps-distorted"} and report.exit_code == 0, report.table()


def test_the_added_time_to_first_event_is_measured(port: int) -> None:
    with SlowStartProxy(port) as proxy:
        report = run_load(proxy.url, port, LoadPlan(4, 1.0), progress=lambda _: None)
    figures = report.figures()
    added = (figures["proxy.ttfe_p50_ms"] or 0) - (figures["direct.ttfe_p50_ms"] or 0)
    # It waits DELAY before forwarding: at least that much is added, and not much more
    # (a generous bound: this machine is shared).
    assert SlowStartProxy.DELAY * 1000 * 0.9 <= added < SlowStartProxy.DELAY * 1000 + 150
    assert report.proxy.wrong_count == 0 and report.exit_code == 0, report.table()


def test_errors_over_the_threshold_fail(capsys: pytest.CaptureFixture[str], port: int) -> None:
    with FlakyProxy(port) as proxy:
        code, out = load(capsys, proxy.url, port, "--load", "2")
    assert code == 1, out
    assert "FAIL load errors-over-threshold: " in out
    assert "; allowed: 1.0%); most often (" in out and "HTTP 503: " in out


def test_errors_within_the_threshold_are_an_info(port: int) -> None:
    with FlakyProxy(port) as proxy:
        plan = LoadPlan(2, 1.0, max_error_rate=0.6)
        report = run_load(proxy.url, port, plan, progress=lambda _: None)
    assert report.rules() == {"errors"} and report.exit_code == 0, report.table()
    # Every other request fails: about half of the streams.
    assert 0.3 <= report.proxy.error_count / report.proxy.streams <= 0.7


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], port: int, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the 'plot' extra: pip install -e '.[plot]'")
    png = tmp_path / "load.png"
    with ToyProxy(port) as proxy:
        code, out = load(capsys, proxy.url, port, "--load", "2", "--plot", str(png))
    assert code == 0 and f"Plot written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(
    capsys: pytest.CaptureFixture[str], port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import and find_spec: not there
    args = ["--proxy", "http://127.0.0.1:9", "--upstream-port", str(port), "--load", "2"]
    code, _, err = check(capsys, *args, "--plot", "x.png")
    assert code == 2 and "--plot needs matplotlib" in err and "llm-tapedeck[plot]" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--load", "0"], "--load must be 1 to 256 streams in flight, got 0"),
        (["--load", "9999"], "--load must be 1 to 256 streams in flight, got 9999"),
        (["--load", "2", "--duration", "0"], "--duration must be above 0 and at most 600 s"),
        (["--load", "2", "--gap", "0"], "--gap must be 0.005 s to 1 s, got 0.0"),
        (["--load", "2", "--max-errors", "101"], "--max-errors must be 0 to 100 (%), got 101"),
        (["--load", "2", "--scenario", "text"], "--load sends streams of its own"),
        (["--plot", "x.png"], "--plot draws a load run: add --load C"),
    ],
)
def test_bounds_and_misuse_get_a_clear_message(
    capsys: pytest.CaptureFixture[str], port: int, args: list[str], message: str
) -> None:
    code, _, err = check(
        capsys, "--proxy", "http://127.0.0.1:9", "--upstream-port", str(port), *args
    )
    assert code == 2 and message in err, err


def test_a_proxy_that_is_down_or_refuses_the_key_stops_the_run_at_once(
    capsys: pytest.CaptureFixture[str], port: int
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, _, err = check(capsys, "--proxy", down, "--upstream-port", str(port), "--load", "2")
    assert code == 2 and f"cannot connect to the proxy at {down}/v1/chat/" in err
    assert "direct" not in err  # no baseline spent on a proxy that is not there
    with ToyProxy(port, status=401) as proxy:
        args = ["--proxy", proxy.url, "--upstream-port", str(port), "--load", "2"]
        code, _, err = check(capsys, *args)
    assert code == 2 and "refused the request with HTTP 401" in err and "--api-key" in err


def test_load_rules_have_verdicts_and_descriptions() -> None:
    for rule, (verdict, description) in LOAD_RULES.items():
        assert verdict in VERDICTS and description.endswith("."), rule


# What the client got, judged against the nonce's words: streams built by hand.

NONCE, OTHER = "0123456789ab", "ba9876543210"


def stream(text: str, finish: bool = True) -> Downstream:
    """An OpenAI chat stream saying ``text`` one word per event, as a client would get it."""
    request = Request("POST", "/v1/chat/completions", json={"stream": True})
    chunks = [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in text.split()]
    if finish:
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    events = list(sse.Decoder().feed(raw + b"data: [DONE]\n\n"))
    return Downstream(request, 200, (), raw, events, [0.001 * i for i in range(len(events))])


def verdict(text: str, finish: bool = True, broken: str | None = None) -> tuple[str | None, ...]:
    scenario = load_scenario("openai_chat", NONCE, 4, GAP)
    down = stream(text, finish)
    down.broken = broken
    result = judge(scenario, down, [], 0.0)
    return result.wrong, result.error and result.error.split(":")[0]


def words(nonce: str, *ks: int) -> str:
    return " ".join(f"{nonce}.{k:03d}" for k in ks)


def test_each_stream_is_judged_by_its_own_words() -> None:
    assert text_for(NONCE, 2) == f"{NONCE}.000 {NONCE}.001 "
    assert verdict(words(NONCE, 0, 1, 2, 3)) == (None, None)
    assert verdict(words(NONCE, 0, 1) + " " + words(OTHER, 2) + " " + words(NONCE, 3))[0] == "mixed"
    assert verdict(words(NONCE, 0, 1, 2)) == ("cut", None)  # a clean end, a word short
    assert verdict(words(NONCE, 0, 1, 2, 3), finish=False) == ("cut", None)
    assert verdict(words(NONCE, 0, 2, 1, 3)) == ("reordered", None)
    assert verdict(words(NONCE, 0, 1, 1, 2, 3))[0] == "garbled"
    assert verdict(words(NONCE, 0, 1, 2, 3) + " extra")[0] == "garbled"
    # A broken connection is a failure the client sees: an error, not a wrong stream.
    assert verdict(words(NONCE, 0, 1), finish=False, broken="reset") == (None, "stream broken")
    # ...unless what arrived before it was someone else's.
    assert verdict(words(OTHER, 0), finish=False, broken="reset")[0] == "mixed"


def test_the_synthesized_load_stream_says_one_word_per_event() -> None:
    scenario = load_scenario("anthropic", NONCE, 5, GAP)
    body = scenario.body("m")
    request = Request("POST", "/v1/messages", json=body, body=json.dumps(body).encode())
    answer = dialect("anthropic").synthesize(request, scenario.script)
    deltas = [e for e in sse.Decoder().feed(answer.body) if e.event == "content_block_delta"]
    assert [json.loads(e.data or "")["delta"]["text"] for e in deltas] == [
        f"{NONCE}.{k:03d} " for k in range(5)
    ]
    assert isinstance(scenario.script, Script) and scenario.gap == GAP
