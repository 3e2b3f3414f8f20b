"""The openai_responses dialect: every check rule caught on a stream that breaks only it,
legal variations (OpenRouter, Bedrock Mantle, older servers) that pass, synthesized
answers that pass and say what the script said, the request identity, the routes, and the
Responses endpoint's error shape."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects.openai.responses import (
    DEFAULT_TEXT,
    DEFAULTS,
    DIALECT,
    RULES,
    VOLATILE_FIELDS,
    check,
    error,
    identity,
    is_stream,
    synthesize,
)
from mockserver.framing.sse import SSE, decode
from mockserver.model import Request, Script, ToolCall, canonical_json, header

BODY = {"model": "gpt-4.1", "input": "Say hi", "stream": True}


def request(body: Any = BODY, path: str = "/v1/responses", query: Any = ()) -> Request:
    return Request("POST", path, tuple(query), body=json.dumps(body).encode(), json=body)


def E(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def sse(*items: dict[str, Any] | str, names: bool = True) -> bytes:
    """Events as SSE blocks, numbered 0, 1, 2... unless they carry a sequence_number;
    strings are raw blocks (comments, [DONE], oddities) and take no number."""
    out, n = [], 0
    for item in items:
        if isinstance(item, str):
            out.append(item)
            continue
        data = {**item, "sequence_number": item.get("sequence_number", n)}
        n += 1
        out.append((f"event: {data['type']}\n" if names else "") + f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


DONE = "data: [DONE]\n\n"
USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 8,
}


def resp(status: str = "in_progress", output: Any = (), usage: Any = None, **more: Any) -> Any:
    return {"id": "resp_1", "object": "response", "status": status, "output": list(output)} | {
        "usage": usage,
        **more,
    }


MSG = {
    "id": "msg_1",
    "type": "message",
    "status": "in_progress",
    "content": [],
    "role": "assistant",
}
PART = {"type": "output_text", "annotations": [], "text": ""}
FC = {
    "id": "fc_1",
    "type": "function_call",
    "status": "in_progress",
    "arguments": "",
    "call_id": "call_1",
    "name": "get_weather",
}
RS = {"id": "rs_1", "type": "reasoning", "summary": []}
START = [E("response.created", response=resp()), E("response.in_progress", response=resp())]


def message(n: int = 0, *deltas: str, text: str | None = None) -> tuple[list[Any], Any]:
    """A message item at output_index ``n``: its events and its finished item."""
    at = {"item_id": "msg_1", "output_index": n, "content_index": 0}
    whole = "".join(deltas) if text is None else text
    done = {**MSG, "status": "completed", "content": [{**PART, "text": whole}]}
    return [
        E("response.output_item.added", output_index=n, item=MSG),
        E("response.content_part.added", **at, part=PART),
        *(E("response.output_text.delta", **at, delta=d, logprobs=[]) for d in deltas),
        E("response.output_text.done", **at, text=whole),
        E("response.content_part.done", **at, part={**PART, "text": whole}),
        E("response.output_item.done", output_index=n, item=done),
    ], done


def function_call(n: int = 0, *fragments: str) -> tuple[list[Any], Any]:
    at = {"item_id": "fc_1", "output_index": n}
    done = {**FC, "status": "completed", "arguments": "".join(fragments)}
    return [
        E("response.output_item.added", output_index=n, item=FC),
        *(E("response.function_call_arguments.delta", **at, delta=f) for f in fragments),
        E("response.function_call_arguments.done", **at, arguments="".join(fragments)),
        E("response.output_item.done", output_index=n, item=done),
    ], done


def reasoning(n: int = 0, *deltas: str) -> tuple[list[Any], Any]:
    at = {"item_id": "rs_1", "output_index": n, "summary_index": 0}
    part = {"type": "summary_text", "text": ""}
    whole = {**part, "text": "".join(deltas)}
    done = {**RS, "summary": [whole]}
    return [
        E("response.output_item.added", output_index=n, item=RS),
        E("response.reasoning_summary_part.added", **at, part=part),
        *(E("response.reasoning_summary_text.delta", **at, delta=d) for d in deltas),
        E("response.reasoning_summary_text.done", **at, text=whole["text"]),
        E("response.reasoning_summary_part.done", **at, part=whole),
        E("response.output_item.done", output_index=n, item=done),
    ], done


def completed(*items: Any, usage: Any = USAGE, **more: Any) -> dict[str, Any]:
    return E("response.completed", response=resp("completed", items, usage, **more))


def text_stream(n: int = 0) -> list[Any]:
    events, done = message(n, "Hi", " there")
    return [*START, *events, completed(done)]


def tool_stream(*fragments: str) -> list[Any]:
    events, done = function_call(0, *fragments)
    return [*START, *events, completed(done)]


def reasoning_stream() -> list[Any]:
    thought, thought_done = reasoning(0, "Think", "ing")
    said, said_done = message(1, "Hi")
    return [*START, *thought, *said, completed(thought_done, said_done)]


def rules(body: bytes, req: Request | None = None) -> set[str]:
    return {v.rule for v in check(req or request(), SSE.events(body))}


def _with(events: list[Any], k: int, **changes: Any) -> list[Any]:
    return [*events[:k], {**events[k], **changes}, *events[k + 1 :]]


# --- one broken stream per rule --------------------------------------------------------

_text = text_stream()  # 0 created, 1 in_progress, 2 added, 3 part added, 4-5 deltas,
_tool = tool_stream('{"city":', '"Paris"}')  # 6 text done, 7 part done, 8 item done, 9 end
_msg_done = _text[8]["item"]
BROKEN: dict[str, bytes] = {
    "data-not-json": sse(*_text[:4], "data: {oops\n\n", *_text[4:]),
    "event-without-data": sse(*_text[:4], "event: ping\n\n", *_text[4:]),
    "event-shape": sse(*_text[:4], 'data: {"delta": "Hi"}\n\n', *_text[4:]),
    "event-name-mismatch": sse(*_text).replace(
        b"event: response.output_text.done\n", b"event: response.output_text.delta\n"
    ),
    "sequence-number-order": sse(
        *_text[:4],
        {**_text[4], "sequence_number": 5},
        {**_text[5], "sequence_number": 4},
        *_text[6:],
    ),
    "sequence-number-missing": sse(*_text).replace(b', "sequence_number": 4}', b"}"),
    "created-not-first": sse(*_text[1:]),
    "in-progress-missing": sse(_text[0], *_text[2:]),
    "response-id-changed": sse(*_text[:-1], completed(_msg_done, id="resp_2")),
    "terminal-missing": sse(*_text[:-1]),
    "terminal-status": sse(
        *_text[:-1], E("response.completed", response=resp("done", [_msg_done], USAGE))
    ),
    "event-after-end": sse(*_text, _text[-1]),
    "data-after-done": sse(*_text, DONE, DONE),
    "usage-missing": sse(*_text[:-1], completed(_msg_done, usage=None)),
    "usage-arithmetic": sse(*_text[:-1], completed(_msg_done, usage={**USAGE, "total_tokens": 9})),
    "index-order": sse(*text_stream(1)),
    "item-not-open": sse(*_text[:9], _text[4], _text[9]),
    "part-not-open": sse(*_text[:8], _text[4], *_text[8:]),
    "left-open": sse(*_text[:7], *_text[8:]),
    "item-identity-changed": sse(*_with(_text, 5, item_id="msg_2")),
    "event-wrong-item-type": sse(
        *_tool[:3],
        E("response.output_text.delta", item_id="fc_1", output_index=0, content_index=0, delta="x"),
        *_tool[3:],
    ),
    "done-text-mismatch": sse(*_with(_text, 6, text="Hi  there")),
    "tool-arguments-invalid": sse(*tool_stream('{"city":', '"Paris"')),
    "final-output-mismatch": sse(*_text[:-1], completed(message(0, "Hi")[1])),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    violations = check(request(), SSE.events(BROKEN[rule]))
    assert [v.rule for v in violations] == [rule], [str(v) for v in violations]
    (violation,) = violations
    # One sentence: what was expected, then what was found.
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


def test_broken_streams_pass_once_repaired() -> None:
    assert rules(sse(*_text)) == set()
    assert rules(sse(*_tool)) == set()
    assert rules(sse(*reasoning_stream())) == set()


def test_violations_point_at_the_event_that_broke_the_rule() -> None:
    (late,) = check(request(), SSE.events(BROKEN["item-not-open"]))
    assert late.index == 9 and "after its done" in late.message
    (missing,) = check(request(), SSE.events(BROKEN["terminal-missing"]))
    assert missing.index == -1 and str(missing).startswith("terminal-missing at stream:")
    (early,) = check(request(), SSE.events(sse(*_text[:-1], DONE)))
    assert early.rule == "terminal-missing" and "[DONE] at event 9" in early.message


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    body = sse(*_text).replace(b"event: response.output_text.delta\n", b"event: delta\n")
    (violation,) = check(request(), SSE.events(body))
    assert violation.rule == "event-name-mismatch" and violation.index == 4
    assert "(1 more like it, the last at event 5)" in violation.message


def test_a_missing_sequence_number_does_not_also_shift_the_rest() -> None:
    # Event 4 lost its number; 5 still says 5, so only the missing one is reported.
    assert rules(BROKEN["sequence-number-missing"]) == {"sequence-number-missing"}
    # A gap is reported once, then the count resumes from the number found.
    gap = sse(*_text[:4], *({**e, "sequence_number": k + 5} for k, e in enumerate(_text[4:])))
    (violation,) = check(request(), SSE.events(gap))
    assert (violation.rule, violation.index) == ("sequence-number-order", 4)
    assert "expected sequence_number 4, found 5" in violation.message


def test_item_rules_name_what_went_wrong() -> None:
    never = sse(*START, *_text[3:8], _text[9])
    found = {v.rule: v.message for v in check(request(), SSE.events(never))}
    assert "found it never added" in found["item-not-open"]
    wrong_call = sse(*_with(_tool, 6, item={**_tool[6]["item"], "call_id": "call_2"}))
    (violation,) = check(request(), SSE.events(wrong_call))
    assert violation.rule == "item-identity-changed" and "call_id" in violation.message
    unfinished = sse(*START, _text[2], completed(_msg_done))
    assert rules(unfinished) == {"left-open"}


def test_usage_arithmetic_checks_types_and_details() -> None:
    def with_usage(usage: Any) -> set[str]:
        return rules(sse(*_text[:-1], completed(_msg_done, usage=usage)))

    assert with_usage({**USAGE, "input_tokens": "5"}) == {"usage-arithmetic"}
    assert with_usage({**USAGE, "output_tokens_details": {"reasoning_tokens": 4}}) == {
        "usage-arithmetic"
    }
    assert with_usage({**USAGE, "input_tokens_details": {"cached_tokens": 5}}) == set()
    assert with_usage("lots") == {"usage-missing"}


def test_every_done_text_is_compared_with_the_deltas() -> None:
    def broken(k: int, **changes: Any) -> set[str]:
        return rules(sse(*_with(_text, k, **changes)))

    assert broken(7, part={**PART, "text": "Hi"}) == {"done-text-mismatch"}
    item = {**_msg_done, "content": [{**PART, "text": "Hi"}]}
    assert broken(8, item=item) == {"done-text-mismatch", "final-output-mismatch"}
    args = _tool[6]["item"]
    assert rules(sse(*_with(_tool, 6, item={**args, "arguments": "{}"}))) >= {"done-text-mismatch"}
    summary = reasoning_stream()
    assert rules(sse(*_with(summary, 6, text="Thought"))) == {"done-text-mismatch"}


def test_a_truncated_stream_reports_only_the_missing_end() -> None:
    assert rules(sse(*_text[:5])) == {"terminal-missing"}


def test_without_a_request_the_verdicts_are_the_same() -> None:
    for rule, body in BROKEN.items():
        assert {v.rule for v in check(None, SSE.events(body))} == {rule}


# --- legal variations ------------------------------------------------------------------

_thought, _thought_done = reasoning(0, "Think", "ing")
_said, _said_done = message(1, "Hi")
_rt = {"item_id": "rs_1", "output_index": 0, "content_index": 0}
_rt_part = {"type": "reasoning_text", "text": ""}
_rs_text = {**RS, "content": [{"type": "reasoning_text", "text": "Hmm"}]}
_refusal_part = {"type": "refusal", "refusal": ""}
_ref = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
_refused = {**MSG, "status": "completed", "content": [{"type": "refusal", "refusal": "No."}]}
_two = message(0, "Hi")[0]
_two_parts = [
    *_two[:5],
    E("response.content_part.added", item_id="msg_1", output_index=0, content_index=1, part=PART),
    E("response.output_text.delta", item_id="msg_1", output_index=0, content_index=1, delta="!"),
    E("response.output_text.done", item_id="msg_1", output_index=0, content_index=1, text="!"),
    E(
        "response.content_part.done",
        item_id="msg_1",
        output_index=0,
        content_index=1,
        part={**PART, "text": "!"},
    ),
]
_two_done = {
    **MSG,
    "status": "completed",
    "content": [{**PART, "text": "Hi"}, {**PART, "text": "!"}],
}
_search = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
_whole_call = {**FC, "arguments": '{"city":"Paris"}'}
_whole_done = {**_whole_call, "status": "completed"}

LEGAL: dict[str, bytes] = {
    "keep-alive comments": sse(": keepalive\n\n", *_text[:5], ": ping\n\n", *_text[5:]),
    "OpenRouter: no event lines, then [DONE]": sse(
        ": OPENROUTER PROCESSING\n\n", *_text, DONE, names=False
    ),
    "Bedrock Mantle: event line after data": b"".join(
        b"data: "
        + json.dumps({**e, "sequence_number": k}).encode()
        + b"\nevent: "
        + e["type"].encode()
        + b"\n\n"
        for k, e in enumerate(_text)
    ),
    "CRLF separators": sse(*_text).replace(b"\n", b"\r\n"),
    "no space after data:": sse(*_text).replace(b"data: ", b"data:"),
    "older servers: no sequence_number at all": sse(*_text).replace(
        b', "sequence_number": ', b', "n": '
    ),
    "background mode: response.queued": sse(
        _text[0], E("response.queued", response=resp("queued")), *_text[1:]
    ),
    "reasoning summary, then a message": sse(*reasoning_stream()),
    "OpenRouter: reasoning text part closed after a later item, renamed in the output": sse(
        *START,
        E("response.output_item.added", output_index=0, item=RS),
        E("response.content_part.added", **_rt, part=_rt_part),
        E("response.reasoning_text.delta", **_rt, delta="Hm"),
        E("response.reasoning_text.delta", **_rt, delta="m"),
        *_said,
        E("response.reasoning_text.done", **_rt, text="Hmm"),
        E("response.content_part.done", **_rt, part={**_rt_part, "text": "Hmm"}),
        E("response.output_item.done", output_index=0, item=_rs_text),
        completed({**_rs_text, "id": "rs_tmp_other"}, _said_done),
        DONE,
        names=False,
    ),
    "a refusal": sse(
        *START,
        E("response.output_item.added", output_index=0, item=MSG),
        E("response.content_part.added", **_ref, part=_refusal_part),
        E("response.refusal.delta", **_ref, delta="No."),
        E("response.refusal.done", **_ref, refusal="No."),
        E("response.content_part.done", **_ref, part={**_refusal_part, "refusal": "No."}),
        E("response.output_item.done", output_index=0, item=_refused),
        completed(_refused),
    ),
    "two content parts, an annotation, unknown keys": sse(
        *START,
        *_two_parts[:4],
        E("response.output_text.annotation.added", **_ref, annotation={}, annotation_index=0),
        *_two_parts[4:],
        E("response.output_item.done", output_index=0, item=_two_done, obfuscation="xy"),
        completed(_two_done, tool_usage={}, moderation=None),
    ),
    "a built-in tool item with its own events": sse(
        *START,
        E("response.output_item.added", output_index=0, item=_search),
        E("response.web_search_call.in_progress", item_id="ws_1", output_index=0),
        E("response.output_item.done", output_index=0, item={**_search, "status": "completed"}),
        completed({**_search, "status": "completed"}),
    ),
    "a function call whole in its added item, no deltas": sse(
        *START,
        E("response.output_item.added", output_index=0, item=_whole_call),
        E(
            "response.function_call_arguments.done",
            item_id="fc_1",
            output_index=0,
            arguments='{"city":"Paris"}',
        ),
        E("response.output_item.done", output_index=0, item=_whole_done),
        completed(_whole_done),
    ),
    "response.incomplete with an unfinished message status": sse(
        *_text[:-1],
        E(
            "response.incomplete",
            response=resp(
                "incomplete", [_msg_done], USAGE, incomplete_details={"reason": "max_output_tokens"}
            ),
        ),
    ),
    "response.failed with items left open and usage null": sse(
        *_text[:5],
        E(
            "response.failed",
            response=resp("failed", [], None, error={"code": "server_error", "message": "x"}),
        ),
    ),
    "an error event ends the stream": sse(
        *_text[:5],
        E("error", code="server_error", message="The server had an error.", param=None),
    ),
    "an error event, then [DONE]": sse(
        *_text[:5], E("error", error={"message": "overloaded"}), DONE, names=False
    ),
    "an error block named by event: error only": sse(*_text[:5])
    + b'event: error\ndata: {"message": "boom"}\n\n',
    "an error as the very first event": sse(E("error", code="rate_limit_exceeded", message="x")),
    "terminal output null (the SDK rebuilds it)": sse(
        *_text[:-1],
        E("response.completed", response={**resp("completed", [], USAGE), "output": None}),
    ),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    violations = check(request(), decode(LEGAL[name]))
    assert violations == [], [str(v) for v in violations]


def test_the_variants_really_differ_from_the_plain_stream() -> None:
    assert b"event:" not in LEGAL["OpenRouter: no event lines, then [DONE]"]
    assert b"sequence_number" not in LEGAL["older servers: no sequence_number at all"]
    mantle = decode(LEGAL["Bedrock Mantle: event line after data"])
    assert [e.event for e in mantle] == [json.loads(e.data or "")["type"] for e in mantle]
    assert b"\r\n\r\n" in LEGAL["CRLF separators"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
# --- synthesize ------------------------------------------------------------------------

arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=3).flatmap(
    lambda d: st.sampled_from([json.dumps(d), json.dumps(d, ensure_ascii=False)])
)
tool_calls = st.lists(
    st.builds(
        ToolCall,
        name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        arguments=arguments,
        id=st.none() | st.just("call_given"),
    ),
    max_size=3,
).map(tuple)
plain = st.text(max_size=30).filter(lambda t: "<think>" not in t)
texts = (
    st.none()
    | plain
    | st.sampled_from(["", "héllo 👋🏽 wörld", "日本語のテキスト", "👨‍👩‍👧", "a\r\nb"])
    | st.builds(
        lambda r, t: f"<think>{r}</think>{t}", plain.filter(lambda r: "</think>" not in r), plain
    )
)
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "stop", "length", "content_filter", "failed"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)
TERMINALS = {"length": "incomplete", "content_filter": "incomplete", "failed": "failed"}


def body_for(stream: bool, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4.1", "input": [{"role": "user", "content": "Hi"}]}
    return {**body, "stream": True, **more} if stream else {**body, **more}


def expected(script: Script) -> tuple[str | None, str | None]:
    """(reasoning summary, message text) the script asks for; None: no such item."""
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    summary = None
    if text is not None and text.startswith("<think>"):
        summary, _, text = text[len("<think>") :].partition("</think>")
    if text is None or (not text and script.tool_calls):
        text = None
    return summary, text


def datas(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in decode(body) if e.data]


def reassemble(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client builds from the events alone: reasoning, text, calls, the end."""
    out: dict[str, Any] = {"summary": None, "text": None, "calls": {}, "types": []}
    for e in items:
        kind = e["type"]
        if kind == "response.output_item.added":
            out["types"].append(e["item"]["type"])
            if e["item"]["type"] == "function_call":
                call = e["item"]
                out["calls"][e["output_index"]] = [call["name"], call["call_id"], ""]
        elif kind == "response.reasoning_summary_text.delta":
            out["summary"] = (out["summary"] or "") + e["delta"]
        elif kind == "response.content_part.added":
            out["text"] = ""
        elif kind == "response.output_text.delta":
            out["text"] += e["delta"]
        elif kind == "response.function_call_arguments.delta":
            out["calls"][e["output_index"]][2] += e["delta"]
        elif kind == "response.reasoning_summary_part.added":
            out["summary"] = ""
    out["end"] = items[-1]
    return out


@given(scripts)
def test_synthesized_streams_pass_every_rule_and_carry_the_script(script: Script) -> None:
    req = request(body_for(True))
    response = synthesize(req, script)
    assert (response.status, response.reason) == (200, "OK")
    assert header(response.headers, "content-type") == "text/event-stream; charset=utf-8"
    assert check(req, SSE.events(response.body)) == []
    for frame in SSE.frames(response.body):
        frame.decode("utf-8")  # strict: every event is whole UTF-8
    items = datas(response.body)
    got = reassemble(items)
    summary, text = expected(script)
    assert (got["summary"], got["text"]) == (summary, text)
    assert [name for name, _, _ in got["calls"].values()] == [c.name for c in script.tool_calls]
    assert [a for _, _, a in got["calls"].values()] == [c.arguments for c in script.tool_calls]
    given_ids = [c.id for c in script.tool_calls]
    for (_, call_id, _), given_id in zip(got["calls"].values(), given_ids, strict=True):
        assert call_id == given_id or (given_id is None and len(call_id) == 29)
    terminal = TERMINALS.get(script.finish_reason or "", "completed")
    end = got["end"]
    assert end["type"] == f"response.{terminal}" and end["response"]["status"] == terminal
    usage = end["response"]["usage"]
    size = script.chunk_size
    thoughts = math.ceil(len(summary or "") / size)
    said = math.ceil(len(text or "") / size) + sum(
        math.ceil(len(c.arguments) / size) for c in script.tool_calls
    )
    assert usage["output_tokens"] == thoughts + said
    assert usage["output_tokens_details"]["reasoning_tokens"] == thoughts
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    estimate = max(1, math.ceil(len(canonical_json([None, body_for(True)["input"]])) / 4))
    assert usage["input_tokens"] == (
        script.prompt_tokens if script.prompt_tokens is not None else estimate
    )


@given(scripts)
def test_synthesized_bodies_carry_the_script(script: Script) -> None:
    req = request(body_for(False, instructions="Be brief.", temperature=0.5))
    response = synthesize(req, script)
    assert header(response.headers, "content-type") == "application/json"
    body = json.loads(response.body)
    streamed = datas(
        synthesize(request(body_for(True, instructions="Be brief.", temperature=0.5)), script).body
    )
    # The non-stream body is the stream's final response, to the byte of each field.
    assert body == streamed[-1]["response"]
    assert body["object"] == "response" and body["model"] == "gpt-4.1"
    assert (body["instructions"], body["temperature"]) == ("Be brief.", 0.5)
    summary, text = expected(script)
    output = body["output"]
    assert [o["type"] for o in output] == (
        ["reasoning"] * (summary is not None)
        + ["message"] * (text is not None)
        + ["function_call"] * len(script.tool_calls)
    )
    messages = [o for o in output if o["type"] == "message"]
    assert [m["content"][0]["text"] for m in messages] == ([text] if text is not None else [])
    calls = [(o["name"], o["arguments"]) for o in output if o["type"] == "function_call"]
    assert calls == [(c.name, c.arguments) for c in script.tool_calls]


@given(scripts, st.integers(0, 2**32), st.booleans())
def test_a_different_seed_gives_a_different_id(script: Script, other: int, stream: bool) -> None:
    assume(other != script.seed)
    req = request(body_for(stream))

    def response_id(s: Script) -> str:
        body = synthesize(req, s).body
        found: str = (datas(body)[0]["response"] if stream else json.loads(body))["id"]
        return found

    ids = {response_id(script), response_id(Script(**{**_fields(script), "seed": other}))}
    assert len(ids) == 2 and all(i.startswith("resp_") and len(i) == 55 for i in ids)


def _fields(script: Script) -> dict[str, Any]:
    return {name: getattr(script, name) for name in Script.__dataclass_fields__}


@given(scripts, st.booleans())
def test_synthesized_streams_stay_legal_without_event_lines_or_with_done(
    script: Script, done: bool
) -> None:
    req = request(body_for(True))
    items = datas(synthesize(req, script).body)
    assert rules(sse(*items, *([DONE] if done else []), names=False), req) == set()


# --- synthesize: the exact OpenAI order, shapes, headers, errors -----------------------


def test_a_text_stream_follows_openai_order_exactly() -> None:
    body = synthesize(request(), Script(text="Hello", chunk_size=3, seed=7)).body
    items = datas(body)
    assert [e["type"] for e in items] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in items] == list(range(10))
    assert [e.event for e in decode(body)] == [e["type"] for e in items]
    delta = items[4]
    assert list(delta) == [
        "type",
        "content_index",
        "delta",
        "item_id",
        "logprobs",
        "output_index",
        "sequence_number",
    ]
    assert items[2]["item"] == {**items[8]["item"], "status": "in_progress", "content": []}
    assert items[3]["part"] == {
        "type": "output_text",
        "annotations": [],
        "logprobs": [],
        "text": "",
    }
    created = items[0]["response"]
    assert (created["status"], created["usage"], created["output"]) == ("in_progress", None, [])
    assert created["service_tier"] == "auto" and items[-1]["response"]["service_tier"] == "default"
    assert list(created)[:4] == ["id", "object", "created_at", "status"]
    assert items[-1]["response"]["output"] == [items[8]["item"]]
    assert body.startswith(
        b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_'
    )
    assert b"data: [DONE]" not in body


def test_a_tool_call_stream_sends_function_call_items_with_argument_fragments() -> None:
    calls = (ToolCall("get_capital", '{"country":"UK"}'), ToolCall("noop", "{}", id="call_given"))
    items = datas(synthesize(request(), Script(tool_calls=calls, chunk_size=8, seed=1)).body)
    added = [e["item"] for e in items if e["type"] == "response.output_item.added"]
    assert [a["type"] for a in added] == ["function_call", "function_call"]
    assert list(added[0]) == ["id", "type", "status", "arguments", "call_id", "name"]
    assert added[0]["id"].startswith("fc_") and added[0]["call_id"].startswith("call_")
    assert added[1]["call_id"] == "call_given" and added[0]["arguments"] == ""
    deltas = [e["delta"] for e in items if e["type"] == "response.function_call_arguments.delta"]
    assert deltas == ['{"countr', 'y":"UK"}', "{}"]
    final = items[-1]["response"]
    assert [(o["name"], o["arguments"], o["status"]) for o in final["output"]] == [
        ("get_capital", '{"country":"UK"}', "completed"),
        ("noop", "{}", "completed"),
    ]
    assert final["usage"]["output_tokens"] == 3


def test_the_think_convention_makes_a_reasoning_summary_item() -> None:
    req = request(
        {**BODY, "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low"}}
    )
    items = datas(synthesize(req, Script(text="<think>Add them.</think>Nine.", chunk_size=4)).body)
    final = items[-1]["response"]
    reasoning_item, message_item = final["output"]
    assert reasoning_item["type"] == "reasoning" and reasoning_item["id"].startswith("rs_")
    assert reasoning_item["summary"] == [{"type": "summary_text", "text": "Add them."}]
    assert reasoning_item["encrypted_content"].startswith("gAAAAA")
    assert message_item["content"][0]["text"] == "Nine."
    assert final["reasoning"] == {"effort": "low", "summary": None}
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3
    kinds = [e["type"] for e in items]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    plain = datas(synthesize(request(), Script(text="<think>x</think>y")).body)
    assert "encrypted_content" not in plain[-1]["response"]["output"][0]


@pytest.mark.parametrize(
    ("finish", "terminal", "details"),
    [
        ("length", "incomplete", {"reason": "max_output_tokens"}),
        ("max_output_tokens", "incomplete", {"reason": "max_output_tokens"}),
        ("content_filter", "incomplete", {"reason": "content_filter"}),
    ],
)
def test_finish_reasons_that_end_incomplete(
    finish: str, terminal: str, details: dict[str, str]
) -> None:
    items = datas(synthesize(request(), Script(text="Cut sho", finish_reason=finish)).body)
    end = items[-1]
    assert end["type"] == f"response.{terminal}"
    assert end["response"]["incomplete_details"] == details
    assert end["response"]["output"][0]["status"] == "incomplete"


def test_a_failed_script_ends_with_response_failed() -> None:
    script = Script(text="Part", finish_reason="failed", error_message="The model crashed.")
    end = datas(synthesize(request(), script).body)[-1]
    assert end["type"] == "response.failed" and end["response"]["status"] == "failed"
    assert end["response"]["error"] == {"code": "server_error", "message": "The model crashed."}


def test_the_response_echoes_the_request_parameters() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {}, "strict": True}]
    asked = {
        "model": "gpt-5",
        "input": "x",
        "instructions": "Be terse.",
        "max_output_tokens": 50,
        "tools": tools,
        "tool_choice": "required",
        "text": {"format": {"type": "json_object"}},
        "previous_response_id": "resp_prev",
        "store": False,
        "metadata": {"k": "v"},
        "service_tier": "flex",
        "top_p": 0.5,
    }
    final = json.loads(synthesize(request(asked), Script(text="{}")).body)
    assert {k: final[k] for k in asked if k not in ("input", "text")} == {
        k: v for k, v in asked.items() if k not in ("input", "text")
    }
    assert final["text"] == {"format": {"type": "json_object"}, "verbosity": "medium"}
    assert final["completed_at"] == final["created_at"] + 1 and final["status"] == "completed"


def test_a_script_without_text_or_tool_calls_says_the_default_text() -> None:
    body = json.loads(synthesize(request({"model": "m", "input": "q"}), Script()).body)
    assert body["output"][0]["content"][0]["text"] == DEFAULT_TEXT
    assert json.loads(synthesize(request([1]), Script()).body)["model"] == "tapedeck"


def test_a_lone_surrogate_still_makes_a_valid_stream() -> None:
    req = request()
    body = synthesize(req, Script(text="a\ud800b", chunk_size=1)).body
    body.decode("utf-8")
    assert reassemble(datas(body))["text"] == "a\ud800b"
    assert check(req, SSE.events(body)) == []


def test_success_headers_look_like_openai_and_script_headers_win() -> None:
    response = synthesize(
        request(), Script(headers=(("x-request-id", "req_mine"), ("x-extra", "1")))
    )
    names = [name for name, _ in response.headers]
    assert names[:3] == ["content-type", "openai-processing-ms", "openai-version"]
    assert len([n for n in names if n.startswith("x-ratelimit-")]) == 6
    assert names.count("x-request-id") == 1 and response.headers[-2:] == (
        ("x-request-id", "req_mine"),
        ("x-extra", "1"),
    )


def test_a_scripted_429_is_the_responses_error_with_retry_headers() -> None:
    script = Script(
        status=429, error_message="Rate limit reached.", headers=(("retry-after", "3"),)
    )
    response = synthesize(request(), script)
    assert (response.status, response.reason) == (429, "Too Many Requests")
    assert response.body.startswith(b'{\n  "error": {\n    "message": "Rate limit reached."')
    assert json.loads(response.body)["error"] == {
        "message": "Rate limit reached.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert [v for k, v in response.headers if k == "retry-after"] == ["3"]
    assert header(response.headers, "x-ratelimit-remaining-requests") == "0"
    server = synthesize(request(), Script(status=500, error_message="Boom."))
    assert json.loads(server.body)["error"]["type"] == "server_error"


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "code", "reason"),
    [
        (401, "invalid_request_error", "invalid_api_key", "Unauthorized"),
        (404, "invalid_request_error", "model_not_found", "Not Found"),
        (429, "insufficient_quota", "insufficient_quota", "Too Many Requests"),
        (400, "invalid_request_error", None, "Bad Request"),
        (500, "server_error", None, "Internal Server Error"),
    ],
)
def test_error_shape_code_and_status(status: int, kind: str, code: str | None, reason: str) -> None:
    response = error(status, "Something went wrong.", kind)
    assert (response.status, response.reason) == (status, reason)
    assert json.loads(response.body) == {
        "error": {"message": "Something went wrong.", "type": kind, "param": None, "code": code}
    }
    assert header(response.headers, "content-type") == "application/json"
    assert (header(response.headers, "x-request-id") or "").startswith("req_")


def test_error_is_indented_by_two_with_no_trailing_newline() -> None:
    body = error(401, "Bad key <x> & café", "invalid_request_error").body
    assert body == (
        b'{\n  "error": {\n    "message": "Bad key <x> & caf\xc3\xa9",\n'
        b'    "type": "invalid_request_error",\n    "param": null,\n'
        b'    "code": "invalid_api_key"\n  }\n}'
    )
    assert error(400, "a\ud800", "invalid_request_error").body.decode() == (
        '{\n  "error": {\n    "message": "a?",\n    "type": "invalid_request_error",\n'
        '    "param": null,\n    "code": null\n  }\n}'
    )


def test_the_same_error_has_the_same_request_id() -> None:
    def rid(message: str) -> str | None:
        return header(error(400, message, "invalid_request_error").headers, "x-request-id")

    assert rid("a") == rid("a") != rid("b")


# --- identity, routes ------------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    one = json.loads('{"model": "gpt-4.1", "input": "hi", "temperature": 1}')
    two = json.loads('{"temperature":1.0,"input":"hi","model":"gpt-4.1"}')
    assert identity(request(one)) == identity(request(two))
    assert identity(request({**one, "temperature": 0.5})) != identity(request(one))


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    base = {"model": "gpt-4.1", "input": "hi", "stream": True, "stream_options": {"x": 1}}
    changed = copy.deepcopy(base)
    if field.startswith("stream_options."):
        changed["stream_options"][field.split(".", 1)[1]] = True
    else:
        changed[field] = {"anything": "at all"}
    assert changed != base
    assert identity(request(changed)) == identity(request(base))


def test_defaults_spelled_out_match_defaults_left_out() -> None:
    base = {"model": "gpt-4.1", "input": [{"role": "user", "content": "hi"}]}
    same = [
        {**base, "input": "hi"},
        {**base, "input": [{"type": "message", "role": "user", "content": "hi"}]},
        {**base, "stream_options": {}},
        {**base, "stream_options": {"include_obfuscation": False}},
        {**base, "user": "u-1", "store": False, "metadata": {"a": "b"}, "prompt_cache_key": "k"},
        {**base, "previous_response_id": None, "instructions": None},
        *({**base, name: value} for name, value in DEFAULTS.items()),
    ]
    assert {identity(request(body)) for body in same} == {identity(request(base))}
    different = [
        {**base, "stream": True},
        {**base, "background": True},
        {**base, "parallel_tool_calls": False},
        {**base, "tool_choice": "required"},
        {**base, "input": "bye"},
        {**base, "input": [{"role": "system", "content": "hi"}]},
        {**base, "instructions": "Be brief."},
        {**base, "previous_response_id": "resp_1"},
        {**base, "include": ["reasoning.encrypted_content"]},
        {**base, "model": "gpt-4.1-mini"},
    ]
    identities = {identity(request(body)) for body in [base, *different]}
    assert len(identities) == 1 + len(different)


def test_input_items_other_than_messages_keep_their_type() -> None:
    call = {"type": "function_call_output", "call_id": "c1", "output": "42"}
    body = {"model": "m", "input": [call]}
    assert dict(identity(request(body)))["input"] == canonical_json([call])


def test_azure_deployment_and_api_version_take_part_in_identity() -> None:
    path = "/openai/deployments/my-gpt/responses"
    base = identity(request(BODY, path, [("api-version", "2025-04-01-preview")]))
    assert ("azure.deployment", '"my-gpt"') in base
    assert base != identity(request(BODY, path, [("api-version", "2099-01-01")]))
    other = identity(
        request(BODY, path.replace("my-gpt", "other"), [("api-version", "2025-04-01-preview")])
    )
    assert base != other
    assert ("azure.api-version", '"v1"') in identity(
        request(BODY, "/openai/v1/responses", [("api-version", "v1")])
    )


def test_identity_of_a_body_that_is_not_an_object() -> None:
    assert identity(request([1, 2])) == (("body", json.dumps("[1,2]")),)
    raw = Request("POST", "/v1/responses", body=b"not json")
    assert identity(raw) == (("body", '"not json"'),)
    hash(identity(raw))


def test_is_stream() -> None:
    assert is_stream(request(BODY))
    assert not is_stream(request({**BODY, "stream": False}))
    assert not is_stream(request({**BODY, "stream": "true"}))
    assert not is_stream(request([BODY]))
    assert not is_stream(Request("POST", "/v1/responses", body=b"x"))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/responses",
        "/responses",
        "/v1/responses/",
        "/openai/v1/responses",
        "/openai/deployments/my-gpt/responses",
        "/api/v1/responses",
        "/some/gateway/v1/responses",
    ],
)
def test_the_dialect_serves_every_responses_route(path: str) -> None:
    match = resolve("POST", path)
    assert match is not None and match.dialect is DIALECT and match.route.endpoint == "responses"


def test_the_dialect_is_registered_and_leaves_other_routes_alone() -> None:
    assert DIALECTS["openai_responses"] is DIALECT
    assert (DIALECT.name, DIALECT.framing, DIALECT.base_path) == ("openai_responses", SSE, "/v1")
    assert dict(DIALECT.environment)["OPENAI_BASE_URL"] == "{url}/v1"
    assert resolve("GET", "/v1/responses") is None
    chat = resolve("POST", "/v1/chat/completions")
    assert chat is not None and chat.dialect.name == "openai_chat"
    assert resolve("POST", "/v1/responses/resp_1/cancel") is None
    assert DIALECT.check is check and DIALECT.synthesize is synthesize and DIALECT.error is error
