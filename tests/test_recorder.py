"""Recording against a real local upstream: streamed through live, saved exactly with its
timing and without secrets, replayed by vcrpy and by Tapedeck with the upstream gone."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import vcr

from mockserver import cassettes
from mockserver.app import ServerState
from mockserver.dialects import DIALECTS
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script
from mockserver.player import Player
from mockserver.recorder import RECORD_MODES, Recorder, parse_upstreams
from mockserver.redaction import DEFAULT_REDACTION
from mockserver.server_thread import BackgroundServer
from tests import rawhttp, upstream
from tests.upstream import SECRET_COOKIE, SECRET_KEY, SECRET_ORG, Upstream, running

SECRETS = (SECRET_KEY, SECRET_COOKIE.split("=")[1], SECRET_ORG)


@dataclass(frozen=True)
class Case:
    """A provider stream to record: where the client posts, what, and what comes back."""

    dialect: str
    path: str  # the path on Tapedeck (what the SDK sends)
    upstream_path: str  # where the upstream receives it
    body: dict[str, object]
    auth: dict[str, str]
    query: str = ""


def chat_case() -> Case:
    return Case(
        "openai_chat",
        "/v1/chat/completions",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        {"Authorization": f"Bearer {SECRET_KEY}", "OpenAI-Organization": SECRET_ORG},
    )


def anthropic_case() -> Case:
    return Case(
        "anthropic",
        "/v1/messages",
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        {"x-api-key": SECRET_KEY, "anthropic-version": "2023-06-01"},
    )


def gemini_case() -> Case:
    return Case(
        "gemini",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        {"x-goog-api-key": SECRET_KEY},
        query="alt=sse",
    )


CASES = [chat_case(), anthropic_case(), gemini_case()]


def stream_events(case: Case) -> list[bytes]:
    """The upstream's stream for a case: made by the dialect's synthesizer (test input)."""
    query = tuple(p.split("=") for p in case.query.split("&") if p)
    request = Request("POST", case.path, query, json=case.body)  # type: ignore[arg-type]
    response = DIALECTS[case.dialect].synthesize(request, Script(text="Recorded words here."))
    return list(DIALECTS[case.dialect].framing_for(request).frames(response.body))


def upstreams_for(url: str) -> dict[str, str]:
    return parse_upstreams([f"openai={url}/v1", f"anthropic={url}", f"gemini={url}"])


@pytest.fixture
def tapedeck() -> Iterator[BackgroundServer]:
    with BackgroundServer() as server:
        yield server


def record_with(server: BackgroundServer, mode: str, target: Path, url: str) -> Recorder:
    recorder = Recorder(mode, target, upstreams_for(url))
    server.state.use(Player(Library.from_paths([target] if target.exists() else [])), recorder)
    return recorder


def post(server: BackgroundServer, case: Case) -> rawhttp.RawResponse:
    target = case.path + (f"?{case.query}" if case.query else "")
    return rawhttp.request(server.url, target, case.body, headers=case.auth)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.dialect)
def test_record_live_then_replay_exactly(
    tapedeck: BackgroundServer, tmp_path: Path, case: Case
) -> None:
    events = stream_events(case)
    provider = Upstream({case.upstream_path: upstream.Script(events)}, hold=True)
    target = tmp_path / "recorded.yaml"
    with running(provider):
        recorder = record_with(tapedeck, "once", target, provider.url)
        query = f"?{case.query}" if case.query else ""
        with (
            httpx.Client(base_url=tapedeck.url, timeout=30) as client,
            client.stream("POST", case.path + query, json=case.body, headers=case.auth) as reply,
        ):
            pieces = reply.iter_bytes()
            first = next(pieces)
            # The upstream holds every later event until the gate opens: seeing the first
            # one now proves nothing was buffered on the way.
            assert first == events[0]
            provider.gate.set()
            rest = b"".join(pieces)
        assert first + rest == b"".join(events)
        assert provider.requests[0].get("Accept-Encoding") == "identity"
    assert recorder.failures == []
    text = target.read_text()
    for secret in SECRETS:
        assert secret not in text
    (saved,) = cassettes.load(target)
    assert saved.response.body == b"".join(events)
    assert saved.request.origin == provider.url
    assert saved.timing is not None
    offsets = saved.timing.events
    assert len(offsets) == len(events)
    assert list(offsets) == sorted(offsets)
    assert offsets[0] < offsets[-1]  # the rest waited for the gate the client opened
    assert 0 < saved.timing.headers <= offsets[0]

    # The upstream is gone: Tapedeck replays the recording byte-exact...
    tapedeck.state.use(Player(Library.from_paths([target])))
    again = post(tapedeck, case)
    assert again.body == b"".join(events)
    assert again.chunks == events

    # ...and so does vcrpy, at the recorded upstream URI.
    with vcr.VCR(record_mode="none").use_cassette(str(target)):
        replayed = httpx.post(
            provider.url + case.upstream_path + (f"?{case.query}" if case.query else ""),
            json=case.body,
        )
    assert replayed.content == b"".join(events)


def recorded_requests(path: Path) -> list[str]:
    return [e.request.json["messages"][0]["content"] for e in cassettes.load(path)]


def ask(server: BackgroundServer, words: str) -> rawhttp.RawResponse:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": words}]}
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    return rawhttp.request(server.url, "/v1/chat/completions", body, headers=headers)


def answer_events() -> list[bytes]:
    return [b'{"choices":[{"message":{"content":"from upstream"}}]}']


@pytest.fixture
def provider() -> Iterator[Upstream]:
    scripts = {"/v1/chat/completions": upstream.Script(answer_events(), "application/json")}
    with running(Upstream(scripts)) as live:
        yield live


def test_once_records_only_a_missing_cassette(
    tapedeck: BackgroundServer, tmp_path: Path, provider: Upstream
) -> None:
    target = tmp_path / "c.yaml"
    record_with(tapedeck, "once", target, provider.url)
    assert ask(tapedeck, "a").status == 200
    assert recorded_requests(target) == ["a"]
    record_with(tapedeck, "once", target, provider.url)
    miss = ask(tapedeck, "b")  # the cassette exists: replay only, a miss is a miss
    assert miss.status == 400 and "Nearest recorded requests" in miss.json()["error"]["message"]
    assert len(provider.requests) == 1


def test_new_episodes_replays_hits_and_records_misses(
    tapedeck: BackgroundServer, tmp_path: Path, provider: Upstream
) -> None:
    target = tmp_path / "c.yaml"
    record_with(tapedeck, "once", target, provider.url)
    ask(tapedeck, "a")
    record_with(tapedeck, "new_episodes", target, provider.url)
    assert ask(tapedeck, "a").status == 200  # replayed
    assert ask(tapedeck, "b").status == 200  # recorded
    assert len(provider.requests) == 2
    assert recorded_requests(target) == ["a", "b"]
    assert tapedeck.state.player.misses == []


@pytest.mark.parametrize(("mode", "expected"), [("all", ["a", "a"]), ("rewrite", ["a"])])
def test_all_appends_and_rewrite_replaces(
    tapedeck: BackgroundServer, tmp_path: Path, provider: Upstream, mode: str, expected: list[str]
) -> None:
    target = tmp_path / "c.yaml"
    record_with(tapedeck, "once", target, provider.url)
    ask(tapedeck, "a")
    record_with(tapedeck, mode, target, provider.url)
    ask(tapedeck, "a")
    assert len(provider.requests) == 2  # forwarded although a recording matched
    assert recorded_requests(target) == expected


def test_upstream_errors_are_saved_as_they_came(tapedeck: BackgroundServer, tmp_path: Path) -> None:
    body = b'{"error": {"message": "slow down", "type": "requests"}}'
    scripts = {"/v1/chat/completions": upstream.Script([body], "application/json", status=429)}
    target = tmp_path / "c.yaml"
    with running(Upstream(scripts)) as live:
        record_with(tapedeck, "all", target, live.url)
        reply = ask(tapedeck, "a")
    assert (reply.status, reply.body) == (429, body)
    (saved,) = cassettes.load(target)
    assert (saved.response.status, saved.response.body) == (429, body)


def test_a_refused_upstream_gets_a_provider_502_and_nothing_saved(
    tapedeck: BackgroundServer, tmp_path: Path
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    target = tmp_path / "c.yaml"
    recorder = record_with(tapedeck, "all", target, dead)
    reply = ask(tapedeck, "a")
    assert reply.status == 502
    assert "Tapedeck could not record" in reply.json()["error"]["message"]
    assert not target.exists()
    assert "nothing saved" in recorder.failures[0]
    assert ask(tapedeck, "b").status == 502  # and the server keeps serving


def test_a_reset_mid_stream_reaches_the_client_and_saves_nothing(
    tapedeck: BackgroundServer, tmp_path: Path
) -> None:
    events = stream_events(chat_case())
    scripts = {"/v1/chat/completions": upstream.Script(events, reset_after_first=True)}
    target = tmp_path / "c.yaml"
    with running(Upstream(scripts)) as live:
        recorder = record_with(tapedeck, "all", target, live.url)
        with pytest.raises(httpx.HTTPError), httpx.Client(base_url=tapedeck.url) as client:
            client.post("/v1/chat/completions", json=chat_case().body, headers=chat_case().auth)
    assert not target.exists()
    assert len(recorder.failures) == 1
    assert ask(tapedeck, "b").status in (200, 502)  # still serving


def test_strict_record_refuses_a_broken_stream(tapedeck: BackgroundServer, tmp_path: Path) -> None:
    events = stream_events(chat_case())[:-1]  # no [DONE]
    scripts = {"/v1/chat/completions": upstream.Script(events)}
    target = tmp_path / "c.yaml"
    with running(Upstream(scripts)) as live:
        recorder = Recorder("all", target, upstreams_for(live.url), strict=True)
        tapedeck.state.use(Player(Library(())), recorder)
        reply = post(tapedeck, chat_case())
    assert reply.body == b"".join(events)  # the client still gets what upstream sent
    assert not target.exists()
    assert "done-missing" in recorder.failures[0]


def test_custom_redaction_and_filters(tmp_path: Path) -> None:
    def scrub_model(exchange: Exchange) -> Exchange:
        body = exchange.request.body.replace(b"gpt-secret-model", b"MODEL")
        return Exchange(
            Request(exchange.request.method, exchange.request.path, body=body),
            exchange.response,
        )

    redaction = DEFAULT_REDACTION.extend(
        headers=["X-Team-Token"], body_fields=["user"], filters=[scrub_model]
    )
    body = {"model": "gpt-secret-model", "user": "alice@example.com", "messages": []}
    exchange = Exchange(
        Request(
            "POST",
            "/v1/chat/completions",
            headers=(("x-team-token", "tt-1"),),
            body=json.dumps(body).encode(),
            json=body,
        ),
        cassettes.Response(200, (), b"{}"),
    )
    target = tmp_path / "c.yaml"
    cassettes.dump([exchange], target, redaction=redaction)
    text = target.read_text()
    for secret in ("tt-1", "alice@example.com", "gpt-secret-model"):
        assert secret not in text


def _append(target: str, worker: int, count: int) -> None:
    recorder = Recorder("new_episodes", Path(target))
    for number in range(count):
        body = {"model": "m", "messages": [{"role": "user", "content": f"{worker}-{number}"}]}
        request = Request("POST", "/v1/chat/completions", body=json.dumps(body).encode(), json=body)
        recorder.save(Exchange(request, cassettes.Response(200, (), b"{}")))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    target = tmp_path / "shared.yaml"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(str(target), w, 8)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    saved = sorted(recorded_requests(target))
    assert saved == sorted(f"{w}-{n}" for w in range(4) for n in range(8))


def test_kill_9_while_recording_leaves_earlier_cassettes_intact(tmp_path: Path) -> None:
    events = stream_events(chat_case())
    scripts = {"/v1/chat/completions": upstream.Script(events)}
    target = tmp_path / "cassettes" / "recorded.yaml"
    with running(Upstream(scripts)) as live:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "mockserver", "serve", "--port", str(port),
            "--record-mode", "all", "--record-to", str(target),
            "--upstream", f"openai={live.url}/v1",
        ]  # fmt: skip
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            assert server.stdout is not None
            assert "Tapedeck serving" in server.stdout.readline()  # printed once listening
            for words in ("one", "two"):
                body = {**chat_case().body, "messages": [{"role": "user", "content": words}]}
                reply = rawhttp.request(url, "/v1/chat/completions", body, headers=chat_case().auth)
                assert reply.status == 200
            live.hold = True  # the third recording stalls after its first event...
            live.gate.clear()
            client = [sys.executable, "-c", _HANGING_CLIENT, url, json.dumps(chat_case().body)]
            with subprocess.Popen([*client, SECRET_KEY], stdout=subprocess.PIPE, text=True) as hung:
                assert hung.stdout is not None
                assert hung.stdout.readline().strip() == "first"
                os.kill(server.pid, signal.SIGKILL)  # ...and the server dies mid-recording
                server.wait(30)
                hung.kill()
    saved = cassettes.load(target)
    assert [e.request.json["messages"][0]["content"] for e in saved] == ["one", "two"]
    assert all(e.response.body == b"".join(events) for e in saved)


_HANGING_CLIENT = """
import sys, threading, httpx
url, body, key = sys.argv[1], sys.argv[2], sys.argv[3]
with httpx.stream("POST", url + "/v1/chat/completions", content=body,
                  headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
                  timeout=60) as reply:
    for piece in reply.iter_bytes():
        print("first", flush=True)
        break
    threading.Event().wait()  # hold the connection open until killed
"""


def test_record_modes_are_the_plugin_s_record_modes() -> None:
    from pytest_plugin.plugin import RECORD_MODES as PLUGIN_MODES

    assert PLUGIN_MODES == RECORD_MODES


def test_unknown_upstream_spelling_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--upstream wants NAME=URL"):
        parse_upstreams(["openai"])


def test_serve_state_defaults_never_record() -> None:
    assert ServerState(Player(Library(()))).recorder is None
