"""The openai_chat dialect: every check rule caught on a stream that breaks only it, legal
variations that pass, synthesized answers that pass and say what the script said, the
request identity, and OpenAI's error shape."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects.openai.chat import (
    DEFAULT_TEXT,
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

MESSAGES = [{"role": "user", "content": "Say hi"}]
PLAIN = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
USAGE = {**PLAIN, "stream_options": {"include_usage": True}}
ABSENT = object()  # a key left out, as opposed to a key set to null


def request(body: Any = None, raw: bytes | None = None) -> Request:
    text = raw if raw is not None else json.dumps(body).encode()
    return Request("POST", "/v1/chat/completions", body=text, json=body)


def choice(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def chunk(*choices: dict[str, Any], usage: Any = ABSENT, **top: Any) -> dict[str, Any]:
    out = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": list(choices),
        **top,
    }
    if usage is not ABSENT:
        out["usage"] = usage
    return out


def usage_obj(prompt: int = 5, completion: int = 3, total: int | None = None) -> dict[str, int]:
    total = prompt + completion if total is None else total
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


DONE = "data: [DONE]\n\n"


def sse(*items: dict[str, Any] | str) -> bytes:
    """Chunks as ``data:`` events; strings are raw blocks (comments, [DONE], oddities)."""
    return "".join(
        i if isinstance(i, str) else f"data: {json.dumps(i)}\n\n" for i in items
    ).encode()


def text_stream(u: Any = ABSENT) -> list[dict[str, Any] | str]:
    return [
        chunk(choice(role="assistant", content=""), usage=u),
        chunk(choice(content="Hi"), usage=u),
        chunk(choice(content=" there"), usage=u),
        chunk(choice(finish="stop"), usage=u),
    ]


def usage_stream(usage: Any = None) -> list[dict[str, Any] | str]:
    return [*text_stream(None), chunk(usage=usage or usage_obj())]


def tool_stream(*fragments: str, **extra: Any) -> list[dict[str, Any] | str]:
    header_call = {"index": 0, "id": "call_1", "type": "function"}
    header_call["function"] = {"name": "get_weather", "arguments": ""}
    return [
        chunk(choice(role="assistant", content=None, tool_calls=[header_call])),
        *(
            chunk(choice(tool_calls=[{"index": 0, **extra, "function": {"arguments": f}}]))
            for f in fragments
        ),
        chunk(choice(finish="tool_calls")),
    ]


PLAIN_REQUEST = request(PLAIN)


def rules(body: bytes, req: Request | None = PLAIN_REQUEST) -> set[str]:
    return {v.rule for v in check(req, SSE.events(body))}


# --- one broken stream per rule --------------------------------------------------------


def _with(item: dict[str, Any] | str, **changes: Any) -> dict[str, Any]:
    assert isinstance(item, dict)
    return {**item, **changes}


_text = text_stream()
_usage = usage_stream()
BROKEN: dict[str, tuple[dict[str, Any] | None, bytes]] = {
    "data-not-json": (PLAIN, sse(*_text[:2], 'data: {"id": oops\n\n', *_text[2:], DONE)),
    "event-without-data": (PLAIN, sse(*_text[:2], "event: ping\n\n", *_text[2:], DONE)),
    "done-missing": (PLAIN, sse(*_text)),
    "data-after-done": (PLAIN, sse(*_text, DONE, DONE)),
    "event-after-error": (
        PLAIN,
        sse(*_text[:2], {"error": {"message": "overloaded"}}, _text[2], DONE),
    ),
    "chunk-shape": (PLAIN, sse(*_text[:2], {"id": "chatcmpl-1", "delta": {}}, *_text[2:], DONE)),
    "chunk-identity-changed": (
        PLAIN,
        sse(*_text[:2], _with(_text[2], id="chatcmpl-2"), *_text[3:], DONE),
    ),
    "object-not-chunk": (
        PLAIN,
        sse(*_text[:2], _with(_text[2], object="chat.completion"), *_text[3:], DONE),
    ),
    "role-not-first": (
        PLAIN,
        sse(*_text[:2], chunk(choice(role="user", content="!")), *_text[3:], DONE),
    ),
    "finish-reason-repeated": (PLAIN, sse(*_text, _text[3], DONE)),
    "finish-reason-missing": (PLAIN, sse(*_text[:3], DONE)),
    "content-after-finish": (PLAIN, sse(*_text, chunk(choice(content="more")), DONE)),
    "tool-call-start-incomplete": (
        PLAIN,
        sse(*tool_stream('{"city":', '"Paris"}'), DONE).replace(b'"id": "call_1", ', b""),
    ),
    "tool-call-header-repeated": (
        PLAIN,
        sse(*tool_stream('{"city":', '"Paris"}', id="call_1"), DONE),
    ),
    "tool-arguments-invalid": (PLAIN, sse(*tool_stream('{"city":', '"Paris"'), DONE)),
    "usage-chunk-missing": (USAGE, sse(*_usage[:-1], DONE)),
    "usage-chunk-duplicate": (USAGE, sse(*_usage, _usage[-1], DONE)),
    "usage-chunk-not-last": (USAGE, sse(*_usage[:3], _usage[4], _usage[3], DONE)),
    "usage-on-choices-chunk": (
        USAGE,
        sse(*_usage[:3], chunk(choice(finish="stop"), usage=usage_obj()), _usage[4], DONE),
    ),
    "usage-null-missing": (USAGE, sse(_usage[0], chunk(choice(content="Hi")), *_usage[2:], DONE)),
    "usage-unrequested": (PLAIN, sse(*_text, chunk(usage=usage_obj()), DONE)),
    "usage-arithmetic": (USAGE, sse(*_usage[:-1], chunk(usage=usage_obj(5, 3, 9)), DONE)),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    body, stream = BROKEN[rule]
    violations = check(request(body), SSE.events(stream))
    assert [v.rule for v in violations] == [rule]
    (violation,) = violations
    # One sentence: what was expected, then what was found.
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


def test_broken_streams_pass_once_repaired() -> None:
    # The fixtures are the legal streams plus one defect: the bases themselves pass.
    assert rules(sse(*_text, DONE)) == set()
    assert rules(sse(*_usage, DONE), request(USAGE)) == set()
    assert rules(sse(*tool_stream('{"city":', '"Paris"}'), DONE)) == set()


def test_violations_point_at_the_event_that_broke_the_rule() -> None:
    (late,) = check(request(PLAIN), SSE.events(BROKEN["content-after-finish"][1]))
    assert late.index == 4
    (missing,) = check(request(PLAIN), SSE.events(BROKEN["done-missing"][1]))
    assert missing.index == -1 and str(missing).startswith("done-missing at stream:")


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    roles = ["assistant", "user", "tool", "user"]
    body = sse(
        *(chunk(choice(role=r, content=str(i))) for i, r in enumerate(roles)), _text[3], DONE
    )
    (violation,) = check(request(PLAIN), SSE.events(body))
    assert violation.rule == "role-not-first" and violation.index == 1
    assert "(2 more like it, the last at event 3)" in violation.message


def test_a_role_may_repeat_but_never_change() -> None:
    # OpenRouter, Snowflake Cortex and Z.ai repeat the first delta's role on later deltas,
    # and the openai SDK reads that; another role, or a role where the first delta had
    # none, still breaks the rule.
    again = [chunk(choice(role="assistant", content=t)) for t in ("", "Hi", " there")]
    assert rules(sse(*again, chunk(choice(finish="stop", role="assistant")), DONE)) == set()
    changed = sse(*again, chunk(choice(finish="stop", role="tool")), DONE)
    (violation,) = check(PLAIN_REQUEST, SSE.events(changed))
    assert (violation.rule, violation.index) == ("role-not-first", 3)
    assert violation.message == (
        "expected the role of the first delta of choice 0 ('assistant') or none on later "
        "deltas, found role 'tool'."
    )
    late = sse(chunk(choice(content="")), chunk(choice(role="assistant", content="Hi")), _text[3])
    (violation,) = check(PLAIN_REQUEST, SSE.events(late + DONE.encode()))
    assert (violation.rule, violation.index) == ("role-not-first", 1)
    assert "choice 0 (none)" in violation.message


def test_usage_unasked_is_tolerated_on_a_finish_chunk_only() -> None:
    # Mistral and Groq put usage on the finish chunk without include_usage (corpus): a
    # client reading the last chunk gets it once. On a chunk that finishes no choice, or
    # on a choices == [] chunk, nobody asked for it and OpenAI never sends it.
    on_finish = sse(*_text[:3], chunk(choice(finish="stop"), usage=usage_obj()), DONE)
    assert rules(on_finish) == set()
    on_content = sse(_text[0], chunk(choice(content="Hi"), usage=usage_obj()), *_text[2:], DONE)
    (violation,) = check(PLAIN_REQUEST, SSE.events(on_content))
    assert (violation.rule, violation.index) == ("usage-unrequested", 1)
    assert violation.message == (
        "expected no usage outside a finish chunk since include_usage was not set, found it "
        "on a chunk that finishes no choice."
    )
    every_chunk = sse(*text_stream(usage_obj()), DONE)  # cumulative usage on each chunk
    (violation,) = check(PLAIN_REQUEST, SSE.events(every_chunk))
    assert violation.rule == "usage-unrequested" and "(2 more like it" in violation.message
    (alone,) = check(PLAIN_REQUEST, SSE.events(BROKEN["usage-unrequested"][1]))
    assert alone.message == "expected no usage chunk since include_usage was not set, found one."
    # Unknown include_usage (no request): neither is a fault.
    assert rules(on_content, None) == set()


def test_without_a_request_only_the_rules_that_need_it_are_skipped() -> None:
    # include_usage is unknown: neither missing usage:null nor the usage chunk is a fault...
    assert rules(sse(*_text, chunk(usage=usage_obj()), DONE), None) == set()
    assert rules(sse(*_usage[:-1], DONE), None) == set()
    # ...but a usage chunk out of place, twice, or with wrong sums still is.
    assert rules(sse(*_usage[:3], _usage[4], _usage[3], DONE), None) == {"usage-chunk-not-last"}
    assert rules(sse(*_usage, _usage[-1], DONE), None) == {"usage-chunk-duplicate"}
    assert rules(sse(*_usage[:-1], chunk(usage=usage_obj(1, 1, 3)), DONE), None) == {
        "usage-arithmetic"
    }


def test_usage_arithmetic_also_checks_usage_on_choice_chunks_and_types() -> None:
    bad_sum = chunk(choice(finish="stop"), usage=usage_obj(2, 2, 5))
    assert rules(sse(*_text[:3], bad_sum, DONE)) == {"usage-arithmetic"}
    not_ints = chunk(usage={"prompt_tokens": "5", "completion_tokens": 3, "total_tokens": 8})
    assert rules(sse(*_usage[:-1], not_ints, DONE), request(USAGE)) == {"usage-arithmetic"}


def test_a_stream_cut_mid_answer_reports_each_missing_part() -> None:
    assert rules(sse(*_usage[:2]), request(USAGE)) == {
        "done-missing",
        "finish-reason-missing",
        "usage-chunk-missing",
    }


def test_tool_call_rules_name_what_is_missing_or_repeated() -> None:
    no_type = sse(*tool_stream("{}"), DONE).replace(b'"type": "function", ', b"")
    (violation,) = check(request(PLAIN), SSE.events(no_type))
    assert violation.rule == "tool-call-start-incomplete" and "found no type" in violation.message
    renamed = sse(*tool_stream("{", "}"), DONE).replace(
        b'{"arguments": "}"}', b'{"name": "get_weather", "arguments": "}"}'
    )
    assert rules(renamed) == {"tool-call-header-repeated"}


def test_a_truncated_tool_call_is_judged_at_the_end_of_the_stream() -> None:
    assert rules(sse(*tool_stream('{"city":')[:-1], DONE)) == {
        "finish-reason-missing",
        "tool-arguments-invalid",
    }


def test_an_unfinished_choice_after_a_mid_stream_error_is_not_blamed() -> None:
    body = sse(*tool_stream('{"ci')[:-1], "event: error\ndata: {}\n\n")
    assert rules(body) == set()


# --- legal variations ------------------------------------------------------------------

AZURE_PREFILTER = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
}
FILTER = {"hate": {"filtered": False, "severity": "safe"}}
_whole_call = {
    "index": 0,
    "id": "call_9",
    "type": "function",
    "function": {"name": "f", "arguments": '{"a": 1}'},
}

LEGAL: dict[str, tuple[dict[str, Any] | None, bytes]] = {
    "keep-alive comments": (
        PLAIN,
        sse(": keepalive\n\n", *_text[:2], ": ping\n\n", *_text[2:], DONE),
    ),
    "event lines before data": (
        PLAIN,
        b"".join(
            b"event: chunk\n" + block + b"\n\n"
            for block in sse(*_text, DONE).split(b"\n\n")
            if block
        ),
    ),
    "CRLF separators": (PLAIN, sse(*_text, DONE).replace(b"\n", b"\r\n")),
    "no space after data:": (PLAIN, sse(*_text, DONE).replace(b"data: ", b"data:")),
    "interleaved n=2": (
        {**USAGE, "n": 2},
        sse(
            chunk(choice(0, role="assistant", content=""), usage=None),
            chunk(choice(1, role="assistant", content=""), usage=None),
            chunk(choice(0, content="Hi"), usage=None),
            chunk(choice(1, content="Yo"), usage=None),
            chunk(choice(1, "stop"), usage=None),
            chunk(choice(0, "length"), usage=None),
            chunk(usage=usage_obj(5, 2)),
            DONE,
        ),
    ),
    "Azure prefilter chunk and content filter results": (
        USAGE,
        sse(
            AZURE_PREFILTER,
            chunk(
                {**choice(role="assistant", content=""), "content_filter_results": {}}, usage=None
            ),
            chunk({**choice(content="Hi"), "content_filter_results": FILTER}, usage=None),
            chunk(
                {"index": 0, "finish_reason": None, "content_filter_results": FILTER}, usage=None
            ),
            chunk({**choice(finish="stop"), "content_filter_results": {}}, usage=None),
            chunk(usage=usage_obj(), latency_checkpoint={"engine_ttft_ms": 80}),
            DONE,
        ),
    ),
    "whole tool call in one delta": (
        PLAIN,
        sse(
            chunk(choice(role="assistant", content="")),
            chunk(choice(tool_calls=[_whole_call])),
            chunk(choice(finish="tool_calls")),
            DONE,
        ),
    ),
    "parallel tool calls, a later delta repeating type": (
        PLAIN,
        sse(
            chunk(choice(role="assistant", tool_calls=[_whole_call])),
            chunk(
                choice(
                    tool_calls=[
                        {
                            **_whole_call,
                            "index": 1,
                            "id": "call_8",
                            "function": {"name": "g", "arguments": "["},
                        }
                    ]
                )
            ),
            chunk(
                choice(
                    tool_calls=[{"index": 1, "type": "function", "function": {"arguments": "]"}}]
                )
            ),
            chunk(choice(finish="tool_calls")),
            DONE,
        ),
    ),
    "empty deltas and a first delta without role": (
        PLAIN,
        sse(
            chunk(choice()),
            chunk(choice(content="Hi")),
            chunk(choice()),
            chunk(choice(finish="stop")),
            chunk(choice()),
            DONE,
        ),
    ),
    "unknown extra keys": (
        PLAIN,
        sse(
            chunk(
                choice(role="assistant", content="", reasoning=None),
                obfuscation="x1",
                x_groq={"id": "req_1"},
                provider="Amazon",
                stream_options={"include_usage": True},
            ),
            chunk({**choice(finish="stop"), "stop_reason": None, "native_finish_reason": "stop"}),
            DONE,
        ),
    ),
    "usage null without include_usage": (PLAIN, sse(*text_stream(None), DONE)),
    "moderation chunk after the usage chunk": (
        USAGE,
        sse(*_usage, chunk(usage=None, moderation={"input": {}}), DONE),
    ),
    "mid-stream error event with no [DONE] (Groq)": (
        PLAIN,
        sse(*_text[:2], 'event: error\ndata: {"error": {"message": "tool_use_failed"}}\n\n'),
    ),
    "error inside a chunk, then [DONE] (OpenRouter)": (
        USAGE,
        sse(*_usage[:2], chunk(choice(content=""), error={"code": 400}, usage=usage_obj()), DONE),
    ),
    "usage on the finish chunk without include_usage (Mistral)": (
        PLAIN,
        sse(*_text[:3], chunk(choice(finish="stop"), usage=usage_obj()), DONE),
    ),
    "the first delta's role repeated on every delta (OpenRouter, Snowflake Cortex)": (
        USAGE,
        sse(
            *(chunk(choice(role="assistant", content=t), usage=None) for t in ("", "Hi")),
            chunk(choice(finish="stop", role="assistant", content=""), usage=None),
            chunk(usage=usage_obj()),
            DONE,
        ),
    ),
    "comment after [DONE]": (PLAIN, sse(*_text, DONE, ": bye\n\n")),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    body, stream = LEGAL[name]
    assert check(request(body), SSE.events(stream)) == []
    assert check(request(body), decode(stream)) == []


def test_the_crlf_and_event_line_variants_really_differ_from_the_plain_stream() -> None:
    plain = sse(*_text, DONE)
    assert b"\r\n\r\n" in LEGAL["CRLF separators"][1]
    assert LEGAL["event lines before data"][1].count(b"event: chunk\ndata: ") == 5
    assert all(e.event == "chunk" for e in decode(LEGAL["event lines before data"][1]))
    assert [e.data for e in decode(LEGAL["event lines before data"][1])] == [
        e.data for e in decode(plain)
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
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
texts = (
    st.none()
    | st.text(max_size=30)
    | st.sampled_from(["", "héllo 👋🏽 wörld", "日本語のテキスト", "👨‍👩‍👧"])
)
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    n=st.none() | st.integers(1, 3),
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "length", "content_filter"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)


def body_for(stream: bool, include_usage: bool, n: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
    if stream:
        body["stream"] = True
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    if n is not None:
        body["n"] = n
    return body


def expected_text(script: Script) -> str | None:
    if script.text is None and not script.tool_calls:
        return DEFAULT_TEXT
    return script.text


def expected_completion(script: Script, n: int) -> int:
    size = script.chunk_size
    text = expected_text(script) or ""
    return n * (
        math.ceil(len(text) / size)
        + sum(math.ceil(len(c.arguments) / size) for c in script.tool_calls)
    )


def chunks_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in decode(body) if e.data and e.data != "[DONE]"]


def reassemble(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What a client builds from the stream: per choice, the text, the tool calls, the finish."""
    out: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for ch in c["choices"]:
            acc = out.setdefault(
                ch["index"], {"text": "", "first": ch["delta"], "tools": {}, "finish": None}
            )
            acc["text"] += ch["delta"].get("content") or ""
            for call in ch["delta"].get("tool_calls", []):
                tool = acc["tools"].setdefault(
                    call["index"], {"id": call.get("id"), "name": None, "arguments": ""}
                )
                tool["name"] = tool["name"] or call.get("function", {}).get("name")
                tool["arguments"] += call["function"]["arguments"]
            acc["finish"] = ch["finish_reason"] or acc["finish"]
    return out


@given(scripts, st.booleans(), st.sampled_from([None, 1, 2]))
def test_synthesized_streams_pass_every_rule_and_carry_the_script(
    script: Script, include_usage: bool, asked_n: int | None
) -> None:
    req = request(body_for(True, include_usage, asked_n))
    response = synthesize(req, script)
    assert response.status == 200 and response.reason == "OK"
    assert header(response.headers, "content-type") == "text/event-stream; charset=utf-8"
    assert check(req, SSE.events(response.body)) == []
    for frame in SSE.frames(response.body):
        frame.decode("utf-8")  # strict: every event is whole UTF-8
    n = script.n or asked_n or 1
    chunks = chunks_of(response.body)
    choices = reassemble(chunks)
    assert sorted(choices) == list(range(n))
    want_finish = script.finish_reason or ("tool_calls" if script.tool_calls else "stop")
    for state in choices.values():
        assert state["text"] == (expected_text(script) or "")
        assert state["first"]["role"] == "assistant"
        assert state["first"]["content"] == ("" if expected_text(script) is not None else None)
        assert [t["arguments"] for t in state["tools"].values()] == [
            c.arguments for c in script.tool_calls
        ]
        assert [t["name"] for t in state["tools"].values()] == [c.name for c in script.tool_calls]
        assert all(
            t["id"].startswith("call_") and len(t["id"]) == 29 for t in state["tools"].values()
        )
        assert state["finish"] == want_finish
    assert all(("usage" in c) == include_usage for c in chunks)
    if include_usage:
        usage = chunks[-1]["usage"]
        assert chunks[-1]["choices"] == []
        assert usage["completion_tokens"] == expected_completion(script, n)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        estimate = max(1, math.ceil(len(canonical_json(MESSAGES)) / 4))
        want_prompt = script.prompt_tokens if script.prompt_tokens is not None else estimate
        assert usage["prompt_tokens"] == want_prompt


@given(scripts, st.sampled_from([None, 1, 3]))
def test_synthesized_bodies_carry_the_script(script: Script, asked_n: int | None) -> None:
    req = request(body_for(False, False, asked_n))
    response = synthesize(req, script)
    assert header(response.headers, "content-type") == "application/json"
    body = json.loads(response.body)
    n = script.n or asked_n or 1
    want_finish = script.finish_reason or ("tool_calls" if script.tool_calls else "stop")
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert [c["index"] for c in body["choices"]] == list(range(n))
    for c in body["choices"]:
        message = c["message"]
        assert message["content"] == expected_text(script)
        assert message["refusal"] is None and message["annotations"] == []
        calls = message.get("tool_calls", [])
        assert [(t["function"]["name"], t["function"]["arguments"]) for t in calls] == [
            (call.name, call.arguments) for call in script.tool_calls
        ]
        assert c["finish_reason"] == want_finish
    usage = body["usage"]
    assert usage["completion_tokens"] == expected_completion(script, n)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@given(scripts, st.integers(0, 2**32), st.booleans())
def test_a_different_seed_gives_a_different_id(script: Script, other: int, stream: bool) -> None:
    assume(other != script.seed)
    req = request(body_for(stream, False))
    ids = {
        chunks_of(synthesize(req, s).body)[0]["id"]
        if stream
        else json.loads(synthesize(req, s).body)["id"]
        for s in (script, Script(**{**_fields(script), "seed": other}))
    }
    assert len(ids) == 2
    assert all(i.startswith("chatcmpl-") and len(i) == 9 + 22 for i in ids)


def _fields(script: Script) -> dict[str, Any]:
    return {name: getattr(script, name) for name in Script.__dataclass_fields__}


# --- synthesize: the exact OpenAI order, headers, errors -------------------------------


def test_a_text_stream_follows_openai_order_exactly() -> None:
    req = request(USAGE)
    body = synthesize(req, Script(text="Hello", chunk_size=3, seed=7)).body
    first, *rest = chunks_of(body)
    assert list(first) == [
        "id",
        "object",
        "created",
        "model",
        "service_tier",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert first["usage"] is None and first["system_fingerprint"] == "fp_tapedeck"
    assert [c["choices"][0]["delta"] for c in rest[:-1]] == [
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert rest[-2]["choices"][0]["finish_reason"] == "stop"
    assert rest[-1]["choices"] == [] and list(rest[-1]["usage"]) == [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    ]
    assert rest[-1]["usage"]["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    assert body.endswith(b'"rejected_prediction_tokens":0}}}\n\ndata: [DONE]\n\n')
    assert b'{"role":"assistant","content":"","refusal":null}' in body  # compact, no spaces


def test_a_tool_call_stream_opens_with_the_first_header_in_the_role_delta() -> None:
    calls = (ToolCall("get_capital", '{"country":"UK"}'), ToolCall("noop", "{}", id="call_given"))
    body = synthesize(request(PLAIN), Script(tool_calls=calls, chunk_size=8, seed=1)).body
    deltas = [c["choices"][0]["delta"] for c in chunks_of(body)]
    first_call = deltas[0]["tool_calls"][0]
    assert list(deltas[0]) == ["role", "content", "tool_calls", "refusal"]
    assert deltas[0]["content"] is None
    assert first_call["function"] == {"name": "get_capital", "arguments": ""}
    assert list(first_call) == ["index", "id", "type", "function"]
    assert deltas[1:] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"countr'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'y":"UK"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_given",
                    "type": "function",
                    "function": {"name": "noop", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert b'"usage"' not in body


def test_n_choices_interleave_round_robin() -> None:
    body = synthesize(request({**PLAIN, "n": 3}), Script(text="abcd", chunk_size=2)).body
    indexes = [c["choices"][0]["index"] for c in chunks_of(body)]
    assert indexes == [0, 1, 2] * 4
    assert check(request({**PLAIN, "n": 3}), SSE.events(body)) == []


def test_a_script_without_text_or_tool_calls_says_the_default_text() -> None:
    body = json.loads(synthesize(request({"model": "m", "messages": []}), Script()).body)
    assert body["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert body["model"] == "m"


def test_a_lone_surrogate_still_makes_a_valid_stream() -> None:
    req = request(PLAIN)
    body = synthesize(req, Script(text="a\ud800b", chunk_size=1)).body
    body.decode("utf-8")
    assert reassemble(chunks_of(body))[0]["text"] == "a\ud800b"
    assert check(req, SSE.events(body)) == []


def test_success_headers_look_like_openai_and_script_headers_win() -> None:
    response = synthesize(
        request(PLAIN), Script(headers=(("x-request-id", "req_mine"), ("x-extra", "1")))
    )
    names = [name for name, _ in response.headers]
    assert names[:4] == [
        "content-type",
        "openai-processing-ms",
        "openai-version",
        "x-ratelimit-limit-requests",
    ]
    assert {n for n in names if n.startswith("x-ratelimit-")} == {
        f"x-ratelimit-{kind}-{what}"
        for kind in ("limit", "remaining", "reset")
        for what in ("requests", "tokens")
    }
    assert header(response.headers, "openai-version") == "2020-10-01"
    assert int(header(response.headers, "openai-processing-ms") or "") > 0
    assert (
        names.count("x-request-id") == 1 and header(response.headers, "x-request-id") == "req_mine"
    )
    assert response.headers[-2:] == (("x-request-id", "req_mine"), ("x-extra", "1"))


def test_the_request_id_is_deterministic_per_seed() -> None:
    ids = {
        header(synthesize(request(PLAIN), Script(seed=s)).headers, "x-request-id")
        for s in (1, 1, 2)
    }
    assert len(ids) == 2 and all(i and i.startswith("req_") and len(i) == 36 for i in ids)


def test_a_scripted_error_is_openais_error() -> None:
    response = synthesize(request(PLAIN), Script(status=503, error_message="Slow down."))
    assert (response.status, response.reason) == (503, "Service Unavailable")
    assert json.loads(response.body)["error"] == {
        "message": "Slow down.",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_a_scripted_429_says_when_to_retry() -> None:
    script = Script(
        status=429, error_message="Rate limit reached.", headers=(("retry-after", "3"),)
    )
    response = synthesize(request(PLAIN), script)
    assert response.status == 429
    assert json.loads(response.body)["error"]["code"] == "rate_limit_exceeded"
    assert [v for k, v in response.headers if k == "retry-after"] == ["3"]
    assert header(response.headers, "x-ratelimit-remaining-requests") == "0"
    assert len([k for k, _ in response.headers if k.startswith("x-ratelimit-")]) == 6
    assert header(response.headers, "content-type") == "application/json"


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "code", "reason"),
    [
        (401, "invalid_request_error", "invalid_api_key", "Unauthorized"),
        (404, "invalid_request_error", "model_not_found", "Not Found"),
        (429, "requests", "rate_limit_exceeded", "Too Many Requests"),
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


def test_error_is_pretty_printed_like_the_real_api() -> None:
    body = error(401, "Bad key <x> & more", "invalid_request_error").body
    assert body == (
        b'{\n    "error": {\n        "message": "Bad key \\u003cx\\u003e \\u0026 more",\n'
        b'        "type": "invalid_request_error",\n        "param": null,\n'
        b'        "code": "invalid_api_key"\n    }\n}\n'
    )
    assert json.loads(body)["error"]["message"] == "Bad key <x> & more"
    assert "é" in json.loads(error(400, "café", "invalid_request_error").body)["error"]["message"]
    assert "café".encode() in error(400, "café", "invalid_request_error").body


def test_the_same_error_has_the_same_request_id() -> None:
    def rid(message: str) -> str | None:
        return header(error(400, message, "invalid_request_error").headers, "x-request-id")

    assert rid("a") == rid("a") != rid("b")


# --- identity, routes ------------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    one = json.loads(
        '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}'
    )
    two = json.loads(
        '{"temperature":0.0,"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o"}'
    )
    assert identity(request(one)) == identity(request(two))
    assert identity(request({**one, "temperature": 0.5})) != identity(request(one))


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    base = {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    changed = copy.deepcopy(base)
    if field.startswith("stream_options."):
        changed["stream_options"][field.split(".", 1)[1]] = True
    else:
        changed[field] = {"anything": "at all"}
    assert changed != base
    assert identity(request(changed)) == identity(request(base))


def test_defaults_spelled_out_match_defaults_left_out() -> None:
    base = {"model": "gpt-4o", "messages": MESSAGES}
    same = [
        {**base, "stream": False},
        {**base, "n": 1},
        {**base, "n": 1.0},
        {**base, "stream_options": {}},
        {**base, "stream_options": {"include_obfuscation": False}},
        {**base, "stream_options": {"include_usage": False}},
        {**base, "user": "u-1", "store": True, "metadata": {"a": "b"}},
    ]
    assert {identity(request(body)) for body in same} == {identity(request(base))}
    different = [
        {**base, "stream": True},
        {**base, "n": 2},
        {**base, "stream_options": {"include_usage": True}},
        {**base, "messages": [{"role": "user", "content": "Say bye"}]},
        {**base, "model": "gpt-4o-mini"},
    ]
    identities = {identity(request(body)) for body in [base, *different]}
    assert len(identities) == 1 + len(different)


def test_identity_of_a_body_that_is_not_an_object() -> None:
    assert identity(request([1, 2])) == (("body", json.dumps("[1,2]")),)
    raw = Request("POST", "/v1/chat/completions", body=b"not json")
    assert identity(raw) == (("body", '"not json"'),)
    assert identity(raw) != identity(Request("POST", "/v1/chat/completions", body=b"other"))
    hash(identity(raw))


def test_is_stream() -> None:
    assert is_stream(request(PLAIN))
    assert not is_stream(request({**PLAIN, "stream": False}))
    assert not is_stream(request({**PLAIN, "stream": "true"}))
    assert not is_stream(request([PLAIN]))
    assert not is_stream(Request("POST", "/v1/chat/completions", body=b"x"))


def test_the_dialect_is_registered_and_routed() -> None:
    assert DIALECTS["openai_chat"] is DIALECT
    assert (DIALECT.name, DIALECT.framing, DIALECT.base_path) == ("openai_chat", SSE, "/v1")
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/chat/completions/"):
        match = resolve("POST", path)
        assert match is not None and match.dialect is DIALECT
        assert match.route.endpoint == "chat.completions"
    assert resolve("GET", "/v1/chat/completions") is None
    assert DIALECT.check is check and DIALECT.synthesize is synthesize and DIALECT.error is error
