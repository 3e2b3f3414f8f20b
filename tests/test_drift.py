"""``tapedeck drift`` against a live upstream we control: a local aiohttp provider that
serves the recorded stream, another answer of the same shape, or a copy changed on purpose.

The cassettes are synthesized (openai_chat with include_usage, anthropic); the provider
checks the key (tests.upstream), so each run also shows which key went out.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web

from mockserver import cassettes, cli
from mockserver.dialects import DIALECTS, upstreams
from mockserver.index import cassette_files
from mockserver.model import Exchange, Script
from mockserver.recorder import HOP_HEADERS
from mockserver.redaction import Redaction
from mockserver.synth import synthesize
from tests import upstream
from tests.upstream import SECRET_COOKIE, SECRET_KEY, SECRET_ORG, Upstream, running

CASSETTE_KEY = "sk-cassette-key-000111222333444"
SSE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True)
class Case:
    dialect: str
    path: str
    body: dict[str, object]


CHAT = Case(
    "openai_chat",
    "/v1/chat/completions",
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)
MESSAGES = Case(
    "anthropic",
    "/v1/messages",
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    },
)


def recorded(case: Case, script: Script) -> Exchange:
    return synthesize(case.path, case.body, script)


def frames(case: Case, exchange: Exchange) -> list[bytes]:
    dialect = DIALECTS[case.dialect]
    return list(dialect.framing_for(exchange.request).frames(exchange.response.body))


def write_cassette(path: Path, exchanges: list[Exchange]) -> Path:
    """A cassette whose requests carry a key of their own (written without redaction, as
    another tool may have): drift must never send it."""
    carried = (("Authorization", f"Bearer {CASSETTE_KEY}"), ("x-api-key", CASSETTE_KEY))
    keyed = [replace(e, request=replace(e.request, headers=carried)) for e in exchanges]
    path.write_text(cassettes.dumps(keyed, redaction=Redaction(detect=False)))
    assert CASSETTE_KEY in path.read_text()
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_KEY)


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    script = Script(text="The recorded answer, word by word.", seed=1)
    return write_cassette(
        tmp_path / "recorded.yaml", [recorded(CHAT, script), recorded(MESSAGES, script)]
    )


def serve(chat: list[bytes], messages: list[bytes], content_type: str = SSE) -> Upstream:
    return Upstream(
        {
            CHAT.path: upstream.Script(chat, content_type),
            MESSAGES.path: upstream.Script(messages, content_type),
        }
    )


def drift(url: str, *paths: Path, extra: tuple[str, ...] = ()) -> int:
    targets = ["--upstream", f"openai={url}/v1", "--upstream", f"anthropic={url}"]
    return cli.main(["drift", *map(str, paths), *targets, *extra])


@pytest.fixture
def live_same(cassette: Path) -> Iterator[Upstream]:
    exchanges = cassettes.load(cassette)
    with running(serve(frames(CHAT, exchanges[0]), frames(MESSAGES, exchanges[1]))) as provider:
        yield provider


def test_an_unchanged_upstream_reports_nothing(
    keys: None, cassette: Path, live_same: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drift(live_same.url, cassette) == 0
    out = capsys.readouterr().out
    assert f"{cassette}#0 unchanged: POST /v1/chat/completions" in out
    assert f"{cassette}#1 unchanged: POST /v1/messages" in out
    assert "2 unchanged, 0 drifted, 0 not compared" in out
    # The user's key from the environment went out, in each protocol's own header; the
    # cassette's key never did.
    seen = dict(zip(live_same.targets, live_same.requests, strict=True))  # in any order
    chat, messages = seen[CHAT.path], seen[MESSAGES.path]
    assert chat["Authorization"] == f"Bearer {SECRET_KEY}"
    assert messages["x-api-key"] == SECRET_KEY
    assert "Authorization" not in messages
    assert not any(CASSETTE_KEY in value for r in live_same.requests for value in r.values())


def test_another_answer_of_the_same_shape_is_no_drift(
    keys: None, cassette: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Other words, other ids, more pieces, two content blocks where one was recorded:
    # what a live model answers, and none of it is the shape.
    script = Script(text="Another, longer answer that the live model gave today.", seed=7)
    chat = frames(CHAT, recorded(CHAT, Script(text=script.text, seed=7, chunk_size=2)))
    messages = frames(MESSAGES, recorded(MESSAGES, script))
    start = next(i for i, f in enumerate(messages) if b"content_block_start" in f)
    stop = next(i for i, f in enumerate(messages) if b"content_block_stop" in f)
    block = [f for f in messages[start : stop + 1] if b"event: ping" not in f]
    again = [f.replace(b'"index":0', b'"index":1') for f in block]
    messages = messages[: stop + 1] + again + messages[stop + 1 :]
    with running(serve(chat, messages)) as provider:
        assert drift(provider.url, cassette) == 0
    assert "2 unchanged, 0 drifted" in capsys.readouterr().out


def add_obfuscation(frame: bytes) -> bytes:
    if not frame.startswith(b"data: {"):
        return frame
    chunk = json.loads(frame[len(b"data: ") :])
    return b"data: " + json.dumps({**chunk, "obfuscation": "Zq3"}).encode() + b"\n\n"


def created_as_text(frame: bytes) -> bytes:
    return re.sub(rb'"created":(\d+)', rb'"created":"\1"', frame)


def without_usage_chunk(frames: list[bytes]) -> list[bytes]:
    kept = [f for f in frames if b'"choices":[]' not in f]
    assert len(kept) == len(frames) - 1
    return kept


def stop_after_delta(frames: list[bytes]) -> list[bytes]:
    """content_block_stop moved after message_delta."""
    stop = next(f for f in frames if f.startswith(b"event: content_block_stop"))
    kept = [f for f in frames if f is not stop]
    at = next(i for i, f in enumerate(kept) if f.startswith(b"event: message_delta"))
    return [*kept[: at + 1], stop, *kept[at + 1 :]]


Change = Callable[[list[bytes], list[bytes]], tuple[list[bytes], list[bytes], str]]


@pytest.mark.parametrize(
    ("change", "source", "expected"),
    [
        pytest.param(
            lambda c, m: ([add_obfuscation(f) for f in c], m, SSE),
            0,
            ["added fields of chat.completion.chunk: obfuscation"],
            id="added-field",
        ),
        pytest.param(
            lambda c, m: (without_usage_chunk(c), m, SSE),
            0,
            [
                "removed fields of chat.completion.chunk: usage.completion_tokens,",
                "changed usage placement: was chat.completion.chunk: usage null → "
                "chat.completion.chunk: usage null; finish (choices[].finish_reason) → "
                "chat.completion.chunk: usage (choices empty); "
                "now chat.completion.chunk: usage null → "
                "chat.completion.chunk: usage null; finish (choices[].finish_reason)",
            ],
            id="removed-usage-chunk",
        ),
        pytest.param(
            lambda c, m: (c, stop_after_delta(m), SSE),
            1,
            [
                "changed event order: was message_start → content_block_start → ping → "
                "content_block_delta → content_block_stop → message_delta → message_stop; "
                "now message_start → content_block_start → ping → content_block_delta → "
                "message_delta → content_block_stop → message_stop"
            ],
            id="changed-event-order",
        ),
        pytest.param(
            lambda c, m: ([created_as_text(f) for f in c], m, SSE),
            0,
            ["changed field type of chat.completion.chunk: created was number, now string"],
            id="changed-field-type",
        ),
        pytest.param(
            lambda c, m: (c, m, "application/json"),
            0,
            ["changed content type: was text/event-stream, now application/json"],
            id="changed-content-type",
        ),
    ],
)
def test_each_kind_of_drift_is_found_and_named(
    keys: None,
    cassette: Path,
    capsys: pytest.CaptureFixture[str],
    change: Change,
    source: int,
    expected: list[str],
) -> None:
    exchanges = cassettes.load(cassette)
    chat, messages, content_type = change(
        frames(CHAT, exchanges[0]), frames(MESSAGES, exchanges[1])
    )
    with running(serve(chat, messages, content_type)) as provider:
        assert drift(provider.url, cassette) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"{cassette}#{source} "))
    assert lines[head].startswith(f"{cassette}#{source} drifted: POST ")
    found = []
    for line in lines[head + 1 :]:
        if not line.startswith("    "):
            break
        found.append(line.strip())
    assert len(found) == len(expected), found
    for line, wanted in zip(found, expected, strict=True):
        assert line.startswith(wanted), (line, wanted)
    if content_type == SSE:  # the other interaction was served as recorded
        assert f"#{1 - source} unchanged" in out
    assert "1 drifted" in out or "2 drifted" in out


def test_rewrite_records_the_drifted_answers_redacted_then_nothing_drifts(
    keys: None, cassette: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exchanges = cassettes.load(cassette)
    chat = [add_obfuscation(f) for f in frames(CHAT, exchanges[0])]
    with running(serve(chat, frames(MESSAGES, exchanges[1]))) as provider:
        assert drift(provider.url, cassette, extra=("--rewrite",)) == 1
        assert f"{cassette}: rewrote 1 interaction(s)" in capsys.readouterr().out
        text = cassette.read_text()
        for secret in (SECRET_KEY, SECRET_COOKIE.split("=")[1], SECRET_ORG, CASSETTE_KEY):
            assert secret not in text
        after = cassettes.load(cassette)
        assert after[0].response.body == b"".join(chat)
        assert after[0].timing is not None and len(after[0].timing.events) == len(chat)
        assert after[1].response.body == exchanges[1].response.body
        assert drift(provider.url, cassette) == 0


def test_an_error_where_an_answer_was_is_drift_and_never_rewritten(
    keys: None, cassette: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = cassette.read_bytes()
    messages = frames(MESSAGES, cassettes.load(cassette)[1])
    retired = (
        b'{"error": {"message": "The model gpt-4o-mini does not exist", "code": "model_not_found"}}'
    )
    provider = serve([], messages)
    provider.scripts[CHAT.path] = upstream.Script([retired], "application/json", status=404)
    with running(provider):
        assert drift(provider.url, cassette, extra=("--rewrite",)) == 1
    out = capsys.readouterr().out
    assert (
        '    changed status: was 200, now 404: {"error": {"message": "The model gpt-4o-mini '
        'does not exist"' in out
    )
    assert f"{cassette}#0: kept: the live answer is an error (404)" in out
    assert cassette.read_bytes() == before


def test_a_refused_key_is_not_compared_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, live_same: Upstream, cassette: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-999888777666555")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert drift(live_same.url, cassette) == 2
    out = capsys.readouterr().out
    assert "note: ANTHROPIC_API_KEY not set: requests to upstream anthropic carry no key" in out
    assert "#0 not compared: " in out and "answered 401 Unauthorized" in out
    assert "set OPENAI_API_KEY to a valid key for upstream openai" in out
    assert "set ANTHROPIC_API_KEY to a valid key for upstream anthropic" in out
    assert "sk-wrong-key" not in out
    assert "0 unchanged, 0 drifted, 2 not compared" in out


def test_an_upstream_that_is_down_is_said_so(
    keys: None, cassette: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert drift(f"http://127.0.0.1:{port}", cassette) == 2
    out = capsys.readouterr().out
    assert f"#0 not compared: cannot reach http://127.0.0.1:{port}/v1/chat/completions" in out
    assert "is the upstream up, and is --upstream right?" in out


def test_a_request_without_an_upstream_url_says_which_to_give(
    keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    azure = synthesize(
        "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
        {"messages": [{"role": "user", "content": "hi"}], "stream": True},
        Script(text="hello"),
    )
    cassette = write_cassette(tmp_path / "azure.yaml", [azure])
    assert cli.main(["drift", str(cassette)]) == 2
    assert "no URL for upstream azure: pass --upstream azure=https://..." in capsys.readouterr().out


@dataclass
class Mirror:
    """A provider that answers each request with the recording made of it (first come,
    first served among identical requests), wherever the request was sent."""

    answers: dict[tuple[str, bytes], list[Exchange]]
    url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)

    async def handle(self, request: web.Request) -> web.Response:
        queue = self.answers.get((request.method, await request.read()))
        if not queue:
            return web.json_response({"error": "no recording of this request"}, status=418)
        answer = queue.pop(0).response
        headers = [
            (k, v)
            for k, v in answer.headers
            if k.lower() not in HOP_HEADERS and k.lower() != "content-encoding"
        ]
        return web.Response(status=answer.status, headers=headers, body=answer.body)


@pytest.mark.corpus
def test_every_corpus_recording_is_true_to_itself(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each real-world answer, served again: whatever its protocol, framing (SSE, NDJSON,
    # JSON array, AWS event stream) or encoding, its shape is its own.
    answers: dict[tuple[str, bytes], list[Exchange]] = {}
    for path in cassette_files([corpus]):
        for exchange in cassettes.load(path):
            answers.setdefault((exchange.request.method, exchange.request.body), []).append(
                exchange
            )
    with running(Mirror(answers)) as mirror:  # type: ignore[arg-type]
        targets = [f"--upstream={name}={mirror.url}" for name in upstreams()]
        code = cli.main(["drift", str(corpus), *targets, "--concurrency", "1"])
    out = capsys.readouterr().out
    assert code == 0, "\n".join(line for line in out.splitlines() if "unchanged" not in line)
    assert " 0 drifted, 0 not compared" in out
