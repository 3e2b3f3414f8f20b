"""The anthropic dialect: every check rule caught on a stream that breaks only it, legal
variations that pass, synthesized answers that pass and say what the script said (thinking
and mid-stream errors by their documented conventions), the request identity, and
Anthropic's error shape."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve, sdk_environment
from mockserver.dialects._kit.wire import DEFAULT_TEXT
from mockserver.dialects.anthropic.dialect import (
    DIALECT,
    RULES,
    THINKING_TEXT,
    VOLATILE_FIELDS,
    check,
    error,
    estimate_input_tokens,
    identity,
    is_stream,
    synthesize,
)
from mockserver.framing.sse import SSE, decode
from mockserver.model import Request, Script, ToolCall, canonical_json, header

MESSAGES = [{"role": "user", "content": "Say hi"}]
PLAIN = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": MESSAGES, "stream": True}
THINK = {**PLAIN, "thinking": {"type": "enabled", "budget_tokens": 1024}}


def request(body: Any, path: str = "/v1/messages", query: Any = ()) -> Request:
    return Request("POST", path, query, body=json.dumps(body).encode(), json=body)


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def start(index: int, **block: Any) -> dict[str, Any]:
    return ev("content_block_start", index=index, content_block=block)


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return ev("content_block_delta", index=index, delta=fields)


def stop(index: int) -> dict[str, Any]:
    return ev("content_block_stop", index=index)


def ending(reason: Any = "end_turn", output: int = 7, **usage: Any) -> dict[str, Any]:
    return ev(
        "message_delta",
        delta={"stop_reason": reason, "stop_sequence": None},
        usage={"output_tokens": output, **usage},
    )


def opening(output: int = 1) -> dict[str, Any]:
    message = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude"}
    message.update(content=[], stop_reason=None, stop_sequence=None)
    return ev(
        "message_start", message={**message, "usage": {"input_tokens": 5, "output_tokens": output}}
    )


PING = ev("ping")
END = ev("message_stop")
OVERLOADED = ev("error", error={"type": "overloaded_error", "message": "Overloaded"})


def sse(*items: dict[str, Any] | str) -> bytes:
    """Events with their ``event:`` line; strings are raw blocks (comments, oddities)."""
    return "".join(
        i if isinstance(i, str) else f"event: {i['type']}\ndata: {json.dumps(i)}\n\n" for i in items
    ).encode()


def bare(item: dict[str, Any], name: str | None = None) -> str:
    """An event with no ``event:`` line, or with the given name."""
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(item)}\n\n"


TEXT: list[dict[str, Any]] = [
    opening(),
    start(0, type="text", text=""),
    PING,
    delta(0, type="text_delta", text="Hi"),
    delta(0, type="text_delta", text=" there"),
    stop(0),
    ending(),
    END,
]


def tool(*fragments: str) -> list[dict[str, Any]]:
    return [
        opening(),
        start(0, type="tool_use", id="toolu_01", name="get_weather", input={}),
        *(delta(0, type="input_json_delta", partial_json=f) for f in fragments),
        stop(0),
        ending("tool_use"),
        END,
    ]


def thinking(signed: bool = True) -> list[dict[str, Any]]:
    signature = [delta(0, type="signature_delta", signature="EqQB")] if signed else []
    return [
        opening(),
        start(0, type="thinking", thinking="", signature=""),
        delta(0, type="thinking_delta", thinking="Hmm."),
        *signature,
        stop(0),
        start(1, type="text", text=""),
        delta(1, type="text_delta", text="Hi"),
        stop(1),
        ending(),
        END,
    ]


def text_at(index: int) -> list[dict[str, Any]]:
    return [
        start(index, type="text", text=""),
        delta(index, type="text_delta", text="x"),
        stop(index),
    ]


def rules(body: bytes) -> set[str]:
    return {v.rule for v in check(None, SSE.events(body))}


# --- one broken stream per rule --------------------------------------------------------

_T = TEXT
BROKEN: dict[str, bytes] = {
    "event-name-missing": sse(*_T[:3], bare(_T[3]), *_T[4:]),
    "event-name-mismatch": sse(*_T[:3], bare(_T[3], "text_delta"), *_T[4:]),
    "data-not-json": sse(*_T[:3], "event: content_block_delta\ndata: {oops\n\n", *_T[3:]),
    "event-shape": sse(*_T[:4], delta(0, type="text_delta", value="!"), *_T[5:]),
    "message-start-not-first": sse(_T[0], *_T),
    "ping-outside-message": sse(PING, *_T),
    "block-index-not-contiguous": sse(_T[0], *text_at(1), *_T[6:]),
    "block-not-open": sse(*_T[:4], delta(1, type="text_delta", text="?"), *_T[4:]),
    "block-not-stopped": sse(*_T[:5], *_T[6:]),
    "block-after-message-delta": sse(*_T[:7], *text_at(1), END),
    "delta-type-mismatch": sse(*_T[:4], delta(0, type="thinking_delta", thinking="?"), *_T[4:]),
    "tool-input-invalid": sse(*tool("", '{"city":', ' "Paris"')),
    "signature-missing": sse(*thinking(signed=False)),
    "stop-reason-missing": sse(*_T[:6], ending(None), END),
    "message-delta-repeated": sse(*_T[:7], _T[6], END),
    "usage-missing": sse(*_T[:6], ev("message_delta", delta={"stop_reason": "end_turn"}), END),
    "output-tokens-decreased": sse(opening(output=9), *_T[1:]),
    "message-stop-missing": sse(*_T[:7]),
    "event-after-message-stop": sse(*_T, delta(0, type="text_delta", text="late")),
    "event-after-error": sse(*_T[:4], OVERLOADED, _T[4]),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    violations = check(request(PLAIN), SSE.events(BROKEN[rule]))
    assert [v.rule for v in violations] == [rule], [str(v) for v in violations]
    (violation,) = violations
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


def test_the_bases_of_the_broken_streams_pass() -> None:
    assert rules(sse(*TEXT)) == set()
    assert rules(sse(*tool("", '{"city":', ' "Paris"}'))) == set()
    assert rules(sse(*thinking())) == set()


def test_violations_point_at_the_event_that_broke_the_rule() -> None:
    (late,) = check(None, SSE.events(BROKEN["event-after-message-stop"]))
    assert late.index == 8 and "after event 7" in late.message
    (missing,) = check(None, SSE.events(BROKEN["message-stop-missing"]))
    assert missing.index == -1 and str(missing).startswith("message-stop-missing at stream:")
    (unstopped,) = check(None, SSE.events(BROKEN["block-not-stopped"]))
    assert unstopped.index == 5 and "block 0 (started at event 1)" in unstopped.message


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    body = "".join(bare(i) for i in TEXT if isinstance(i, dict)).encode()
    (violation,) = check(None, SSE.events(body))
    assert violation.rule == "event-name-missing" and violation.index == 0
    assert "(7 more like it, the last at event 7)" in violation.message


def test_a_stream_cut_mid_block_reports_each_missing_part() -> None:
    assert rules(sse(*TEXT[:4])) == {
        "block-not-stopped",
        "stop-reason-missing",
        "message-stop-missing",
    }
    assert rules(b": keep-alive\n\n") == {"message-start-not-first", "message-stop-missing"}


def test_an_error_event_without_data_still_ends_the_stream() -> None:
    (violation,) = check(None, SSE.events(sse(*TEXT[:4], "event: error\n\n")))
    assert violation.rule == "data-not-json" and violation.index == 4
    assert "event: error alone" in violation.message  # and no message-stop-missing
    assert rules(sse(*TEXT[:4], "event: error\n\n", *TEXT[4:])) == {
        "data-not-json",
        "event-after-error",
    }


def test_block_rules_name_the_blocks() -> None:
    gap = check(None, SSE.events(sse(TEXT[0], *text_at(0), *text_at(2), *TEXT[6:])))
    assert [str(v) for v in gap] == [
        "block-index-not-contiguous at event 4: expected index 1, found index 2."
    ]
    mismatch = check(None, SSE.events(BROKEN["delta-type-mismatch"]))
    assert "a delta fit for a text block, found thinking_delta" in mismatch[0].message
    interleaved = sse(TEXT[0], start(0, type="text"), *text_at(1), *TEXT[6:])
    assert [str(v) for v in check(None, SSE.events(interleaved))] == [
        "block-not-stopped at event 2: expected content_block_stop for block 0 (started at "
        "event 1), found block 1 starts first."
    ]


def test_input_json_delta_fits_any_tool_use_block_and_nothing_else() -> None:
    for kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        body = sse(*tool('{"q": 1}')).replace(b'"tool_use", "id"', f'"{kind}", "id"'.encode())
        assert rules(body) == set(), kind
    text = sse(*TEXT[:4], delta(0, type="input_json_delta", partial_json="{}"), *TEXT[4:])
    assert rules(text) == {"delta-type-mismatch"}


# --- legal variations ------------------------------------------------------------------

PADDED = (
    sse(*TEXT)
    .replace(b"}\n\n", b"}        \n\n")
    .replace(b'data: {"type": "ping"}        ', b'data: {"type": "ping"}')
)
LEGAL: dict[str, bytes] = {
    "padding inside the data JSON (real Anthropic)": PADDED,
    "CRLF separators": sse(*TEXT).replace(b"\n", b"\r\n"),
    "comment keep-alives": sse(TEXT[0], ": keep-alive\n\n", *TEXT[1:], ": bye\n\n"),
    "pings anywhere in the message": sse(
        TEXT[0], PING, *TEXT[1:4], PING, *TEXT[4:6], PING, PING, *TEXT[6:]
    ),
    "a ping without data": sse(*TEXT[:2], "event: ping\n\n", *TEXT[3:]),
    "a block without deltas": sse(
        TEXT[0], start(0, type="redacted_thinking", data="EqkE"), stop(0), *text_at(1), *TEXT[6:]
    ),
    "server tool use and its result block": sse(
        TEXT[0],
        start(0, type="server_tool_use", id="srvtoolu_1", name="web_fetch", input={}),
        delta(0, type="input_json_delta", partial_json=""),
        delta(0, type="input_json_delta", partial_json='{"url": "https://a.b"}'),
        stop(0),
        start(1, type="web_fetch_tool_result", tool_use_id="srvtoolu_1", content={}),
        stop(1),
        *TEXT[6:],
    ),
    "tool input from empty fragments only": sse(*tool("", "")),
    "tool input with no fragment at all": sse(*tool()),
    "a citations delta in a text block": sse(
        *TEXT[:4], delta(0, type="citations_delta", citation={"type": "char_location"}), *TEXT[4:]
    ),
    "unknown event and delta types (versioning policy)": sse(
        *TEXT[:4],
        ev("future_event", x=1),
        delta(0, type="future_delta", y=2),
        *TEXT[4:],
    ),
    "a thinking block signed in its start": sse(
        TEXT[0],
        start(0, type="thinking", thinking="Hmm.", signature="EqQB"),
        stop(0),
        *text_at(1),
        *TEXT[6:],
    ),
    "an empty thinking delta before the signature": sse(
        *thinking()[:3], delta(0, type="thinking_delta", thinking=""), *thinking()[3:]
    ),
    "message_delta repeating input and cache usage (newer API)": sse(
        *TEXT[:6], ending(cache_read_input_tokens=0, input_tokens=5), END
    ),
    "an error as the very first event": sse(OVERLOADED),
    "a mid-stream error ending the stream": sse(*TEXT[:4], OVERLOADED),
    "an error after a ping without data": sse(*TEXT[:4], "event: ping\n\n", OVERLOADED),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    body = LEGAL[name]
    assert check(request(PLAIN), SSE.events(body)) == []
    assert check(None, decode(body)) == []


def test_the_padded_and_crlf_variants_really_differ_from_the_plain_stream() -> None:
    assert b'"index": 0}        \n\n' in PADDED and b'{"type": "ping"}\n' in PADDED
    assert b"\r\n\r\n" in LEGAL["CRLF separators"]
    assert [e.data for e in decode(LEGAL["CRLF separators"])] == [
        e.data for e in decode(sse(*TEXT))
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 9) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# --- synthesize ------------------------------------------------------------------------

arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=3).flatmap(
    lambda d: st.sampled_from([json.dumps(d), json.dumps(d, ensure_ascii=False)])
)
tool_calls = st.lists(
    st.builds(ToolCall, name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True), arguments=arguments),
    max_size=3,
).map(tuple)
texts = st.none() | st.text(max_size=30) | st.sampled_from(["", "héllo 👋🏽 wörld", "日本語"])
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "max_tokens", "length", "refusal"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)


def expected_text(script: Script) -> str | None:
    return DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text


def expected_reason(script: Script) -> str:
    reason = script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")
    return {"length": "max_tokens"}.get(reason, reason)


def expected_output(script: Script, thought: bool) -> int:
    size = script.chunk_size
    parts = math.ceil(len(expected_text(script) or "") / size)
    parts += sum(math.ceil(len(c.arguments) / size) for c in script.tool_calls)
    return max(1, parts + (math.ceil(len(THINKING_TEXT) / size) if thought else 0))


def payloads_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in decode(body) if e.data]


def reassemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client builds from the stream: the blocks, the stop reason, the usage."""
    message = copy.deepcopy(events[0]["message"])
    inputs: dict[int, str] = {}
    for event in events[1:]:
        if event["type"] == "content_block_start":
            message["content"].append(copy.deepcopy(event["content_block"]))
        elif event["type"] == "content_block_delta":
            block, d = message["content"][event["index"]], event["delta"]
            if d["type"] == "text_delta":
                block["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                block["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                block["signature"] = d["signature"]
            elif d["type"] == "input_json_delta":
                inputs[event["index"]] = inputs.get(event["index"], "") + d["partial_json"]
        elif event["type"] == "message_delta":
            message.update(event["delta"])
            message["usage"].update(event["usage"])
    for index, text in inputs.items():
        message["content"][index]["input"] = json.loads(text)
    return message


def expected_blocks(script: Script, thought: bool) -> list[tuple[str, Any]]:
    blocks: list[tuple[str, Any]] = [("thinking", THINKING_TEXT)] if thought else []
    if expected_text(script) is not None:
        blocks.append(("text", expected_text(script)))
    return blocks + [(c.name, json.loads(c.arguments)) for c in script.tool_calls]


def summary(message: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for block in message["content"]:
        if block["type"] == "tool_use":
            out.append((block["name"], block["input"]))
        else:
            out.append((block["type"], block[block["type"]]))
    return out


@given(scripts, st.booleans())
def test_synthesized_streams_pass_every_rule_and_carry_the_script(
    script: Script, thought: bool
) -> None:
    req = request(THINK if thought else PLAIN)
    response = synthesize(req, script)
    assert response.status == 200 and response.reason == "OK"
    assert header(response.headers, "content-type") == "text/event-stream; charset=utf-8"
    assert check(req, SSE.events(response.body)) == []
    for frame in SSE.frames(response.body):
        frame.decode("utf-8")  # strict: every event is whole UTF-8
    message = reassemble(payloads_of(response.body))
    assert summary(message) == expected_blocks(script, thought)
    assert message["stop_reason"] == expected_reason(script)
    assert message["usage"]["output_tokens"] == expected_output(script, thought)
    estimate = estimate_input_tokens(req.json)
    want = script.prompt_tokens if script.prompt_tokens is not None else estimate
    assert message["usage"]["input_tokens"] == want
    tool_ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert all(i.startswith("toolu_01") and len(i) == 30 for i in tool_ids)
    assert len(set(tool_ids)) == len(tool_ids)
    for block in message["content"]:
        if block["type"] == "thinking":
            assert block["signature"].startswith("E") and len(block["signature"]) > 100


@given(scripts, st.booleans())
def test_synthesized_bodies_carry_the_script(script: Script, thought: bool) -> None:
    body = {k: v for k, v in (THINK if thought else PLAIN).items() if k != "stream"}
    response = synthesize(request(body), script)
    assert header(response.headers, "content-type") == "application/json"
    message = json.loads(response.body)
    assert (message["type"], message["role"], message["model"]) == (
        "message",
        "assistant",
        "claude-sonnet-4-5",
    )
    assert summary(message) == expected_blocks(script, thought)
    assert message["stop_reason"] == expected_reason(script)
    assert message["usage"]["output_tokens"] == expected_output(script, thought)
    streamed = reassemble(payloads_of(synthesize(request({**body, "stream": True}), script).body))
    assert streamed["content"] == message["content"]  # same ids, same signature
    assert streamed["usage"]["output_tokens"] == message["usage"]["output_tokens"]


@given(scripts, st.integers(0, 2**32), st.booleans())
def test_a_different_seed_gives_a_different_id(script: Script, other: int, stream: bool) -> None:
    assume(other != script.seed)
    req = request({**PLAIN, "stream": stream})

    def message_id(seed: int) -> str:
        body = synthesize(req, Script(text=script.text, seed=seed)).body
        value: str = payloads_of(body)[0]["message"]["id"] if stream else json.loads(body)["id"]
        return value

    ids = {message_id(script.seed), message_id(other)}
    assert len(ids) == 2 and all(i.startswith("msg_01") and len(i) == 28 for i in ids)


# --- synthesize: Anthropic's exact order, conventions, headers, errors ----------------


def test_a_text_stream_follows_anthropics_order_exactly() -> None:
    body = synthesize(request(PLAIN), Script(text="Hello", chunk_size=3, seed=7)).body
    items = payloads_of(body)
    assert [i["type"] for i in items] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = items[0]["message"]
    assert list(message) == [
        "model",
        "id",
        "type",
        "role",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    ]
    assert message["usage"]["output_tokens"] == 1 and message["content"] == []
    assert [i["delta"] for i in items[3:5]] == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    assert items[6]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert items[6]["usage"]["output_tokens"] == 2
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in body
    assert body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert all(e.event == json.loads(e.data or "{}").get("type") for e in decode(body))


def test_tool_calls_open_with_an_empty_fragment_after_the_text() -> None:
    calls = (ToolCall("get_capital", '{"country":"UK"}'), ToolCall("noop", "{}", id="toolu_given"))
    items = payloads_of(
        synthesize(request(PLAIN), Script(text="", tool_calls=calls, chunk_size=8)).body
    )
    starts = [i["content_block"] for i in items if i["type"] == "content_block_start"]
    assert starts[0] == {"type": "text", "text": ""}
    assert starts[1]["type"] == "tool_use" and starts[1]["input"] == {}
    assert starts[2] == {"type": "tool_use", "id": "toolu_given", "name": "noop", "input": {}}
    fragments = [i["delta"]["partial_json"] for i in items if i.get("index") == 1 and "delta" in i]
    assert fragments == ["", '{"countr', 'y":"UK"}']
    assert items[-2]["delta"]["stop_reason"] == "tool_use"


def test_thinking_comes_first_when_asked_and_is_signed_deterministically() -> None:
    one = payloads_of(synthesize(request(THINK), Script(text="Hi", seed=1)).body)
    again = payloads_of(synthesize(request(THINK), Script(text="Hi", seed=1)).body)
    other = payloads_of(synthesize(request(THINK), Script(text="Hi", seed=2)).body)
    assert one[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    signatures = [
        i["delta"]["signature"]
        for items in (one, again, other)
        for i in items
        if i.get("delta", {}).get("type") == "signature_delta"
    ]
    assert signatures[0] == signatures[1] != signatures[2]
    adaptive = request({**PLAIN, "thinking": {"type": "adaptive"}})
    assert "thinking" in str(payloads_of(synthesize(adaptive, Script()).body)[1])
    disabled = request({**PLAIN, "thinking": {"type": "disabled"}})
    assert payloads_of(synthesize(disabled, Script()).body)[1]["content_block"]["type"] == "text"


def test_a_status_200_script_with_an_error_kind_fails_mid_stream() -> None:
    script = Script(
        text="abcdefghijkl", chunk_size=2, error_kind="overloaded_error", error_message="Overloaded"
    )
    response = synthesize(request(PLAIN), script)
    events = decode(response.body)
    assert response.status == 200
    assert events[-1].event == "error"
    assert json.loads(events[-1].data or "") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert 2 < len(events) < 10 and events[0].event == "message_start"
    assert not any(e.event in ("message_delta", "message_stop") for e in events)
    assert check(request(PLAIN), events) == []
    no_stream = synthesize(request({**PLAIN, "stream": False}), script)
    assert json.loads(no_stream.body)["content"][0]["text"] == "abcdefghijkl"


@pytest.mark.parametrize(
    ("given_reason", "wire"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("pause_turn", "pause_turn"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(given_reason: str, wire: str) -> None:
    body = json.loads(synthesize(request({}), Script(finish_reason=given_reason)).body)
    assert body["stop_reason"] == wire and body["stop_sequence"] is None


def test_a_stop_sequence_stop_names_the_first_requested_sequence() -> None:
    body = {**PLAIN, "stream": False, "stop_sequences": ["END", "STOP"]}
    reply = json.loads(synthesize(request(body), Script(finish_reason="stop_sequence")).body)
    assert (reply["stop_reason"], reply["stop_sequence"]) == ("stop_sequence", "END")
    empty = {**body, "stop_sequences": []}
    reply = json.loads(synthesize(request(empty), Script(finish_reason="stop_sequence")).body)
    assert reply["stop_sequence"] is None


def test_count_tokens_answers_the_input_tokens_a_message_would_use() -> None:
    body = {"model": "claude-sonnet-4-5", "messages": MESSAGES, "system": "Be brief."}
    counted = synthesize(request(body, "/v1/messages/count_tokens"), Script())
    assert counted.status == 200 and counted.reason == "OK"
    assert header(counted.headers, "content-type") == "application/json"
    tokens = json.loads(counted.body)
    assert tokens == {
        "input_tokens": max(1, math.ceil(len(canonical_json(["Be brief.", MESSAGES, None])) / 4))
    }
    message = json.loads(synthesize(request({**body, "max_tokens": 9}), Script()).body)
    assert message["usage"]["input_tokens"] == tokens["input_tokens"]
    scripted = synthesize(request(body, "/v1/messages/count_tokens"), Script(prompt_tokens=42))
    assert json.loads(scripted.body) == {"input_tokens": 42}


def test_success_headers_look_like_anthropics_and_script_headers_win() -> None:
    response = synthesize(
        request(PLAIN), Script(headers=(("request-id", "req_mine"), ("x-extra", "1")))
    )
    names = [name for name, _ in response.headers]
    assert names[:2] == ["content-type", "cache-control"]
    assert {n for n in names if n.startswith("anthropic-ratelimit-")} == {
        f"anthropic-ratelimit-{kind}-{what}"
        for kind in ("tokens", "input-tokens", "output-tokens")
        for what in ("limit", "remaining", "reset")
    }
    reset = header(response.headers, "anthropic-ratelimit-tokens-reset") or ""
    assert len(reset) == 20 and reset[10] == "T" and reset.endswith("Z")  # RFC 3339
    assert names.count("request-id") == 1 and response.headers[-2:] == (
        ("request-id", "req_mine"),
        ("x-extra", "1"),
    )
    plain = synthesize(request({**PLAIN, "stream": False}), Script(seed=3))
    assert header(plain.headers, "cache-control") is None
    rid = header(plain.headers, "request-id") or ""
    assert rid.startswith("req_011C") and len(rid) == 28


def test_a_scripted_error_is_anthropics_error() -> None:
    response = synthesize(request(PLAIN), Script(status=529, error_message="Overloaded"))
    assert (response.status, response.reason) == (529, "")
    body = json.loads(response.body)
    assert body["type"] == "error" and body["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    assert header(response.headers, "request-id") == body["request_id"]
    assert header(response.headers, "x-should-retry") is None  # a 529 may be retried
    bad = synthesize(request(PLAIN), Script(status=401, error_message="invalid x-api-key"))
    assert json.loads(bad.body)["error"]["type"] == "authentication_error"
    assert header(bad.headers, "x-should-retry") == "false"


def test_a_scripted_429_says_when_to_retry() -> None:
    script = Script(status=429, error_message="Rate limited.", headers=(("retry-after", "3"),))
    response = synthesize(request(PLAIN), script)
    assert json.loads(response.body)["error"]["type"] == "rate_limit_error"
    assert [v for k, v in response.headers if k == "retry-after"] == ["3"]
    assert header(response.headers, "anthropic-ratelimit-tokens-remaining") == "0"
    assert header(response.headers, "x-should-retry") is None


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (400, "invalid_request_error", "Bad Request"),
        (401, "authentication_error", "Unauthorized"),
        (403, "permission_error", "Forbidden"),
        (404, "not_found_error", "Not Found"),
        (413, "request_too_large", "Request Entity Too Large"),
        (429, "rate_limit_error", "Too Many Requests"),
        (500, "api_error", "Internal Server Error"),
        (529, "overloaded_error", ""),
    ],
)
def test_error_shape_and_the_default_kind_per_status(status: int, kind: str, reason: str) -> None:
    from mockserver.dialects.anthropic.dialect import default_error_kind

    assert default_error_kind(status) == kind
    response = error(status, "Something went wrong.", kind)
    assert (response.status, response.reason) == (status, reason)
    body = json.loads(response.body)
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": "Something went wrong."},
        "request_id": header(response.headers, "request-id"),
    }
    assert header(response.headers, "content-type") == "application/json"
    assert default_error_kind(503) == "api_error" and default_error_kind(418).startswith("inv")


def test_error_is_compact_and_its_request_id_is_deterministic() -> None:
    body = error(400, "café <x>", "invalid_request_error").body
    assert body.startswith(b'{"type":"error","error":{"type":"invalid_request_error",')
    assert "café <x>".encode() in body
    assert error(400, "a", "x") == error(400, "a", "x") != error(400, "b", "x")
    assert json.loads(error(400, "a\ud800", "x").body)["error"]["message"] == "a\ud800"


# --- identity, routes ------------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    one = json.loads('{"model": "m", "max_tokens": 10, "messages": [], "temperature": 0}')
    two = json.loads('{"temperature":0.0,"messages":[],"max_tokens":10.0,"model":"m"}')
    assert identity(request(one)) == identity(request(two))
    assert identity(request({**one, "temperature": 0.5})) != identity(request(one))


def _cached(value: dict[str, Any]) -> dict[str, Any]:
    return {**value, "cache_control": {"type": "ephemeral"}}


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    text = {"type": "text", "text": "Be brief."}
    base = {
        "model": "m",
        "max_tokens": 10,
        "system": [text],
        "messages": [{"role": "user", "content": [text]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    changed = copy.deepcopy(base)
    if field == "metadata":
        changed["metadata"] = {"user_id": "u-123"}
    elif field.startswith("system"):
        changed["system"] = [_cached(text)]
    elif field.startswith("messages"):
        changed["messages"][0]["content"] = [_cached(text)]
    else:
        changed["tools"] = [_cached(base["tools"][0])]
    assert changed != base
    assert identity(request(changed)) == identity(request(base))


def test_defaults_spelled_out_match_defaults_left_out() -> None:
    base = {"model": "m", "max_tokens": 10, "messages": MESSAGES, "system": "Be brief."}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    same = [
        {**base, "stream": False},
        {**base, "tool_choice": {"type": "auto"}},
        {**base, "thinking": {"type": "disabled"}},
        {**base, "system": [{"type": "text", "text": "Be brief."}]},
        {**base, "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]},
    ]
    assert {identity(request(body)) for body in same} == {identity(request(base))}
    results = [
        {**base, "messages": [{"role": "user", "content": [r]}]}
        for r in (result, {**result, "content": [{"type": "text", "text": "sunny"}]})
    ]
    assert identity(request(results[0])) == identity(request(results[1]))
    different = [
        {**base, "stream": True},
        {**base, "max_tokens": 11},
        {**base, "tool_choice": {"type": "any"}},
        {**base, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {**base, "system": "Be long."},
        {**base, "messages": [{"role": "user", "content": "Say bye"}]},
        {**base, "model": "m2"},
    ]
    identities = {identity(request(body)) for body in [base, *different]}
    assert len(identities) == 1 + len(different)


@given(
    st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=8)), max_size=4),
    st.text(max_size=8),
    st.randoms(use_true_random=False),
)
def test_identity_is_the_same_for_every_spelling_of_a_request(
    turns: list[tuple[str, str]], system: str, rng: Any
) -> None:
    def spell(text: str) -> Any:
        block = {"type": "text", "text": text}
        if rng.random() < 0.3:
            block["cache_control"] = {"type": "ephemeral"}
        return rng.choice([text, [block]])

    def body() -> dict[str, Any]:
        fields: list[tuple[str, Any]] = [
            ("model", "m"),
            ("max_tokens", rng.choice([64, 64.0])),
            ("system", spell(system)),
            ("messages", [{"content": spell(t), "role": r} for r, t in turns]),
            *([("stream", False)] if rng.random() < 0.5 else []),
            *([("metadata", {"user_id": str(rng.random())})] if rng.random() < 0.5 else []),
        ]
        rng.shuffle(fields)
        return dict(fields)

    assert identity(request(body())) == identity(request(body()))
    other = {**body(), "system": [{"type": "text", "text": system + "!"}]}
    assert identity(request(other)) != identity(request(body()))


def test_the_beta_query_and_the_auth_headers_do_not_change_identity() -> None:
    beta = Request(
        "POST",
        "/v1/messages",
        (("beta", "true"),),
        (("authorization", "Bearer a"), ("anthropic-beta", "x")),
        json=PLAIN,
    )
    assert identity(beta) == identity(request(PLAIN))


def test_identity_of_a_body_that_is_not_an_object() -> None:
    assert identity(request([1, 2])) == (("body", json.dumps("[1,2]")),)
    raw = Request("POST", "/v1/messages", body=b"not json")
    assert identity(raw) == (("body", '"not json"'),)
    hash(identity(raw))


def test_is_stream() -> None:
    assert is_stream(request(PLAIN))
    assert not is_stream(request({**PLAIN, "stream": False}))
    assert not is_stream(request({**PLAIN, "stream": "true"}))
    assert not is_stream(request([PLAIN]))


def test_the_dialect_is_registered_and_routed() -> None:
    assert DIALECTS["anthropic"] is DIALECT
    assert (DIALECT.framing, DIALECT.base_path) == (SSE, "")
    for path, endpoint in [
        ("/v1/messages", "messages"),
        ("/v1/messages/", "messages"),
        ("/v1/messages/count_tokens", "messages.count_tokens"),
        ("/anthropic/v1/messages", "messages"),
        ("/anthropic/v1/messages/count_tokens", "messages.count_tokens"),
    ]:
        match = resolve("POST", path)
        assert match is not None and match.dialect is DIALECT, path
        assert match.route.endpoint == endpoint, path
    assert resolve("GET", "/v1/messages") is None
    environment = sdk_environment("http://127.0.0.1:9")
    assert environment["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert environment["ANTHROPIC_API_KEY"]
    assert DIALECT.check is check and DIALECT.synthesize is synthesize and DIALECT.error is error
