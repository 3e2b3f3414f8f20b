"""The bedrock dialect against every Bedrock recording in the corpus.

Every file is a real Bedrock recording (boto3 through dd-trace-py and pydantic-ai), so every
stream must pass every rule: the verdict table below says so file by file, with what each
recording exercises, written from decoding the frames. The synthesizer is held to the same
recordings (frame headers, key order, the ``p`` padding alphabet, the non-stream body), and
error() reproduces the recorded error body and x-amzn-ErrorType byte for byte.
"""

from __future__ import annotations

import base64
import json
import string
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects import resolve
from mockserver.dialects.bedrock.dialect import (
    DIALECT,
    check,
    error,
    identity,
    is_stream,
    synthesize,
)
from mockserver.framing.aws_eventstream import decode, frames, headers, problem
from mockserver.model import Exchange, Script, ToolCall, header
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root() / "bedrock"

# file -> (endpoint, streamed, the rule ids check() reports: none, as these are real).
VERDICTS: dict[str, tuple[str, bool, set[str]]] = {
    # Text block 0 (no start event), then a toolUse block 1 opened by contentBlockStart,
    # whose first input fragment is "" (Claude's); stopReason tool_use; usage 259+64=323.
    "converse-stream-eventstream.yaml": ("converse-stream", True, set()),
    # Nova Micro: one text block, p padding of 2 to 61 characters, and an empty
    # serverToolUsage object inside usage (an extra key, allowed).
    "converse-stream-pydantic.yaml": ("converse-stream", True, set()),
    # Claude Sonnet 4 thinking: reasoningContent text deltas then one signature delta in
    # block 0, the answer in block 1; the request's system [] and inferenceConfig {}.
    "converse-stream-thinking.yaml": ("converse-stream", True, set()),
    # Anthropic events in base64 chunks, no p padding; the last (message_stop) carries
    # amazon-bedrock-invocationMetrics.
    "invoke-with-response-stream-claude.yaml": ("invoke-with-response-stream", True, set()),
    # Not streams (a JSON answer, a 400 to a stream request, a 403): nothing to check.
    "converse-nonstream.yaml": ("converse", False, set()),
    "error-400-stream.yaml": ("converse-stream", False, set()),
    "error-403-converse.yaml": ("converse", False, set()),
}


@cache
def recording(name: str) -> Exchange:
    (exchange,) = load(ROOT / name)
    return exchange


def test_the_table_covers_every_bedrock_recording() -> None:
    assert {p.name for p in ROOT.glob("*.yaml")} == set(VERDICTS)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_verdict(name: str) -> None:
    endpoint, streamed, expected = VERDICTS[name]
    exchange = recording(name)
    match = resolve(exchange.request.method, exchange.request.path)
    assert match is not None and match.dialect is DIALECT and match.route.endpoint == endpoint
    assert is_stream(exchange.request) == endpoint.endswith("-stream")
    if streamed:
        assert exchange.response.status == 200
        assert b"".join(frames(exchange.response.body)) == exchange.response.body
        events = decode(exchange.response.body)
        assert all(problem(e) is None for e in events)
        assert {v.rule for v in check(exchange.request, events)} == expected
        assert {v.rule for v in check(None, events)} == expected  # the endpoint read back
    else:
        assert not streamed and not expected


def payloads(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.event or "", json.loads(e.data or "")) for e in decode(recording(name).response.body)
    ]


def test_the_recorded_tool_stream_reassembles_to_its_answer() -> None:
    events = payloads("converse-stream-eventstream.yaml")
    text = "".join(e["delta"].get("text", "") for n, e in events if n == "contentBlockDelta")
    assert text == (
        "Okay, let me use the tool to fetch an expert explanation for the concept of "
        "distributed tracing."
    )
    fragments = [
        e["delta"]["toolUse"]["input"]
        for n, e in events
        if n == "contentBlockDelta" and "toolUse" in e["delta"]
    ]
    assert fragments[0] == "" and json.loads("".join(fragments)) == {
        "concept": "distributed tracing"
    }
    assert events[-1][1]["usage"] == {"inputTokens": 259, "outputTokens": 64, "totalTokens": 323}


def test_the_recorded_invoke_chunks_are_anthropic_events() -> None:
    events = [
        json.loads(base64.b64decode(e["bytes"]))
        for _, e in payloads("invoke-with-response-stream-claude.yaml")
    ]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 22


def test_the_corpus_requests_have_distinct_identities() -> None:
    keys = {
        (resolve("POST", recording(n).request.path).route.endpoint, identity(recording(n).request))
        for n in VERDICTS
    }  # type: ignore[union-attr]
    assert len(keys) == len(VERDICTS)


# --- error() against the recorded errors ----------------------------------------------


def test_error_reproduces_the_recorded_403_byte_for_byte() -> None:
    recorded = recording("error-403-converse.yaml").response
    message = json.loads(recorded.body)["message"]
    ours = error(403, message, "ExpiredTokenException")
    assert ours.body == recorded.body
    assert (ours.status, ours.reason) == (recorded.status, recorded.reason)
    for name in ("Content-Type", "x-amzn-ErrorType"):
        assert header(ours.headers, name) == header(recorded.headers, name)
    assert header(ours.headers, "x-amzn-RequestId") is not None


def test_error_reproduces_the_recorded_400() -> None:
    recorded = recording("error-400-stream.yaml").response  # stored parsed: spacing differs
    message = json.loads(recorded.body)["message"]
    ours = error(400, message, "ValidationException")
    assert json.loads(ours.body) == json.loads(recorded.body)
    assert (ours.status, ours.reason) == (400, recorded.reason)
    assert header(ours.headers, "content-type") == header(recorded.headers, "content-type")


# --- the synthesizer has the recordings' shape ----------------------------------------


def test_synthesized_converse_stream_frames_look_like_the_recorded_ones() -> None:
    name = "converse-stream-eventstream.yaml"
    request = recording(name).request
    script = Script(
        text="Okay, let me use the tool.",
        tool_calls=(ToolCall("fetch_concept", '{"concept": "distributed tracing"}'),),
        seed=9,
    )
    ours = decode(synthesize(request, script).body)
    theirs = decode(recording(name).response.body)
    kinds = list(dict.fromkeys(e.event for e in theirs))
    assert list(dict.fromkeys(e.event for e in ours)) == kinds  # the same kinds, in order
    assert {tuple(headers(e)) for e in ours} == {tuple(headers(e)) for e in theirs}
    for kind in ("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop"):
        ours_keys = next(list(json.loads(e.data or "")) for e in ours if e.event == kind)
        theirs_keys = next(list(json.loads(e.data or "")) for e in theirs if e.event == kind)
        assert ours_keys == theirs_keys, kind  # sorted keys, p included
    alphabet = string.ascii_lowercase + string.ascii_uppercase + string.digits
    for event in (*ours, *theirs):
        padding = json.loads(event.data or "")["p"]
        assert padding and alphabet.startswith(padding)
    assert header(synthesize(request, script).headers, "content-type") == header(
        recording(name).response.headers, "content-type"
    )


def test_synthesized_converse_body_has_the_recorded_shape() -> None:
    name = "converse-nonstream.yaml"
    recorded = json.loads(recording(name).response.body)
    script = Script(
        text="Okay.", tool_calls=(ToolCall("fetch_concept", '{"concept": "x"}'),), seed=1
    )
    response = synthesize(recording(name).request, script)
    ours = json.loads(response.body)
    assert list(ours) == list(recorded)  # metrics, output, stopReason, usage: sorted
    assert [list(b) for b in ours["output"]["message"]["content"]] == [
        list(b) for b in recorded["output"]["message"]["content"]
    ]
    tool = ours["output"]["message"]["content"][1]["toolUse"]
    assert list(tool) == list(recorded["output"]["message"]["content"][1]["toolUse"])
    assert ours["stopReason"] == recorded["stopReason"] == "tool_use"
    assert response.body.startswith(b'{"metrics":{"latencyMs":')


def test_synthesized_invoke_chunks_look_like_the_recorded_ones() -> None:
    name = "invoke-with-response-stream-claude.yaml"
    response = synthesize(recording(name).request, Script(text="Hobbits destroy a ring.", seed=2))
    ours = [json.loads(e.data or "") for e in decode(response.body)]
    theirs = [json.loads(e.data or "") for e in decode(recording(name).response.body)]
    assert all(list(p) == ["bytes"] for p in ours + theirs)
    decoded = [json.loads(base64.b64decode(p["bytes"])) for p in ours]
    recorded = [json.loads(base64.b64decode(p["bytes"])) for p in theirs]
    kinds = list(dict.fromkeys(e["type"] for e in recorded))
    assert list(dict.fromkeys(e["type"] for e in decoded)) == kinds
    assert list(decoded[0]["message"]) == list(recorded[0]["message"])
    assert list(decoded[-1]["amazon-bedrock-invocationMetrics"]) == list(
        recorded[-1]["amazon-bedrock-invocationMetrics"]
    )
    for key in ("Content-Type", "X-Amzn-Bedrock-Content-Type"):
        assert header(response.headers, key) == header(recording(name).response.headers, key)
