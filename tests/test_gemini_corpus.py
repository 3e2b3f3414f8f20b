"""The gemini validator against every real Gemini and Vertex recording in the corpus.

Every one is a real Google stream, so every verdict is "no violation": where a rule fired
on a recording the rule was wrong and was changed. The table still names each file and
what it shows, so a rule that starts firing says which real stream it misjudges. The
synthesizer is held to the same recordings (shape, key order, layout, headers), and
error() reproduces Google's recorded error bodies byte for byte.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects.gemini.dialect import (
    check,
    error,
    identity,
    is_stream,
    select_framing,
    synthesize,
)
from mockserver.framing.json_array import JSON_ARRAY
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script, ToolCall, header
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()
PROVIDERS = ["gemini", "vertex"]

# (file, interaction index) -> the rule ids the validator must report, no more, no fewer.
VERDICTS: dict[tuple[str, int], set[str]] = {
    # alt=sse, CRLF CRLF separators; the prompt count drops from 15 to 13 on the last
    # chunk while the total grows (15 -> 21): the last total is still the largest.
    ("gemini/stream-sse-crlf.yaml", 0): set(),
    # Running counts: candidatesTokenCount 31 -> 79 -> 80, thoughtsTokenCount 35 on every
    # chunk (thoughts not included), serviceTier: total = prompt + candidates + thoughts.
    ("gemini/stream-sse-usage-live.yaml", 0): set(),
    # Four thought parts (thought: true), then the answer; the first answer part carries a
    # thoughtSignature; thoughtsTokenCount grows 68 -> 787 and then stays.
    ("gemini/stream-sse-thinking.yaml", 0): set(),
    # A whole functionCall (args {}) with a signature, then a final chunk holding only an
    # empty text part and finishReason; the follow-up's prompt count jumps to 257 at the end.
    ("gemini/stream-sse-tool-call-thought-signature.yaml", 0): set(),
    ("gemini/stream-sse-tool-call-thought-signature.yaml", 1): set(),
    # One chunk, two whole functionCall parts, finishReason STOP, no candidate index.
    ("gemini/stream-sse-tool-calls-crewai.yaml", 0): set(),
    # No alt: a pretty-printed JSON array, thought then answer then an empty signed part.
    ("gemini/stream-json-array-gzip.yaml", 0): set(),
    # JSON arrays: thought + functionCall with finishMessage; a one-element array; text.
    ("gemini/stream-json-array-tools-gzip.yaml", 0): set(),
    ("gemini/stream-json-array-tools-gzip.yaml", 1): set(),
    ("gemini/stream-json-array-tools-gzip.yaml", 2): set(),
    # Vertex (v1beta1 publisher path): role before parts, createTime, trafficType.
    ("vertex/stream-sse-flex-tier.yaml", 0): set(),
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def is_gemini_stream(exchange: Exchange) -> bool:
    return is_stream(exchange.request) and exchange.response.status == 200


def test_the_table_covers_every_stream_of_those_providers() -> None:
    found = {
        (path.relative_to(ROOT).as_posix(), index)
        for provider in PROVIDERS
        for path in sorted((ROOT / provider).glob("*.yaml"))
        for index, exchange in enumerate(exchanges(path.relative_to(ROOT).as_posix()))
        if is_gemini_stream(exchange)
    }
    assert found == set(VERDICTS)


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recorded_stream(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    framing = select_framing(exchange.request)
    assert framing is (SSE if exchange.request.query_value("alt") == "sse" else JSON_ARRAY)
    violations = check(exchange.request, framing.events(exchange.response.body))
    assert {v.rule for v in violations} == VERDICTS[(name, index)], [str(v) for v in violations]
    # Without the request the framing is told by the first byte; the verdict is the same.
    assert {v.rule for v in check(None, framing.events(exchange.response.body))} == set()


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_a_live_decoder_sees_the_same_events_in_any_split(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    framing = select_framing(exchange.request)
    body = exchange.response.body
    decoder = framing.decoder()
    events = [e for start in range(0, len(body), 5) for e in decoder.feed(body[start : start + 5])]
    events += decoder.close()
    assert [e.data for e in events if e.data] == [
        e.data for e in framing.events(body) if e.data and e.data.strip()
    ]


def test_every_recorded_sse_stream_uses_crlf_and_data_with_a_space() -> None:
    for name, index in VERDICTS:
        exchange = exchanges(name)[index]
        if select_framing(exchange.request) is SSE:
            frames = SSE.frames(exchange.response.body)
            assert all(f.startswith(b"data: {") and f.endswith(b"}\r\n\r\n") for f in frames)


# --- errors ----------------------------------------------------------------------------

BYTE_EXACT = [
    ("gemini/error-400-bad-key-gzip.yaml", 0, "API_KEY_INVALID"),
    ("gemini/error-400-bad-key-on-sse-request.yaml", 0, "API_KEY_INVALID"),
    ("gemini/error-404-on-sse-request.yaml", 0, "NOT_FOUND"),
    ("gemini/error-404-on-sse-request.yaml", 1, "NOT_FOUND"),
    ("gemini/error-429-resource-exhausted.yaml", 0, "RESOURCE_EXHAUSTED"),
]


@pytest.mark.parametrize(("name", "index", "kind"), BYTE_EXACT)
def test_error_reproduces_googles_error_body_byte_for_byte(
    name: str, index: int, kind: str
) -> None:
    real = exchanges(name)[index]
    recorded = json.loads(real.response.body)["error"]
    ours = error(real.response.status, recorded["message"], kind)
    assert ours.body == real.response.body
    assert (ours.status, ours.reason) == (real.response.status, real.response.reason)


def test_error_matches_the_404_stored_parsed() -> None:
    (real,) = exchanges("gemini/error-404-model-not-found.yaml")
    recorded = json.loads(real.response.body)
    ours = error(404, recorded["error"]["message"], "NOT_FOUND")
    assert json.loads(ours.body) == recorded


@pytest.mark.parametrize(
    "name", ["gemini/error-404-on-sse-request.yaml", "gemini/error-400-bad-key-on-sse-request.yaml"]
)
def test_a_scripted_error_on_an_sse_request_says_event_stream_as_google_does(name: str) -> None:
    real = exchanges(name)[0]
    recorded = json.loads(real.response.body)["error"]
    reason = recorded.get("details", [{}])[0].get("reason")
    script = Script(
        status=real.response.status, error_message=recorded["message"], error_kind=reason
    )
    ours = synthesize(real.request, script)
    assert header(ours.headers, "content-type") == header(real.response.headers, "content-type")
    assert header(ours.headers, "content-type") == "text/event-stream"
    assert ours.body == real.response.body


# --- the synthesizer against the recordings --------------------------------------------


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type."""
    if isinstance(value, dict):
        return [(key, skeleton(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [skeleton(item) for item in value]
    return type(value).__name__


def without(value: dict[str, Any], *names: str) -> dict[str, Any]:
    usage = {k: v for k, v in value["usageMetadata"].items() if k not in names}
    return {**value, "usageMetadata": usage}


def test_synthesized_sse_chunks_have_the_shape_of_real_ones() -> None:
    (real,) = exchanges("gemini/stream-sse-usage-live.yaml")
    ours = synthesize(real.request, Script(text="<think>Counting.</think>1\n2\n3", chunk_size=3))
    real_chunks = [json.loads(e.data or "") for e in SSE.events(real.response.body)]
    our_chunks = [json.loads(e.data or "") for e in SSE.events(ours.body)]
    # serviceTier is a 2026 addition of some models; everything else matches, key order too.
    assert {json.dumps(skeleton(without(c, "serviceTier"))) for c in real_chunks} == {
        json.dumps(skeleton(c)) for c in our_chunks
    }
    assert check(real.request, SSE.events(ours.body)) == []


def test_synthesized_sse_bytes_are_laid_out_like_googles() -> None:
    (real,) = exchanges("gemini/stream-sse-crlf.yaml")
    ours = synthesize(real.request, Script(text="The capital of France is Paris.")).body
    for body in (real.response.body, ours):
        assert body.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": "')
        assert b'"}],"role": "model"}' in body and body.endswith(b'"}\r\n\r\n')


def test_synthesized_json_arrays_are_laid_out_like_googles() -> None:
    real = exchanges("gemini/stream-json-array-tools-gzip.yaml")[2]
    ours = synthesize(real.request, Script(text="How about Charles and Sammy?", chunk_size=10))
    for body in (real.response.body, ours.body):
        assert body.startswith(b'[{\n  "candidates": [\n    {\n      "content": {\n')
        assert b'\n}\n,\r\n{\n  "candidates"' in body and body.endswith(b"\n}\n]")
    real_keys = {
        json.dumps(skeleton(without(c, "serviceTier"))) for c in json.loads(real.response.body)
    }
    assert real_keys == {json.dumps(skeleton(c)) for c in json.loads(ours.body)}


def test_a_synthesized_body_has_the_shape_of_a_real_one() -> None:
    real = exchanges("gemini/nonstream-adk.yaml")[1]
    text = json.loads(real.response.body)["candidates"][0]["content"]["parts"][0]["text"]
    ours = synthesize(real.request, Script(text=text))
    assert skeleton(json.loads(ours.body)) == skeleton(json.loads(real.response.body))
    assert ours.body.endswith(b"}\n") and real.response.body.endswith(b"}\n")


def test_a_synthesized_function_call_has_the_shape_of_a_real_one() -> None:
    (real,) = exchanges("gemini/stream-sse-tool-calls-crewai.yaml")
    calls = tuple(
        ToolCall("get_current_temperature", json.dumps({"city": c})) for c in ("Paris", "London")
    )
    ours = json.loads(
        SSE.events(synthesize(real.request, Script(tool_calls=calls)).body)[-1].data or ""
    )
    recorded = json.loads(SSE.events(real.response.body)[0].data or "")
    assert ours["candidates"][0]["content"] == recorded["candidates"][0]["content"]


def test_synthesized_embeddings_have_the_recorded_shape_and_size() -> None:
    (real,) = exchanges("gemini/embeddings-gzip.yaml")
    ours = json.loads(synthesize(real.request, Script()).body)
    recorded = json.loads(real.response.body)
    assert skeleton(ours)[0][0] == "embeddings"
    assert [len(e["values"]) for e in ours["embeddings"]] == [
        len(e["values"]) for e in recorded["embeddings"]
    ]


def test_synthesized_streams_send_the_headers_google_sends() -> None:
    (real,) = exchanges("gemini/stream-sse-tool-calls-crewai.yaml")
    ours = synthesize(real.request, Script())
    transport = {"date", "transfer-encoding", "alt-svc"}
    recorded = [n for n, _ in real.response.headers if n.lower() not in transport]
    assert sorted(n for n, _ in ours.headers) == sorted(recorded)
    for name in ("content-type", "content-disposition", "server", "x-xss-protection"):
        assert header(ours.headers, name) == header(real.response.headers, name), name


# --- identity --------------------------------------------------------------------------


def test_a_vertex_recording_answers_the_same_request_on_the_gemini_api() -> None:
    (real,) = exchanges("vertex/stream-sse-flex-tier.yaml")
    on_gemini = Request(
        "POST",
        "/v1beta/models/gemini-3-flash-preview:streamGenerateContent",
        (("alt", "sse"), ("key", "AIza-something")),
        json=real.request.json,
    )
    assert identity(on_gemini) == identity(real.request)


def test_each_recorded_follow_up_is_a_different_request() -> None:
    first, second, third = exchanges("gemini/stream-json-array-tools-gzip.yaml")
    assert len({identity(first.request), identity(second.request), identity(third.request)}) == 3


def test_every_gemini_and_vertex_interaction_is_served_by_this_dialect() -> None:
    for provider in PROVIDERS:
        for path in sorted((ROOT / provider).glob("*.yaml")):
            library = Library(exchanges(path.relative_to(ROOT).as_posix()))
            assert library.unserved == (), path.name
            assert {entry.dialect.name for entry in library.entries} == {"gemini"}, path.name
            for entry in library.entries:
                assert entry.streaming == (
                    entry.endpoint == "streamGenerateContent"
                    and entry.exchange.response.status == 200
                )
