"""The anthropic validator against every real Anthropic recording in the corpus.

Every recorded stream is a real Anthropic stream, so each must pass every rule; the table
says why each one is interesting (what a naive rule would have got wrong). The synthesizer
is held to the same recordings: its events have the shape of Anthropic's, key order
included, and error() reproduces Anthropic's error bodies.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects.anthropic.dialect import DIALECT, check, error, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script, ToolCall, header
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()

# (file, interaction index) -> the rule ids the validator must report: none, all real.
VERDICTS: dict[tuple[str, int], set[str]] = {
    # Prompt caching (cache_control on a user block): cache_read_input_tokens in both
    # message_start and message_delta; padding spaces inside the data JSON.
    ("anthropic/stream-cached-prompt-tokens.yaml", 0): set(),
    ("anthropic/stream-cached-prompt-tokens.yaml", 1): set(),
    # Thinking, a text block, a server_tool_use block with input_json_delta fragments (the
    # first one empty), a bash_code_execution_tool_result block with no delta at all, and a
    # message_delta carrying `container` and server_tool_use usage.
    ("anthropic/stream-code-execution.yaml", 0): set(),
    # claude-3-haiku (2024): the older key order (id first), usage with only input and
    # output tokens, message_delta usage with output_tokens only.
    ("anthropic/stream-legacy-async.yaml", 0): set(),
    # The newest shape: padded data lines, `{"type": "ping"}` with a space, message_delta
    # repeating input_tokens and cache_*; the `?beta=true` URI of the beta client.
    ("anthropic/stream-minimal-padded-data.yaml", 0): set(),
    # stop_reason max_tokens after 15 tokens; anthropic-ratelimit-* headers.
    ("anthropic/stream-ratelimit-headers.yaml", 0): set(),
    # Two redacted_thinking blocks (data, no delta), pings inside a block and between
    # blocks, then a text block.
    ("anthropic/stream-redacted-thinking.yaml", 0): set(),
    # Thinking signed by a signature_delta, server_tool_use web_fetch, a
    # web_fetch_tool_result block without deltas; a ping between two thinking deltas.
    ("anthropic/stream-server-tool-web-fetch.yaml", 0): set(),
    # A thinking block whose last thinking_delta is empty, before its signature_delta.
    ("anthropic/stream-thinking-pydantic.yaml", 0): set(),
    # The answer after a tool_result turn: one text block.
    ("anthropic/stream-tool-result-followup.yaml", 0): set(),
    # A text block, then tool_use with input_json_delta fragments joining to the input.
    ("anthropic/stream-tool-use-input-json-delta.yaml", 0): set(),
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def is_stream(exchange: Exchange) -> bool:
    return exchange.response.status == 200 and DIALECT.is_stream(exchange.request)


def test_every_anthropic_recording_is_served_by_the_anthropic_dialect() -> None:
    for path in sorted((ROOT / "anthropic").glob("*.yaml")):
        library = Library(load(path))
        assert library.unserved == (), path.name
        for entry in library.entries:
            assert entry.dialect is DIALECT, entry.source
            path_ = entry.exchange.request.path
            expected = "messages.count_tokens" if path_.endswith("/count_tokens") else "messages"
            assert entry.endpoint == expected, entry.source


def test_the_table_covers_every_anthropic_stream() -> None:
    found = {
        (path.relative_to(ROOT).as_posix(), index)
        for path in sorted((ROOT / "anthropic").glob("*.yaml"))
        for index, exchange in enumerate(exchanges(path.relative_to(ROOT).as_posix()))
        if is_stream(exchange)
    }
    assert found == set(VERDICTS)


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recorded_stream(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    assert is_stream(exchange)
    violations = check(exchange.request, SSE.events(exchange.response.body))
    assert {v.rule for v in violations} == VERDICTS[(name, index)], [str(v) for v in violations]
    assert check(None, SSE.events(exchange.response.body)) == violations


def test_the_recorded_401_for_a_stream_request_is_plain_json() -> None:
    (exchange,) = exchanges("anthropic/error-401-on-stream-request.yaml")
    assert DIALECT.is_stream(exchange.request) and not is_stream(exchange)
    assert header(exchange.response.headers, "content-type") == "application/json"


# --- error() against the recorded errors -----------------------------------------------

ERRORS = [
    "anthropic/error-400-effort.yaml",
    "anthropic/error-400-invalid-request.yaml",
    "anthropic/error-401-invalid-key.yaml",
    "anthropic/error-401-on-stream-request.yaml",
    "anthropic/error-404-count-tokens.yaml",
    "anthropic/error-404-model-not-found.yaml",
]


def test_error_reproduces_anthropics_newest_error_body_byte_for_byte() -> None:
    (real,) = exchanges("anthropic/error-401-on-stream-request.yaml")
    recorded = json.loads(real.response.body)
    ours = error(401, recorded["error"]["message"], recorded["error"]["type"])
    ours_id = json.loads(ours.body)["request_id"]
    assert ours.body == real.response.body.replace(
        recorded["request_id"].encode(), ours_id.encode()
    )
    assert (ours.status, ours.reason) == (real.response.status, real.response.reason)
    assert header(ours.headers, "request-id") == ours_id
    assert len(ours_id) == len(recorded["request_id"]) and ours_id[:8] == "req_011C"


@pytest.mark.parametrize("name", ERRORS)
def test_error_matches_every_recorded_error(name: str) -> None:
    (real,) = exchanges(name)
    recorded = json.loads(real.response.body)
    ours = json.loads(
        error(real.response.status, recorded["error"]["message"], recorded["error"]["type"]).body
    )
    # Older responses (2024) carry no request_id; newer ones do, and so does ours.
    assert {k: v for k, v in ours.items() if k != "request_id"} == {
        k: v for k, v in recorded.items() if k != "request_id"
    }
    assert error(real.response.status, "m", "k").reason == real.response.reason
    from mockserver.dialects.anthropic.dialect import default_error_kind

    assert default_error_kind(real.response.status) == recorded["error"]["type"]


# --- the synthesizer against the recordings --------------------------------------------


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type."""
    if isinstance(value, dict):
        return [(key, skeleton(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [skeleton(item) for item in value]
    return type(value).__name__


def shapes(body: bytes, kinds: tuple[str, ...] = ()) -> set[str]:
    return {
        json.dumps([e.event, skeleton(json.loads(e.data))])
        for e in SSE.events(body)
        if e.data and (not kinds or e.event in kinds)
    }


def test_a_synthesized_thinking_stream_has_the_shape_of_a_real_one() -> None:
    (real,) = exchanges("anthropic/stream-thinking-pydantic.yaml")
    ours = synthesize(real.request, Script(text="Look both ways, then cross."))
    assert check(real.request, SSE.events(ours.body)) == []
    assert shapes(ours.body) == shapes(real.response.body)
    assert header(ours.headers, "content-type") == header(real.response.headers, "content-type")


def test_a_synthesized_text_stream_has_the_shape_of_the_newest_real_one() -> None:
    (real,) = exchanges("anthropic/stream-minimal-padded-data.yaml")
    ours = synthesize(real.request, Script(text="2"))
    assert shapes(ours.body) == shapes(real.response.body)
    events = [e.event for e in SSE.events(ours.body)]
    assert events == [e.event for e in SSE.events(real.response.body)]


def test_synthesized_tool_blocks_have_the_shape_of_real_ones() -> None:
    (real,) = exchanges("anthropic/stream-tool-use-input-json-delta.yaml")
    call = ToolCall("get_weather", '{"location": "San Francisco, CA"}')
    ours = synthesize(real.request, Script(text="Let me check.", tool_calls=(call,), chunk_size=7))
    blocks = ("content_block_start", "content_block_delta", "content_block_stop")
    assert shapes(ours.body, blocks) == shapes(real.response.body, blocks)
    assert check(real.request, SSE.events(ours.body)) == []


def test_a_synthesized_body_has_the_keys_of_a_real_one() -> None:
    def keys(value: Any) -> Any:  # pydantic-ai stores parsed bodies with sorted keys
        if isinstance(value, dict):
            return sorted((key, keys(item)) for key, item in value.items())
        return [keys(item) for item in value] if isinstance(value, list) else type(value).__name__

    (real,) = exchanges("anthropic/nonstream-parsed-retry-after.yaml")
    ours = json.loads(synthesize(real.request, Script(text="Paris is lit.")).body)
    recorded = json.loads(real.response.body)
    recorded["usage"]["inference_geo"] = "not_available"  # newer responses add it
    assert keys(ours) == keys(recorded)
    (tools,) = exchanges("anthropic/nonstream-tools-gzip.yaml")
    tool_use = json.loads(tools.response.body)["content"][1]
    call = ToolCall(tool_use["name"], json.dumps(tool_use["input"]))
    ours = json.loads(synthesize(tools.request, Script(text="ok", tool_calls=(call,))).body)
    assert list(ours["content"][1]) == list(tool_use)
    assert ours["content"][1]["input"] == tool_use["input"]
    assert ours["stop_reason"] == "tool_use" == json.loads(tools.response.body)["stop_reason"]


def test_synthesized_streams_send_the_headers_a_real_stream_sends() -> None:
    (real, _) = exchanges("anthropic/stream-cached-prompt-tokens.yaml")

    def names(headers: tuple[tuple[str, str], ...]) -> set[str]:
        wanted = ("anthropic-ratelimit-", "request-id", "content-type", "cache-control")
        return {n.lower() for n, _ in headers if n.lower().startswith(wanted)}

    ours = synthesize(real.request, Script())
    assert names(ours.headers) == names(real.response.headers)


# --- identity on recorded requests -----------------------------------------------------


def test_identity_ignores_cache_control_of_a_recorded_request() -> None:
    (real, _) = exchanges("anthropic/stream-cached-prompt-tokens.yaml")
    body = json.loads(real.request.body)
    assert body["messages"][0]["content"][0].pop("cache_control") == {"type": "ephemeral"}
    assert identity(Request("POST", "/v1/messages", json=body)) == identity(real.request)


def test_a_recorded_stream_false_matches_a_request_that_leaves_it_out() -> None:
    (real,) = exchanges("anthropic/error-404-model-not-found.yaml")
    body = json.loads(real.request.body)
    assert body.pop("stream") is False and real.request.query == (("beta", "true"),)
    assert identity(Request("POST", "/v1/messages", json=body)) == identity(real.request)
