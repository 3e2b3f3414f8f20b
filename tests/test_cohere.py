"""The cohere dialect (v2 chat): every check rule caught on a stream that breaks only it,
legal variations that pass, synthesized answers that pass and say what the script said (in
Cohere's exact event order), the request identity, and Cohere's error shape.

The hand-written streams copy the shapes of the real recordings (corpus: cohere/*), never
the synthesizer's output."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.conformance import run_conformance
from mockserver.conformance.scenarios import CATALOGUES
from mockserver.dialects import resolve
from mockserver.dialects._kit.wire import DEFAULT_TEXT
from mockserver.dialects.cohere.dialect import (
    DIALECT,
    RULES,
    VOLATILE_FIELDS,
    check,
    error,
    estimate_input_tokens,
    identity,
    is_stream,
    synthesize,
)
from mockserver.framing.sse import SSE
from mockserver.model import Event, Request, Script, ToolCall, header
from tests.proxies import ToyProxy, free_port

MESSAGES = [{"role": "user", "content": "Tell me a joke"}]
PLAIN = {"model": "command-a-03-2025", "messages": MESSAGES, "stream": True}
DONE = "data: [DONE]\n\n"


def request(body: Any, path: str = "/v2/chat") -> Request:
    return Request("POST", path, body=json.dumps(body).encode(), json=body)


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def message(**fields: Any) -> dict[str, Any]:
    return {"message": fields}


OPENING = ev(
    "message-start",
    id="6cd6ce61-bb3b-46f6-907e-fcfab45e51b6",
    delta=message(role="assistant", content=[], tool_plan="", tool_calls=[], citations=[]),
)


def cstart(index: int = 0, kind: str = "text") -> dict[str, Any]:
    return ev("content-start", index=index, delta=message(content={"type": kind, kind: ""}))


def cdelta(index: int = 0, **content: Any) -> dict[str, Any]:
    return ev("content-delta", index=index, delta=message(content=content))


def cend(index: int = 0) -> dict[str, Any]:
    return ev("content-end", index=index)


def plan(text: str) -> dict[str, Any]:
    return ev("tool-plan-delta", delta=message(tool_plan=text))


def tstart(index: int = 0, name: str = "get_time", **call: Any) -> dict[str, Any]:
    called = {"id": f"{name}_dg5wwc00d8v5", "type": "function", **call}
    called["function"] = {"name": name, "arguments": ""}
    return ev("tool-call-start", index=index, delta=message(tool_calls=called))


def tdelta(index: int, arguments: str) -> dict[str, Any]:
    fragment = {"function": {"arguments": arguments}}
    return ev("tool-call-delta", index=index, delta=message(tool_calls=fragment))


def tend(index: int = 0) -> dict[str, Any]:
    return ev("tool-call-end", index=index)


def cite(index: int = 0) -> dict[str, Any]:
    cited = {"start": 0, "end": 2, "text": "Ar", "sources": [], "type": "TEXT_CONTENT"}
    return ev("citation-start", index=index, delta=message(citations=cited))


USAGE = {
    "billed_units": {"input_tokens": 7, "output_tokens": 2},
    "tokens": {"input_tokens": 69, "output_tokens": 3},
}


def ending(reason: Any = "COMPLETE", **delta: Any) -> dict[str, Any]:
    fields = {"finish_reason": reason, "usage": USAGE, **delta}
    return ev("message-end", delta={k: v for k, v in fields.items() if v is not None})


def sse(*items: dict[str, Any] | str) -> bytes:
    """Events with their ``event:`` line; strings are raw blocks ([DONE], comments...)."""
    return "".join(
        i if isinstance(i, str) else f"event: {i['type']}\ndata: {json.dumps(i)}\n\n" for i in items
    ).encode()


def bare(item: dict[str, Any], name: str | None = None) -> str:
    """An event with no ``event:`` line, or with the given name."""
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(item)}\n\n"


TEXT: list[dict[str, Any]] = [
    OPENING,
    cstart(),
    cdelta(text="Ar"),
    cdelta(text="rr"),
    cend(),
    ending(),
]
TOOLS: list[dict[str, Any]] = [
    OPENING,
    plan("I will"),
    plan(" look."),
    tstart(0),
    tdelta(0, '{"location":'),
    tdelta(0, ' "Tokyo"}'),
    tend(0),
    ending("TOOL_CALL"),
]


def rules(body: bytes) -> set[str]:
    return {v.rule for v in check(None, SSE.events(body))}


# --- one broken stream per rule --------------------------------------------------------

_T, _C = TEXT, TOOLS
BROKEN: dict[str, bytes] = {
    "event-name-missing": sse(*_T[:2], bare(_T[2]), *_T[3:], DONE),
    "event-name-mismatch": sse(*_T[:2], bare(_T[2], "content-end"), *_T[3:], DONE),
    "data-not-json": sse(*_T[:2], "event: content-delta\ndata: {oops\n\n", *_T[2:], DONE),
    "event-shape": sse(*_T[:2], cdelta(text=5), *_T[3:], DONE),
    "message-start-not-first": sse(OPENING, *_T, DONE),
    "content-index-not-contiguous": sse(
        OPENING, cstart(1), cdelta(1, text="A"), cend(1), ending(), DONE
    ),
    "content-not-open": sse(*_T[:3], cdelta(1, text="?"), *_T[3:], DONE),
    "content-not-ended": sse(*_T[:4], *_T[5:], DONE),
    "delta-type-mismatch": sse(*_T[:3], cdelta(thinking="?"), *_T[3:], DONE),
    "tool-call-index-not-contiguous": sse(
        *_C[:3], tstart(1), tdelta(1, "{}"), tend(1), _C[-1], DONE
    ),
    "tool-call-not-open": sse(*_C[:5], tdelta(1, "?"), *_C[5:], DONE),
    "tool-call-not-ended": sse(*_C[:6], *_C[7:], DONE),
    "tool-call-incomplete": sse(*_C[:3], tstart(0, id=None), *_C[4:], DONE),
    "tool-arguments-invalid": sse(*_C[:5], *_C[6:], DONE),
    "tool-plan-late": sse(*_C[:7], plan(" Done."), _C[7], DONE),
    "citation-not-paired": sse(*_T[:4], cite(0), *_T[4:], DONE),
    "finish-reason-missing": sse(*_T[:5], ending(None), DONE),
    "finish-reason-unknown": sse(*_T[:5], ending("stop"), DONE),
    "finish-reason-mismatch": sse(*_T[:5], ending("TOOL_CALL"), DONE),
    "usage-missing": sse(*_T[:5], ending(usage={}), DONE),
    "message-end-missing": sse(*_T[:5], DONE),
    "event-after-message-end": sse(*_T, cdelta(text="late"), DONE),
    "done-missing": sse(*_T),
    "event-after-done": sse(*_T, DONE, DONE),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)
    assert len(RULES) == 24


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    violations = check(request(PLAIN), SSE.events(BROKEN[rule]))
    assert [v.rule for v in violations] == [rule], [str(v) for v in violations]
    (violation,) = violations
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


def test_the_bases_of_the_broken_streams_pass() -> None:
    assert rules(sse(*TEXT, DONE)) == set()
    assert rules(sse(*TOOLS, DONE)) == set()


def test_violations_point_at_the_event_and_say_what_was_found() -> None:
    (late,) = check(None, SSE.events(BROKEN["event-after-message-end"]))
    assert (late.index, late.message) == (
        6,
        "expected only data: [DONE] after message-end (event 5), found content-delta.",
    )
    (missing,) = check(None, SSE.events(BROKEN["done-missing"]))
    assert missing.index == -1 and "found the end after message-end" in missing.message
    (unended,) = check(None, SSE.events(BROKEN["tool-call-not-ended"]))
    assert unended.index == 6 and "tool call 0 (started at event 3)" in unended.message
    (unknown,) = check(None, SSE.events(BROKEN["finish-reason-unknown"]))
    assert unknown.message.endswith("ERROR, TIMEOUT, found 'stop'.")
    (cut,) = check(None, SSE.events(BROKEN["tool-arguments-invalid"]))
    assert cut.message == (
        "expected a JSON object of arguments for tool call 0, found '{\"location\":'."
    )


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    body = sse(*(bare(e) for e in TEXT), DONE)
    (violation,) = check(None, SSE.events(body))
    assert violation.rule == "event-name-missing" and violation.index == 0
    assert "(5 more like it, the last at event 5)" in violation.message


def test_a_stream_cut_mid_block_reports_each_missing_part() -> None:
    assert rules(sse(*TEXT[:3])) == {"content-not-ended", "message-end-missing", "done-missing"}
    assert rules(b"") == {"message-start-not-first", "message-end-missing", "done-missing"}


def test_arguments_in_the_start_event_count_and_none_at_all_mean_no_arguments() -> None:
    opened = ev(
        "tool-call-start",
        index=0,
        delta=message(
            tool_calls={
                "id": "f_1",
                "type": "function",
                "function": {"name": "f", "arguments": "{"},
            }
        ),
    )
    assert rules(sse(OPENING, opened, tdelta(0, "}"), tend(0), ending("TOOL_CALL"), DONE)) == set()
    assert rules(sse(OPENING, tstart(0), tend(0), ending("TOOL_CALL"), DONE)) == set()
    assert rules(sse(OPENING, tstart(0), tdelta(0, "[1]"), tend(0), ending("TOOL_CALL"), DONE)) == {
        "tool-arguments-invalid"
    }


# --- legal variations ------------------------------------------------------------------

LEGAL: dict[str, bytes] = {
    "keep-alive comments anywhere, even after [DONE]": sse(
        ": ping\n\n", *TEXT[:3], ":\n\n", *TEXT[3:], DONE, ": bye\n\n"
    ),
    "no space after the colons": sse(
        *TEXT[:2], "event:content-delta\ndata:" + json.dumps(TEXT[2]) + "\n\n", *TEXT[3:], DONE
    ),
    "a thinking block, then the text": sse(
        OPENING,
        cstart(0, "thinking"),
        cdelta(0, thinking="Pirates say arr."),
        cend(0),
        cstart(1),
        cdelta(1, text="Arr"),
        cend(1),
        ending(),
        DONE,
    ),
    "citations in start/end pairs, inside and after the block": sse(
        *TEXT[:3],
        cite(0),
        ev("citation-end", index=0),
        TEXT[3],
        TEXT[4],
        cite(1),
        ev("citation-end", index=1),
        TEXT[5],
        DONE,
    ),
    "an unknown event type (the SDK knows debug)": sse(
        *TEXT[:5], ev("debug", prompt="..."), TEXT[5], DONE
    ),
    "tool calls without a tool plan, the finish TOOL_CALL": sse(*TOOLS[:1], *TOOLS[3:], DONE),
    "usage counts as floats, and only tokens": sse(
        *TEXT[:5],
        ending(usage={"tokens": {"input_tokens": 69.0, "output_tokens": 3.0}}),
        DONE,
    ),
    "the in-band error: ERROR with a block still open and no usage": sse(
        *TEXT[:3], ev("message-end", delta={"error": "boom", "finish_reason": "ERROR"}), DONE
    ),
    "a TIMEOUT with a tool call still open": sse(
        *TOOLS[:5], ev("message-end", delta={"finish_reason": "TIMEOUT", "usage": USAGE}), DONE
    ),
    "the other finish reasons": sse(*TEXT[:5], ending("MAX_TOKENS", error=None), DONE),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    assert check(None, SSE.events(LEGAL[name])) == []


kinds = st.sampled_from(
    [
        "message-start",
        "content-start",
        "content-delta",
        "content-end",
        "tool-plan-delta",
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        "citation-start",
        "citation-end",
        "message-end",
        "other",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "message": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "content": json_values | st.just({"type": "text", "text": "x"}),
                "tool_calls": json_values | st.just(tstart()["delta"]["message"]["tool_calls"]),
                "tool_plan": json_values,
                "citations": json_values,
            },
        ),
        "finish_reason": json_values | st.sampled_from(["COMPLETE", "ERROR", "TOOL_CALL"]),
        "usage": json_values | st.just(USAGE),
        "error": json_values,
    },
)
payloads = st.fixed_dictionaries(
    {"type": kinds | json_values},
    optional={"index": st.integers(0, 2) | json_values, "id": json_values, "delta": deltas},
)
events = st.builds(
    Event,
    data=st.none() | st.text(max_size=12) | st.just("[DONE]") | payloads.map(json.dumps),
    event=st.none() | kinds,
)


@given(st.lists(events, max_size=14))
def test_check_never_raises_on_cohere_shaped_events(stream: list[Event]) -> None:
    violations = check(None, stream)
    assert {v.rule for v in violations} <= set(RULES)
    assert all(-1 <= v.index < len(stream) and v.message.endswith(".") for v in violations)
    assert len({v.rule for v in violations}) == len(violations)


# --- synthesize ------------------------------------------------------------------------


def payloads_of(body: bytes) -> list[Any]:
    """Each event's JSON, or the raw data of [DONE]; and every event: name is the type."""
    out: list[Any] = []
    for event in SSE.events(body):
        assert event.data is not None
        if event.data == "[DONE]":
            assert event.event is None
            out.append("[DONE]")
            continue
        value = json.loads(event.data)
        assert event.event == value["type"]
        out.append(value)
    return out


def types(body: bytes) -> list[str]:
    return [p if isinstance(p, str) else p["type"] for p in payloads_of(body)]


def test_a_text_stream_follows_cohere_order_exactly() -> None:
    script = Script(text="Arrr, matey!", chunk_size=5, seed=7)
    response = synthesize(request(PLAIN), script)
    assert types(response.body) == [
        "message-start",
        "content-start",
        *["content-delta"] * 3,  # "Arrr,", " mate", "y!"
        "content-end",
        "message-end",
        "[DONE]",
    ]
    items = payloads_of(response.body)
    assert items[1] == cstart()
    assert [i["delta"]["message"]["content"]["text"] for i in items[2:5]] == [
        "Arrr,",
        " mate",
        "y!",
    ]
    assert items[5] == cend()
    assert items[6]["delta"]["finish_reason"] == "COMPLETE"
    assert check(request(PLAIN), SSE.events(response.body)) == []


def test_a_tool_call_stream_plans_then_calls_in_order() -> None:
    calls = (ToolCall("get_time", '{"location": "Tokyo"}'), ToolCall("get_weather", "{}", "w_1"))
    script = Script(text="I will look.", tool_calls=calls, chunk_size=8, seed=3)
    response = synthesize(request(PLAIN), script)
    assert types(response.body) == [
        "message-start",
        *["tool-plan-delta"] * 2,  # "I will l", "ook."
        "tool-call-start",
        *["tool-call-delta"] * 3,  # '{"locati', 'on": "To', 'kyo"}'
        "tool-call-end",
        "tool-call-start",
        "tool-call-delta",  # "{}"
        "tool-call-end",
        "message-end",
        "[DONE]",
    ]
    items = payloads_of(response.body)
    assert "".join(i["delta"]["message"]["tool_plan"] for i in items[1:3]) == "I will look."
    first, second = (items[3]["delta"]["message"]["tool_calls"], items[8]["delta"]["message"])
    assert first["function"] == {"name": "get_time", "arguments": ""}
    assert first["id"].startswith("get_time_") and len(first["id"]) == len("get_time_") + 12
    assert second["tool_calls"]["id"] == "w_1"
    joined = "".join(
        i["delta"]["message"]["tool_calls"]["function"]["arguments"] for i in items[4:7]
    )
    assert joined == calls[0].arguments
    assert [i["index"] for i in items[3:11]] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert items[11]["delta"]["finish_reason"] == "TOOL_CALL"
    assert check(request(PLAIN), SSE.events(response.body)) == []


def test_synthesis_is_deterministic_and_the_seed_makes_the_ids() -> None:
    script = Script(text="x", tool_calls=(ToolCall("f"),), seed=11)
    first = synthesize(request(PLAIN), script)
    assert synthesize(request(PLAIN), script) == first
    other = synthesize(request(PLAIN), Script(text="x", tool_calls=(ToolCall("f"),), seed=12))
    ids = [payloads_of(r.body)[0]["id"] for r in (first, other)]
    assert ids[0] != ids[1] and all(uuid.UUID(i).version == 4 for i in ids)
    assert header(first.headers, "x-debug-trace-id") != header(other.headers, "x-debug-trace-id")


scripts = st.builds(
    Script,
    text=st.none() | st.text(min_size=1, max_size=30),
    tool_calls=st.lists(
        st.builds(
            ToolCall,
            st.sampled_from(["get_weather", "lookup"]),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).map(json.dumps),
        ),
        max_size=2,
    ).map(tuple),
    chunk_size=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    prompt_tokens=st.none() | st.integers(0, 999),
)


def pieces(script: Script) -> int:
    texts = [script.text or ""] + [c.arguments for c in script.tool_calls]
    if script.text is None and not script.tool_calls:
        texts = [DEFAULT_TEXT]
    return max(1, sum(math.ceil(len(t) / script.chunk_size) for t in texts))


@given(scripts)
def test_synthesized_streams_pass_every_rule_and_carry_the_script(script: Script) -> None:
    response = synthesize(request(PLAIN), script)
    assert (
        response.status == 200 and header(response.headers, "content-type") == "text/event-stream"
    )
    assert check(request(PLAIN), SSE.events(response.body)) == []
    items = [i for i in payloads_of(response.body) if isinstance(i, dict)]
    said = {"content-delta": "", "tool-plan-delta": ""}
    arguments: dict[int, str] = {}
    for item in items:
        if item["type"] == "content-delta":
            said["content-delta"] += item["delta"]["message"]["content"]["text"]
        elif item["type"] == "tool-plan-delta":
            said["tool-plan-delta"] += item["delta"]["message"]["tool_plan"]
        elif item["type"] == "tool-call-delta":
            fragment = item["delta"]["message"]["tool_calls"]["function"]["arguments"]
            arguments[item["index"]] = arguments.get(item["index"], "") + fragment
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text or ""
    where = "tool-plan-delta" if script.tool_calls else "content-delta"
    assert said[where] == text and not said[({*said} - {where}).pop()]
    assert [arguments[i] for i in sorted(arguments)] == [c.arguments for c in script.tool_calls]
    usage = items[-1]["delta"]["usage"]
    inputs = estimate_input_tokens(PLAIN) if script.prompt_tokens is None else script.prompt_tokens
    assert usage["billed_units"] == {"input_tokens": inputs, "output_tokens": pieces(script)}
    assert usage["tokens"] == {"input_tokens": inputs + 62, "output_tokens": pieces(script) + 1}


@given(scripts)
def test_synthesized_bodies_carry_the_script(script: Script) -> None:
    body = {k: v for k, v in PLAIN.items() if k != "stream"}
    response = synthesize(request(body), script)
    assert header(response.headers, "content-type") == "application/json"
    whole = json.loads(response.body)
    assert list(whole) == ["id", "message", "finish_reason", "usage"]
    said = whole["message"]
    assert said["role"] == "assistant"
    if script.tool_calls:
        assert whole["finish_reason"] == "TOOL_CALL" and "content" not in said
        assert said.get("tool_plan") == script.text
        assert [
            (c["function"]["name"], c["function"]["arguments"]) for c in said["tool_calls"]
        ] == [(c.name, c.arguments) for c in script.tool_calls]
    else:
        text = DEFAULT_TEXT if script.text is None else script.text
        assert said["content"] == [{"type": "text", "text": text}]
        assert whole["finish_reason"] == "COMPLETE"
    assert whole["usage"]["billed_units"]["output_tokens"] == pieces(script)
    streamed = payloads_of(synthesize(request(PLAIN), script).body)
    assert streamed[0]["id"] == whole["id"]  # the same seed, the same message


@given(st.integers(0, 2**32), st.integers(0, 2**32))
def test_a_different_seed_gives_a_different_id(seed: int, other: int) -> None:
    assume(seed != other)
    body = {k: v for k, v in PLAIN.items() if k != "stream"}
    ids = {json.loads(synthesize(request(body), Script(seed=s)).body)["id"] for s in (seed, other)}
    assert len(ids) == 2


def test_a_status_200_script_with_an_error_kind_fails_in_band() -> None:
    script = Script(text="x" * 40, error_kind="any", error_message="Generation failed.", seed=1)
    body = synthesize(request(PLAIN), script).body
    kinds = types(body)
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["message-end", "[DONE]"] and "content-end" not in kinds
    # 40 characters in 4s: content-start, 10 deltas, content-end; the first half is kept.
    assert kinds.count("content-delta") == 5
    assert payloads_of(body)[-2]["delta"] == {
        "error": "Generation failed.",
        "finish_reason": "ERROR",
    }
    assert check(request(PLAIN), SSE.events(body)) == []


@pytest.mark.parametrize(
    ("given_reason", "wire"),
    [("stop", "COMPLETE"), ("length", "MAX_TOKENS"), ("tool_calls", "TOOL_CALL")]
    + [(r, r) for r in ("COMPLETE", "STOP_SEQUENCE", "MAX_TOKENS")],
)
def test_finish_reasons_map_to_coheres(given_reason: str, wire: str) -> None:
    body = synthesize(request(PLAIN), Script(text="x", finish_reason=given_reason)).body
    assert payloads_of(body)[-2]["delta"]["finish_reason"] == wire


def test_stream_headers_look_like_coheres_and_script_headers_win() -> None:
    response = synthesize(request(PLAIN), Script(headers=(("x-debug-trace-id", "mine"),)))
    assert header(response.headers, "cache-control") == (
        "no-cache, no-store, no-transform, must-revalidate, private, max-age=0"
    )
    assert [v for k, v in response.headers if k == "x-debug-trace-id"] == ["mine"]


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (401, "Unauthorized"), (429, "Too Many Requests"), (498, "")],
)
def test_error_is_coheres_id_and_message(status: int, reason: str) -> None:
    response = error(status, "invalid request: model is required", "ignored_kind")
    assert (response.status, response.reason) == (status, reason)
    assert header(response.headers, "content-type") == "application/json"
    body = json.loads(response.body)
    assert list(body) == ["id", "message"]
    assert body["message"] == "invalid request: model is required"
    assert uuid.UUID(body["id"]).version == 4
    assert response.body == error(status, body["message"], "other").body  # deterministic
    assert json.loads(error(status, "another", "x").body)["id"] != body["id"]
    assert response.body == json.dumps(body, separators=(",", ":")).encode()  # compact


def test_a_scripted_error_is_coheres_error() -> None:
    script = Script(status=429, error_message="Slow down.", headers=(("retry-after", "3"),))
    response = synthesize(request(PLAIN), script)
    assert response.status == 429
    assert json.loads(response.body)["message"] == "Slow down."
    assert header(response.headers, "retry-after") == "3"


# --- identity and routes ---------------------------------------------------------------


def test_identity_ignores_key_order_and_whitespace() -> None:
    text = '{"stream": true, "messages": [{"content": "Tell me a joke", "role": "user"}],' + (
        '\n "model": "command-a-03-2025"}'
    )
    spelled = Request("POST", "/v2/chat", body=text.encode(), json=json.loads(text))
    assert identity(spelled) == identity(request(PLAIN))


def test_volatile_fields_are_ignored_and_defaults_match_their_absence() -> None:
    assert set(VOLATILE_FIELDS) == {"priority"}
    body = {k: v for k, v in PLAIN.items() if k != "stream"}
    assert identity(request({**body, "priority": 3})) == identity(request(body))
    assert identity(request({**body, "stream": False})) == identity(request(body))
    block = [{"role": "user", "content": [{"type": "text", "text": "Tell me a joke"}]}]
    assert identity(request({**body, "messages": block})) == identity(request(body))


def test_what_decides_the_answer_changes_the_identity() -> None:
    base = identity(request(PLAIN))
    for change in (
        {"model": "command-r7b-12-2024"},
        {"stream": False},
        {"temperature": 0.3},
        {"seed": 1},
        {"messages": [{"role": "user", "content": "Tell me another"}]},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
    ):
        assert identity(request({**PLAIN, **change})) != base, change


def test_identity_of_a_body_that_is_not_an_object() -> None:
    assert identity(request([1, 2])) != identity(request([2, 1]))
    raw = Request("POST", "/v2/chat", body=b"not json")
    assert identity(raw) == identity(Request("POST", "/v2/chat", body=b"not json"))
    assert identity(raw) != identity(Request("POST", "/v2/chat", body=b"not JSON"))


def test_is_stream() -> None:
    assert is_stream(request(PLAIN))
    assert not is_stream(request({**PLAIN, "stream": False}))
    assert not is_stream(request({k: v for k, v in PLAIN.items() if k != "stream"}))
    assert not is_stream(request({**PLAIN, "stream": "true"}))


def test_the_routes_and_the_environment() -> None:
    for path in ("/v2/chat", "/v2/chat/", "/gateway/cohere/v2/chat"):
        match = resolve("POST", path)
        assert match is not None and match.dialect is DIALECT and match.route.endpoint == "chat"
    v1 = resolve("POST", "/v1/chat")  # Cohere's v1 API is another protocol
    assert v1 is None or v1.dialect is not DIALECT
    assert resolve("GET", "/v2/chat") is None
    assert dict(DIALECT.environment) == {"CO_API_URL": "{url}", "CO_API_KEY": "tapedeck-test-key"}
    assert [(u.name, u.url) for u in DIALECT.upstreams] == [("cohere", "https://api.cohere.com")]


def test_a_faithful_proxy_passes_every_cohere_conformance_scenario() -> None:
    port = free_port()
    with ToyProxy(port) as proxy:
        report = run_conformance(proxy.url, port, model="command-a-03-2025", dialects=["cohere"])
    names = [o.scenario.name for o in report.outcomes]
    assert names == [s.name for s in CATALOGUES["cohere"]] and "midstream-error" in names
    assert [(o.scenario.name, f.rule) for o in report.outcomes for f in o.findings] == []
    received = {o.scenario.name: o.received for o in report.outcomes}
    assert b'"finish_reason":"ERROR"' in received["midstream-error"]
    assert received["tools-parallel"].count(b"event: tool-call-start") == 2
