"""The bedrock dialect: one broken stream per rule, the legal variations, the synthesizer's
answers (held to every rule and to the script), identity, errors and routing."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects.bedrock.dialect import (
    DIALECT,
    RULES,
    VOLATILE_FIELDS,
    check,
    error,
    identity,
    is_stream,
    route,
    split_thinking,
    synthesize,
)
from mockserver.framing.aws_eventstream import AWS_EVENTSTREAM, decode, encode, headers
from mockserver.model import Event, Request, Script, ToolCall, canonical_json

CLAUDE = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hi"}]}]
CONVERSE = {"messages": MESSAGES}
NATIVE = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MESSAGES}


def request(endpoint: str, body: Any = None, model: str = CLAUDE) -> Request:
    body = (NATIVE if endpoint.startswith("invoke") else CONVERSE) if body is None else body
    return Request("POST", f"{model}/{endpoint}", body=json.dumps(body).encode(), json=body)


STREAM = request("converse-stream")
INVOKE_STREAM = request("invoke-with-response-stream")


def event(name: str, **payload: Any) -> bytes:
    pairs = [(":event-type", name), (":content-type", "application/json")]
    return encode([*pairs, (":message-type", "event")], json.dumps(payload).encode())


def exception(name: str, message: str = "Something went wrong.") -> bytes:
    pairs = [(":exception-type", name), (":content-type", "application/json")]
    return encode(
        [*pairs, (":message-type", "exception")], json.dumps({"message": message}).encode()
    )


def delta(n: int, **member: Any) -> bytes:
    return event("contentBlockDelta", contentBlockIndex=n, delta=member, p="abc")


def usage(i: int = 5, o: int = 3, t: int | None = None, **cache: int) -> dict[str, Any]:
    return {"inputTokens": i, "outputTokens": o, "totalTokens": i + o if t is None else t, **cache}


START = event("messageStart", role="assistant", p="ab")
STOP0 = event("contentBlockStop", contentBlockIndex=0)
END_TURN = event("messageStop", stopReason="end_turn")
METADATA = event("metadata", usage=usage(), metrics={"latencyMs": 120})
TEXT = [START, delta(0, text="Hel"), delta(0, text="lo"), STOP0, END_TURN, METADATA]
TOOL_START = event(
    "contentBlockStart",
    contentBlockIndex=1,
    start={"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}},
)


def tool_stream(*fragments: str) -> list[bytes]:
    return [
        START,
        delta(0, text="Let me see."),
        STOP0,
        TOOL_START,
        *(delta(1, toolUse={"input": f}) for f in fragments),
        event("contentBlockStop", contentBlockIndex=1),
        event("messageStop", stopReason="tool_use"),
        METADATA,
    ]


def chunk(value: Any, raw: str | None = None) -> bytes:
    data = base64.b64encode(json.dumps(value).encode()).decode() if raw is None else raw
    return event("chunk", bytes=data)


METRICS = {
    "inputTokenCount": 5,
    "outputTokenCount": 2,
    "invocationLatency": 900,
    "firstByteLatency": 300,
}
ANTHROPIC: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": METRICS},
]
INVOKE = [chunk(e) for e in ANTHROPIC]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]


def rules(frames: list[bytes] | bytes, req: Request | None = STREAM) -> set[str]:
    body = frames if isinstance(frames, bytes) else b"".join(frames)
    return {v.rule for v in check(req, AWS_EVENTSTREAM.events(body))}


def sealed(block: bytes, payload: bytes = b"{}", total: int | None = None) -> bytes:
    """A frame around a raw header block, CRCs right, lengths as given."""
    total = 16 + len(block) + len(payload) if total is None else total
    prelude = struct.pack(">II", total, len(block))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + block + payload
    return head + struct.pack(">I", zlib.crc32(head))


BAD_HEADERS = sealed(b"\x0d:message-type\x07\x00\x09event")  # 9 bytes said, 5 there
BAD_LENGTHS = sealed(b"\0" * 40, b"", total=16)  # 16 bytes cannot hold 40 of headers


_tool = tool_stream('{"city":', ' "Paris"}')
BROKEN: dict[str, tuple[Request, list[bytes] | bytes]] = {
    "frame-truncated": (STREAM, b"".join(TEXT)[:-3]),
    "prelude-crc": (STREAM, [*TEXT[:2], flip(TEXT[2], 1), *TEXT[3:]]),
    "prelude-length": (STREAM, [*TEXT[:2], BAD_LENGTHS, *TEXT[2:]]),
    "message-crc": (STREAM, [*TEXT[:2], flip(TEXT[2], len(TEXT[2]) - 8), *TEXT[3:]]),
    "headers-malformed": (STREAM, [*TEXT[:2], BAD_HEADERS, *TEXT[2:]]),
    "message-type": (
        STREAM,
        [*TEXT[:2], encode([(":event-type", "ping"), (":message-type", "ping")], b"{}"), *TEXT[2:]],
    ),
    "payload-not-json": (
        STREAM,
        [
            *TEXT[:2],
            encode([(":event-type", "contentBlockDelta"), (":message-type", "event")], b"{oops"),
            *TEXT[2:],
        ],
    ),
    "event-type-unknown": (STREAM, [*TEXT[:2], event("keepAlive"), *TEXT[2:]]),
    "event-after-exception": (STREAM, [*TEXT[:2], exception("throttlingException"), *TEXT[2:]]),
    "message-start-first": (STREAM, TEXT[1:]),
    "block-index-invalid": (
        STREAM,
        [
            *TEXT[:2],
            event("contentBlockDelta", contentBlockIndex="0", delta={"text": "!"}),
            *TEXT[2:],
        ],
    ),
    "block-order": (STREAM, [*TEXT[:4], delta(0, text="?"), *TEXT[4:]]),
    "block-start-invalid": (
        STREAM,
        [
            *TEXT[:2],
            event("contentBlockStart", contentBlockIndex=0, start={"toolUse": {}}),
            *TEXT[2:],
        ],
    ),
    "delta-invalid": (STREAM, [*TEXT[:2], delta(0, text=5), *TEXT[2:]]),
    "delta-kind-mismatch": (
        STREAM,
        [*TEXT[:2], delta(0, reasoningContent={"text": "hm"}), *TEXT[2:]],
    ),
    "tool-input-invalid": (STREAM, tool_stream('{"city":', ' "Paris"')),
    "block-not-stopped": (STREAM, [*TEXT[:3], *TEXT[4:]]),
    "message-stop-once": (STREAM, [*TEXT[:5], END_TURN, TEXT[5]]),
    "stop-reason-invalid": (STREAM, [*TEXT[:4], event("messageStop", stopReason="stop"), TEXT[5]]),
    "metadata-last": (STREAM, [*TEXT, METADATA]),
    "metadata-invalid": (STREAM, [*TEXT[:5], event("metadata", usage=usage())]),
    "usage-arithmetic": (
        STREAM,
        [*TEXT[:5], event("metadata", usage=usage(5, 3, 9), metrics={"latencyMs": 1})],
    ),
    "chunk-invalid": (INVOKE_STREAM, [*INVOKE[:2], chunk(None, raw="not base64!"), *INVOKE[2:]]),
    "anthropic-order": (INVOKE_STREAM, [*INVOKE[:2], INVOKE[0], *INVOKE[2:]]),
    "invocation-metrics-missing": (INVOKE_STREAM, [*INVOKE[:-1], chunk({"type": "message_stop"})]),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    req, frames = BROKEN[rule]
    body = frames if isinstance(frames, bytes) else b"".join(frames)
    violations = check(req, AWS_EVENTSTREAM.events(body))
    assert [v.rule for v in violations] == [rule]
    (violation,) = violations
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message


def test_the_bases_of_the_broken_streams_pass() -> None:
    assert rules(TEXT) == set()
    assert rules(_tool) == set()
    assert rules(INVOKE, INVOKE_STREAM) == set()


def test_a_tool_start_without_a_name_is_an_invalid_start() -> None:
    start = event("contentBlockStart", contentBlockIndex=1, start={"toolUse": {"toolUseId": "t"}})
    found = check(STREAM, decode(b"".join([*_tool[:3], start, *_tool[4:]])))
    assert found[0].rule == "block-start-invalid" and "without name" in found[0].message


def test_violations_point_at_the_event_that_broke_the_rule() -> None:
    (order,) = check(STREAM, decode(b"".join(BROKEN["block-order"][1])))  # type: ignore[arg-type]
    assert order.index == 4 and "expected an event of a new block 1," in order.message
    (missing,) = check(STREAM, decode(b"".join(TEXT[:-1])))
    assert (missing.rule, missing.index) == ("metadata-last", -1)
    assert str(missing).startswith("metadata-last at stream:")


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    frames = [START, *(delta(0, text=n) for n in (1, 2, 3)), *TEXT[3:]]
    (violation,) = check(STREAM, decode(b"".join(frames)))
    assert violation.rule == "delta-invalid" and violation.index == 1
    assert "(2 more like it, the last at event 3)" in violation.message


def test_metadata_before_messagestop_is_out_of_place() -> None:
    found = check(STREAM, decode(b"".join([*TEXT[:4], METADATA, END_TURN])))
    assert [(v.rule, v.index) for v in found] == [("message-stop-once", 4), ("metadata-last", 5)]
    assert "found metadata first" in found[0].message


def test_blocks_skipped_or_left_open() -> None:
    skipped = check(STREAM, decode(b"".join([*TEXT[:2], delta(2, text="?"), *TEXT[2:]])))
    assert [(v.rule, v.index) for v in skipped] == [("block-order", 2)]
    assert "block 0 or a new block 1, found contentBlockDelta of block 2" in skipped[0].message
    unstopped = check(STREAM, decode(b"".join([*_tool[:2], *_tool[3:]])))
    assert [(v.rule, v.index) for v in unstopped] == [("block-not-stopped", 2)]


def test_after_a_broken_frame_only_framing_is_judged() -> None:
    frames = [flip(TEXT[0], len(TEXT[0]) - 6), TEXT[2], TEXT[1], flip(TEXT[3], 20)]
    found = check(STREAM, decode(b"".join(frames)))
    assert [(v.rule, v.index) for v in found] == [("message-crc", 0)]
    assert "(1 more like it, the last at event 3)" in found[0].message


def test_a_stream_cut_mid_answer_reports_each_missing_part() -> None:
    assert rules(TEXT[:3]) == {"block-not-stopped", "message-stop-once", "metadata-last"}
    assert rules([]) == {"message-start-first", "message-stop-once", "metadata-last"}


def test_without_a_request_the_endpoint_is_read_from_the_events() -> None:
    assert rules(TEXT, None) == set()
    assert rules(INVOKE, None) == set()
    assert rules(INVOKE, STREAM) == {"event-type-unknown", *rules(TEXT[:0])}


LEGAL: dict[str, tuple[Request, list[bytes]]] = {
    "an exception ends a converse stream": (
        STREAM,
        [*TEXT[:2], exception("modelStreamErrorException")],
    ),
    "an error message ends a stream": (
        STREAM,
        [*TEXT[:2], encode([(":error-code", "InternalFailure"), (":message-type", "error")], b"")],
    ),
    "reasoning with a signature, then text": (
        STREAM,
        [
            START,
            delta(0, reasoningContent={"text": "The user greets."}),
            delta(0, reasoningContent={"signature": "EqQBCkYI"}),
            STOP0,
            delta(1, text="Hello!"),
            event("contentBlockStop", contentBlockIndex=1),
            *TEXT[4:],
        ],
    ),
    "an empty text block": (STREAM, [START, STOP0, *TEXT[4:]]),
    "a tool with no input at all": (STREAM, tool_stream()),
    "a tool whose first fragment is empty (Claude's)": (STREAM, tool_stream("", '{"a": 1}')),
    "cache tokens count in the total": (
        STREAM,
        [
            *TEXT[:5],
            event(
                "metadata",
                usage=usage(4, 3, 1007, cacheReadInputTokens=900, cacheWriteInputTokens=100),
                metrics={"latencyMs": 1},
                trace={"guardrail": {}},
            ),
        ],
    ),
    "extra keys everywhere (p padding, serverToolUsage)": (
        STREAM,
        [
            event("messageStart", role="assistant", p="abcdef", extra=1),
            delta(0, text="Hi"),
            event("contentBlockStop", contentBlockIndex=0, p="xyz"),
            event("messageStop", stopReason="max_tokens", additionalModelResponseFields={}),
            event("metadata", usage=usage(serverToolUsage={}), metrics={"latencyMs": 9}, p=""),
        ],
    ),
    "an exception ends an invoke stream": (
        INVOKE_STREAM,
        [*INVOKE[:3], exception("modelTimeoutException")],
    ),
    "a non-Anthropic model's chunks": (
        INVOKE_STREAM,
        [
            chunk({"generation": "Hi", "stop_reason": None}),
            chunk(
                {
                    "generation": "!",
                    "stop_reason": "stop",
                    "amazon-bedrock-invocationMetrics": METRICS,
                }
            ),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    req, frames = LEGAL[name]
    assert check(req, decode(b"".join(frames))) == []


def test_check_takes_events_from_anywhere() -> None:
    assert {v.rule for v in check(STREAM, [Event(data="{}")])} >= {"message-type"}


# --- synthesize ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(json.dumps)
tool_calls = st.lists(
    st.builds(ToolCall, name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True), arguments=arguments),
    max_size=3,
).map(tuple)
texts = (
    st.none()
    | st.text(max_size=30)
    | st.sampled_from(["héllo 👋🏽 wörld", "<think>Greeting.</think>Hi!", "<think>x</think>"])
)
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "length", "stop_sequence", "stop"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)
ENDPOINTS = ["converse", "converse-stream", "invoke", "invoke-with-response-stream"]


def expected(script: Script) -> tuple[str | None, str | None]:
    text = "This is a synthesized reply from Tapedeck." if script.text is None else script.text
    return split_thinking(None if script.text is None and script.tool_calls else text)


def payloads(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [(e.event or "", json.loads(e.data or "")) for e in decode(body)]


def reassemble_converse(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The final message a client builds from converse-stream events, as Converse has it."""
    blocks: dict[int, dict[str, Any]] = {}
    for name, e in events:
        block = blocks.setdefault(e.get("contentBlockIndex", -1), {})
        if name == "contentBlockStart":
            block["toolUse"] = {**e["start"]["toolUse"], "input": ""}
        elif name == "contentBlockDelta":
            ((kind, value),) = e["delta"].items()
            if kind == "text":
                block["text"] = block.get("text", "") + value
            elif kind == "toolUse":
                block["toolUse"]["input"] += value["input"]
            else:
                said = block.setdefault("reasoningContent", {"reasoningText": {"text": ""}})
                said["reasoningText"]["text"] += value.get("text", "")
                if "signature" in value:
                    said["reasoningText"]["signature"] = value["signature"]
    blocks.pop(-1, None)
    content = [blocks[n] for n in sorted(blocks)]
    for block in content:
        if "toolUse" in block:
            block["toolUse"]["input"] = json.loads(block["toolUse"]["input"])
    stop = next(e["stopReason"] for name, e in events if name == "messageStop")
    meta = next(e for name, e in events if name == "metadata")
    return {"content": content, "stopReason": stop, "usage": meta["usage"]}


def reassemble_anthropic(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, int]:
    blocks: list[dict[str, Any]] = []
    for e in events:
        if e["type"] == "content_block_start":
            blocks.append(dict(e["content_block"], partial=""))
        elif e["type"] == "content_block_delta":
            d = e["delta"]
            key = {
                "text_delta": "text",
                "thinking_delta": "thinking",
                "signature_delta": "signature",
                "input_json_delta": "partial",
            }[d["type"]]
            value = d.get("text", d.get("thinking", d.get("signature", d.get("partial_json"))))
            blocks[e["index"]][key] += value
    for block in blocks:
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial)
    delta = next(e for e in events if e["type"] == "message_delta")
    return blocks, delta["delta"]["stop_reason"], delta["usage"]["output_tokens"]


def converse_content(script: Script) -> list[dict[str, Any]]:
    reasoning, text = expected(script)
    content: list[dict[str, Any]] = []
    if reasoning:
        content.append({"reasoningContent": {"reasoningText": {"text": reasoning}}})
    if text:
        content.append({"text": text})
    for call in script.tool_calls:
        content.append({"toolUse": {"name": call.name, "input": json.loads(call.arguments)}})
    return content


def without_ids(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = json.loads(json.dumps(content))
    for block in out:
        block.get("toolUse", {}).pop("toolUseId", None)
        block.get("reasoningContent", {}).get("reasoningText", {}).pop("signature", None)
    return out


@given(scripts)
def test_synthesized_converse_streams_pass_every_rule_and_carry_the_script(script: Script) -> None:
    response = synthesize(STREAM, script)
    assert response.status == 200
    assert check(STREAM, decode(response.body)) == []
    events = payloads(response.body)
    final = reassemble_converse(events)
    assert without_ids(final["content"]) == converse_content(script)
    whole = json.loads(synthesize(request("converse"), script).body)
    assert whole["output"]["message"]["content"] == final["content"]
    assert whole["stopReason"] == final["stopReason"]
    assert whole["usage"] == final["usage"]
    stop = {"stop": "end_turn", "length": "max_tokens"}.get(script.finish_reason or "")
    assert final["stopReason"] == (
        stop or script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")
    )
    used = final["usage"]
    assert used["totalTokens"] == used["inputTokens"] + used["outputTokens"]
    deltas = sum(1 for name, _ in events if name == "contentBlockDelta")
    signatures = sum(
        1 for _, e in events if "signature" in e.get("delta", {}).get("reasoningContent", {})
    )
    assert used["outputTokens"] == deltas - signatures
    if script.prompt_tokens is not None:
        assert used["inputTokens"] == max(1, script.prompt_tokens)
    assert all(
        e["p"]
        and e["p"]
        == "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: len(e["p"])]
        for _, e in events
    )


@given(scripts)
def test_synthesized_invoke_streams_pass_every_rule_and_carry_the_script(script: Script) -> None:
    response = synthesize(INVOKE_STREAM, script)
    assert check(INVOKE_STREAM, decode(response.body)) == []
    events = [json.loads(base64.b64decode(e["bytes"])) for _, e in payloads(response.body)]
    blocks, stop, output = reassemble_anthropic(events)
    whole = json.loads(synthesize(request("invoke"), script).body)
    assert whole["content"] == blocks
    assert whole["stop_reason"] == stop and whole["usage"]["output_tokens"] == output
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == output
    assert metrics["inputTokenCount"] == whole["usage"]["input_tokens"]
    reasoning, text = expected(script)
    assert [b.get("thinking") for b in blocks if b["type"] == "thinking"] == (
        [reasoning] if reasoning else []
    )
    assert [b["text"] for b in blocks if b["type"] == "text"] == ([text] if text else [])
    calls = [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    assert calls == [(c.name, json.loads(c.arguments)) for c in script.tool_calls]


@given(scripts, st.integers(0, 2**32), st.sampled_from(ENDPOINTS))
def test_a_different_seed_gives_a_different_request_id(
    script: Script, other: int, endpoint: str
) -> None:
    assume(other != script.seed)
    req = request(endpoint)
    first = dict(synthesize(req, script).headers)["x-amzn-RequestId"]
    second = dict(synthesize(req, Script(**{**_fields(script), "seed": other})).headers)[
        "x-amzn-RequestId"
    ]
    assert first != second


def _fields(script: Script) -> dict[str, Any]:
    return {name: getattr(script, name) for name in Script.__dataclass_fields__}


# --- any damage to a frame -------------------------------------------------------------

FRAME_RULES = {"prelude-crc", "message-crc", "prelude-length", "frame-truncated"}


# Each example checks ~5 flips in every frame, a whole stream each: a few examples suffice.
@settings(max_examples=max(5, settings().max_examples // 5))
@given(script=scripts, endpoint=st.sampled_from(["converse-stream", "invoke-with-response-stream"]))
def test_a_flipped_byte_anywhere_is_caught_by_a_frame_rule(script: Script, endpoint: str) -> None:
    # Every byte of a frame is under a CRC: no flip goes unseen, whichever frame it hits.
    req = request(endpoint)
    frames = list(AWS_EVENTSTREAM.frames(synthesize(req, script).body))
    for k, frame in enumerate(frames):
        for at in {0, 5, 9, len(frame) // 2, len(frame) - 1}:
            found = rules([*frames[:k], flip(frame, at), *frames[k + 1 :]], req)
            assert found and found <= FRAME_RULES, (k, at, found)


# --- synthesize: Bedrock's exact shapes and headers -----------------------------------


def test_a_converse_stream_has_bedrocks_frames_and_headers() -> None:
    response = synthesize(STREAM, Script(text="Hello", chunk_size=3, seed=7))
    assert response.headers[0] == ("Content-Type", "application/vnd.amazon.eventstream")
    assert [name for name, _ in response.headers] == ["Content-Type", "x-amzn-RequestId"]
    events = decode(response.body)
    assert [e.event for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert all(
        list(headers(e).items())
        == [
            (":event-type", e.event),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ]
        for e in events
    )
    first = events[1].data or ""
    assert first.startswith('{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"')  # sorted keys


def test_a_tool_call_opens_its_block_with_a_start() -> None:
    script = Script(tool_calls=(ToolCall("lookup", '{"q": "x"}', id="tooluse_fixed"),), seed=1)
    events = payloads(synthesize(STREAM, script).body)
    assert [n for n, _ in events][:3] == ["messageStart", "contentBlockStart", "contentBlockDelta"]
    assert events[1][1]["start"] == {"toolUse": {"name": "lookup", "toolUseId": "tooluse_fixed"}}
    assert events[1][1]["contentBlockIndex"] == 0  # no text: the tool is the first block


def test_ids_have_bedrocks_form() -> None:
    script = Script(tool_calls=(ToolCall("f"),), seed=3)
    whole = json.loads(synthesize(request("converse"), script).body)
    tool = whole["output"]["message"]["content"][0]["toolUse"]
    assert tool["toolUseId"].startswith("tooluse_") and len(tool["toolUseId"]) == 8 + 22
    message = json.loads(synthesize(request("invoke"), script).body)
    assert message["id"].startswith("msg_bdrk_") and message["content"][0]["id"].startswith(
        "toolu_bdrk_"
    )
    assert message["model"] == "claude-3-5-sonnet-20240620"


def test_invoke_carries_the_token_count_headers() -> None:
    response = synthesize(request("invoke"), Script(text="Hi there", prompt_tokens=12, seed=2))
    fields = dict(response.headers)
    body = json.loads(response.body)
    assert fields["Content-Type"] == "application/json"
    assert fields["X-Amzn-Bedrock-Input-Token-Count"] == "12" == str(body["usage"]["input_tokens"])
    assert fields["X-Amzn-Bedrock-Output-Token-Count"] == str(body["usage"]["output_tokens"])
    stream = synthesize(INVOKE_STREAM, Script(seed=2))
    assert dict(stream.headers)["X-Amzn-Bedrock-Content-Type"] == "application/json"


def test_invoke_for_another_model_family_says_what_is_supported() -> None:
    response = synthesize(
        request("invoke", model="/model/meta.llama3-8b-instruct-v1%3A0"), Script()
    )
    assert response.status == 400
    assert dict(response.headers)["x-amzn-ErrorType"].startswith("ValidationException:")
    assert "Anthropic models" in json.loads(response.body)["message"]


def test_script_headers_win_and_are_appended() -> None:
    script = Script(text="Hi", headers=(("x-amzn-RequestId", "fixed"), ("x-extra", "1")), seed=1)
    response = synthesize(STREAM, script)
    assert response.headers[-2:] == (("x-amzn-RequestId", "fixed"), ("x-extra", "1"))
    assert [k for k, _ in response.headers].count("x-amzn-RequestId") == 1


def test_a_scripted_error_is_bedrocks_error() -> None:
    script = Script(status=429, error_message="Too many requests.", headers=(("x-a", "b"),))
    response = synthesize(STREAM, script)
    assert (response.status, response.reason) == (429, "Too Many Requests")
    assert response.body == b'{"message":"Too many requests."}'
    fields = dict(response.headers)
    assert fields["x-amzn-ErrorType"].startswith("ThrottlingException:")
    assert fields["x-a"] == "b"
    kind = synthesize(STREAM, Script(status=400, error_kind="ModelNotReadyException"))
    assert dict(kind.headers)["x-amzn-ErrorType"].startswith("ModelNotReadyException:")


@pytest.mark.parametrize(
    ("status", "kind", "named", "reason"),
    [
        (400, "invalid_request_error", "ValidationException", "Bad Request"),
        (403, "", "AccessDeniedException", "Forbidden"),
        (404, "", "ResourceNotFoundException", "Not Found"),
        (408, "", "ModelTimeoutException", "Request Timeout"),
        (413, "invalid_request_error", "ValidationException", "Request Entity Too Large"),
        (424, "", "ModelErrorException", "Failed Dependency"),
        (429, "requests", "ThrottlingException", "Too Many Requests"),
        (500, "server_error", "InternalServerException", "Internal Server Error"),
        (502, "", "InternalServerException", "Bad Gateway"),
        (503, "", "ServiceUnavailableException", "Service Unavailable"),
        (403, "ExpiredTokenException", "ExpiredTokenException", "Forbidden"),
        (499, "", "ValidationException", ""),
    ],
)
def test_error_shape_type_and_status(status: int, kind: str, named: str, reason: str) -> None:
    response = error(status, "Nope <&>", kind)
    assert (response.status, response.reason) == (status, reason)
    assert json.loads(response.body) == {"message": "Nope <&>"}
    fields = dict(response.headers)
    assert fields["Content-Type"] == "application/json"
    assert (
        fields["x-amzn-ErrorType"]
        == f"{named}:http://internal.amazon.com/coral/com.amazon.coral.service/"
    )
    assert len(fields["x-amzn-RequestId"]) == 36


def test_the_same_error_has_the_same_request_id() -> None:
    first, second = error(400, "a", "ValidationException"), error(400, "a", "ValidationException")
    assert first == second
    assert (
        dict(error(400, "b", "ValidationException").headers)["x-amzn-RequestId"]
        != dict(first.headers)["x-amzn-RequestId"]
    )


# --- identity, routing -----------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    body = {"messages": MESSAGES, "inferenceConfig": {"temperature": 1.0, "maxTokens": 10}}
    spaced = json.dumps(body, indent=2).encode()
    reordered = {"inferenceConfig": {"maxTokens": 10, "temperature": 1}, "messages": MESSAGES}
    a = Request("POST", f"{CLAUDE}/converse", body=spaced, json=json.loads(spaced))
    assert identity(a) == identity(request("converse", reordered))


def test_the_model_id_decides_and_matches_encoded_or_not() -> None:
    encoded = request("converse", model="/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0")
    plain = request("converse", model="/model/us.anthropic.claude-sonnet-4-20250514-v1:0")
    assert identity(encoded) == identity(plain)
    assert ("bedrock.modelId", '"us.anthropic.claude-sonnet-4-20250514-v1:0"') in identity(plain)
    assert identity(plain) != identity(
        request("converse", model="/model/us.amazon.nova-micro-v1:0")
    )


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    assert identity(request("converse", {**CONVERSE, field: {"run": "42"}})) == identity(
        request("converse")
    )


def test_converse_defaults_spelled_out_match_defaults_left_out() -> None:
    spelled = {**CONVERSE, "system": [], "inferenceConfig": {"stopSequences": []}}
    assert identity(request("converse-stream", spelled)) == identity(request("converse-stream"))
    config = {**CONVERSE, "inferenceConfig": {"stopSequences": [], "maxTokens": 9}}
    assert identity(request("converse", config)) == identity(
        request("converse", {**CONVERSE, "inferenceConfig": {"maxTokens": 9}})
    )
    assert identity(request("converse", {**CONVERSE, "system": [{"text": "x"}]})) != identity(
        request("converse")
    )


def test_native_invoke_bodies_are_compared_whole() -> None:
    assert identity(request("invoke", {**NATIVE, "system": []})) != identity(request("invoke"))
    odd = Request("POST", f"{CLAUDE}/invoke", body=b"\x00raw")
    assert identity(odd) == (
        ("bedrock.modelId", '"anthropic.claude-3-5-sonnet-20240620-v1:0"'),
        ("body", canonical_json("\x00raw")),
    )


def test_is_stream_follows_the_endpoint() -> None:
    assert [is_stream(request(e)) for e in ENDPOINTS] == [False, True, False, True]


@pytest.mark.parametrize(
    ("path", "endpoint", "model"),
    [
        (
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            "converse",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream",
            "converse-stream",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("/model/us.amazon.nova-micro-v1:0/invoke", "invoke", "us.amazon.nova-micro-v1:0"),
        (
            "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream",
            "invoke-with-response-stream",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        ),
    ],
)
def test_every_endpoint_is_routed_whatever_the_model_id(
    path: str, endpoint: str, model: str
) -> None:
    match = resolve("POST", path)
    assert match is not None and match.dialect is DIALECT and match.route.endpoint == endpoint
    assert route(path) == (endpoint, model)


def test_paths_of_other_apis_are_not_bedrocks() -> None:
    for path in ("/models/x/converse", "/model/converse", "/model/x/converse/extra"):
        match = resolve("POST", path)
        assert match is None or match.dialect is not DIALECT, path
    assert resolve("GET", "/model/x/converse") is None


def test_the_dialect_is_registered_with_the_sdk_environment() -> None:
    assert DIALECTS["bedrock"] is DIALECT
    env = dict(DIALECT.environment)
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == "{url}"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env)
    assert DIALECT.base_path == "" and DIALECT.framing is AWS_EVENTSTREAM


def test_thinking_convention() -> None:
    assert split_thinking("<think>R</think>A") == ("R", "A")
    assert split_thinking("no tags") == (None, "no tags")
    assert split_thinking(None) == (None, None)
