"""The gemini dialect: every check rule caught on a stream that breaks only it (in both
framings), legal variations that pass, synthesized answers that pass and say what the
script said, the routes, the request identity, and Google's error shape."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects._kit.wire import DEFAULT_TEXT
from mockserver.dialects.gemini.dialect import (
    DIALECT,
    RULES,
    VOLATILE_FIELDS,
    check,
    error,
    identity,
    is_stream,
    select_framing,
    synthesize,
)
from mockserver.framing.json_array import JSON_ARRAY
from mockserver.framing.sse import SSE
from mockserver.model import Event, Framing, Request, Script, ToolCall, header

MODEL = "gemini-2.5-flash"
ASK = {"contents": [{"parts": [{"text": "Say hi"}], "role": "user"}]}


def request(
    body: Any = None,
    alt: bool = True,
    method: str = "streamGenerateContent",
    prefix: str = "/v1beta",
    query: tuple[tuple[str, str], ...] = (),
) -> Request:
    body = ASK if body is None else body
    params = (("alt", "sse"), *query) if alt else query
    path = f"{prefix}/models/{MODEL}:{method}"
    return Request("POST", path, params, body=json.dumps(body).encode(), json=body)


def usage(prompt: int = 5, candidates: int = 0, thoughts: int = 0, total: int | None = None) -> Any:
    out: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        out["candidatesTokenCount"] = candidates
    out["totalTokenCount"] = prompt + candidates + thoughts if total is None else total
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def chunk(
    *parts: dict[str, Any],
    finish: str | None = None,
    index: int | None = 0,
    use: Any = None,
    **top: Any,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    if index is not None:
        candidate["index"] = index
    out: dict[str, Any] = {"candidates": [candidate]}
    if use is not False:
        out["usageMetadata"] = use if use is not None else usage()
    return {**out, "modelVersion": MODEL, "responseId": "resp-1", **top}


def sse(*items: dict[str, Any] | str) -> bytes:
    """Chunks as Gemini writes them (``data: `` + JSON + CRLF CRLF); strings are raw."""
    return "".join(
        i if isinstance(i, str) else f"data: {json.dumps(i)}\r\n\r\n" for i in items
    ).encode()


def array(*items: dict[str, Any] | str, close: str = "\n]") -> bytes:
    """Chunks as one pretty JSON array (``[{…}\\n,\\r\\n{…}\\n]``); strings are raw elements."""
    texts = [i if isinstance(i, str) else json.dumps(i, indent=2) for i in items]
    return ("[" + "\n,\r\n".join(texts) + close).encode()


def text(value: str) -> dict[str, Any]:
    return {"text": value}


TEXT = [
    chunk(text("Hi"), use=usage(5, 1)),
    chunk(text(" there"), use=usage(5, 2)),
    chunk(text("!"), finish="STOP", use=usage(5, 3)),
]
ERROR = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}

SSE_REQUEST, ARRAY_REQUEST = request(), request(alt=False)


def rules(body: bytes, req: Request | None = SSE_REQUEST) -> set[str]:
    framing = JSON_ARRAY if body.lstrip().startswith(b"[") else SSE
    return {v.rule for v in check(req, framing.events(body))}


# --- one broken stream per rule --------------------------------------------------------

# Each content rule, as a list of chunks that breaks only it; checked in both framings.
BROKEN_CHUNKS: dict[str, list[dict[str, Any] | str]] = {
    "chunk-not-json": [TEXT[0], '{"candidates": oops}', *TEXT[1:]],
    "chunk-shape": [TEXT[0], {**TEXT[1], "candidates": {"content": {}}}, TEXT[2]],
    "event-after-error": [TEXT[0], ERROR, *TEXT[1:]],
    "usage-missing": [TEXT[0], chunk(text(" there"), use=False), TEXT[2]],
    "usage-arithmetic": [*TEXT[:2], chunk(text("!"), finish="STOP", use=usage(5, 3, total=9))],
    "usage-final-not-largest": [*TEXT[:2], chunk(text("!"), finish="STOP", use=usage(2, 3))],
    "finish-reason-not-last": [
        TEXT[0],
        chunk(text(" there"), finish="STOP", use=usage(5, 2)),
        TEXT[2],
    ],
    "finish-reason-missing": [*TEXT[:2], chunk(text("!"), use=usage(5, 3))],
    "function-call-incomplete": [
        TEXT[0],
        chunk({"functionCall": {"name": "get_weather", "args": '{"city":'}}, use=usage(5, 2)),
        TEXT[2],
    ],
    "response-id-changed": [TEXT[0], {**TEXT[1], "responseId": "resp-2"}, TEXT[2]],
}


def sse_items(items: list[dict[str, Any] | str]) -> bytes:
    return sse(*(i if isinstance(i, dict) else f"data: {i}\r\n\r\n" for i in items))


BROKEN: dict[str, tuple[Request, bytes]] = {
    **{rule: (SSE_REQUEST, sse_items(items)) for rule, items in BROKEN_CHUNKS.items()},
    "line-not-data": (SSE_REQUEST, sse(TEXT[0], ": keep-alive\r\n\r\n", *TEXT[1:])),
    "done-sentinel": (SSE_REQUEST, sse(*TEXT, "data: [DONE]\r\n\r\n")),
    "array-punctuation": (ARRAY_REQUEST, array(*TEXT).replace(b"\n,\r\n", b"\n", 1)),
    "array-not-closed": (ARRAY_REQUEST, array(*TEXT, close="\n")),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    req, body = BROKEN[rule]
    violations = check(req, select_framing(req).events(body))
    assert [v.rule for v in violations] == [rule]
    (violation,) = violations
    # One sentence: what was expected, then what was found.
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


@pytest.mark.parametrize("rule", sorted(BROKEN_CHUNKS))
def test_each_content_rule_is_caught_in_the_json_array_framing_too(rule: str) -> None:
    body = array(*BROKEN_CHUNKS[rule])
    assert [v.rule for v in check(ARRAY_REQUEST, JSON_ARRAY.events(body))] == [rule]
    assert rules(body, None) == {rule}  # without the request, the '[' tells the framing


def test_broken_streams_pass_once_repaired() -> None:
    assert rules(sse(*TEXT)) == set()
    assert rules(array(*TEXT), ARRAY_REQUEST) == set()


def test_violations_point_at_the_event_that_broke_the_rule() -> None:
    (late,) = check(SSE_REQUEST, SSE.events(BROKEN["finish-reason-not-last"][1]))
    assert late.index == 2 and "after its finishReason at event 1" in late.message
    (missing,) = check(SSE_REQUEST, SSE.events(BROKEN["finish-reason-missing"][1]))
    assert missing.index == -1 and str(missing).startswith("finish-reason-missing at stream:")
    (unclosed,) = check(ARRAY_REQUEST, JSON_ARRAY.events(BROKEN["array-not-closed"][1]))
    assert unclosed.index == -1


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    body = sse(TEXT[0], ERROR, *TEXT[1:], TEXT[2])
    (violation,) = check(SSE_REQUEST, SSE.events(body))
    assert violation.rule == "event-after-error" and violation.index == 2
    assert "(2 more like it, the last at event 4)" in violation.message


def test_each_kind_of_non_data_line_is_caught() -> None:
    for block in ("event: message\r\ndata: {}\r\n\r\n", "id: 7\r\n\r\n", "retry: 10\r\n\r\n"):
        assert rules(sse(*TEXT, block)) >= {"line-not-data"}, block
    no_space = sse(*TEXT).replace(b"data: ", b"data:", 1)
    assert rules(no_space) == {"line-not-data"}
    hand_made = [
        Event(data=json.dumps(TEXT[0]), event="message"),
        Event(data=None, comments=("x",)),
    ]
    assert {v.rule for v in check(SSE_REQUEST, hand_made)} >= {"line-not-data"}


def test_a_truncated_stream_reports_each_missing_part() -> None:
    assert rules(array(*TEXT[:2], close=""), ARRAY_REQUEST) == {
        "array-not-closed",
        "finish-reason-missing",
    }
    cut = array(*TEXT)[:-30]  # mid-element: the last element is not JSON
    assert rules(cut, ARRAY_REQUEST) == {
        "array-not-closed",
        "chunk-not-json",
        "finish-reason-missing",
    }


def test_usage_arithmetic_counts_thoughts_and_tool_use_prompts() -> None:
    counted = {**usage(5, 3, 7), "toolUsePromptTokenCount": 4, "totalTokenCount": 19}
    assert rules(sse(chunk(text("x"), finish="STOP", use=counted))) == set()
    assert rules(sse(chunk(text("x"), finish="STOP", use={**counted, "totalTokenCount": 15}))) == {
        "usage-arithmetic"
    }
    strings = {"promptTokenCount": "5", "totalTokenCount": 5}
    assert rules(sse(chunk(text("x"), finish="STOP", use=strings))) == {"usage-arithmetic"}


# --- legal variations ------------------------------------------------------------------

SIGNATURE = {"text": "", "thoughtSignature": "CiQBjz1r"}
LEGAL: dict[str, tuple[Request, bytes]] = {
    "LF separators": (SSE_REQUEST, sse(*TEXT).replace(b"\r\n", b"\n")),
    "data split over two lines": (
        SSE_REQUEST,
        sse(
            *TEXT[:2], "data: " + json.dumps(TEXT[2]).replace(', "', ',\r\ndata: "', 1) + "\r\n\r\n"
        ),
    ),
    "leading blank line": (SSE_REQUEST, b"\r\n" + sse(*TEXT)),
    "usage-only chunk after the finish": (
        SSE_REQUEST,
        sse(*TEXT, {"usageMetadata": usage(5, 3), "modelVersion": MODEL, "responseId": "resp-1"}),
    ),
    "empty part with a signature after the finish, same reason": (
        SSE_REQUEST,
        sse(*TEXT, chunk(SIGNATURE, finish="STOP", use=usage(5, 3))),
    ),
    "no candidate index (gemini-2.0)": (
        SSE_REQUEST,
        sse(
            chunk(text("Hi"), index=None, use=usage(5, 1)),
            chunk(finish="STOP", index=None, use=usage(5, 1)),
        ),
    ),
    "two candidates, each finishing": (
        SSE_REQUEST,
        sse(
            {
                **chunk(text("A"), use=usage(5, 2)),
                "candidates": [
                    {"content": {"parts": [text("A")], "role": "model"}, "index": 0},
                    {"content": {"parts": [text("B")], "role": "model"}, "index": 1},
                ],
            },
            {
                **chunk(use=usage(5, 4)),
                "candidates": [
                    {"content": {"parts": [text("a")]}, "finishReason": "STOP", "index": 0},
                    {"content": {"parts": [text("b")]}, "finishReason": "MAX_TOKENS", "index": 1},
                ],
            },
        ),
    ),
    "thoughts first, the prompt count dropping while the total grows": (
        SSE_REQUEST,
        sse(
            chunk({"text": "Hmm", "thought": True}, use=usage(15, 0, 4)),
            chunk({"text": "Paris", "thoughtSignature": "Cs"}, use=usage(15, 1, 4)),
            chunk(text("."), finish="STOP", use=usage(13, 8, 4)),
        ),
    ),
    "whole function calls with a signature in the final chunk": (
        SSE_REQUEST,
        sse(
            chunk(
                {**CALL, "thoughtSignature": "Ep"},
                {"functionCall": {"name": "f", "args": {}}},
                finish="STOP",
                use=usage(37, 14),
            ),
        ),
    ),
    "unknown extra keys": (
        SSE_REQUEST,
        sse(
            chunk(
                text("OK"),
                finish="STOP",
                use={**usage(5, 1, 100), "trafficType": "ON_DEMAND"},
                createTime="2026-03-21T18:11:55Z",
                safety={"x": 1},
            ),
        ),
    ),
    "a blocked prompt: no candidates at all": (
        SSE_REQUEST,
        sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage(9)}),
    ),
    "a mid-stream error as the last chunk": (SSE_REQUEST, sse(TEXT[0], ERROR)),
    "a mid-stream error element, then the closing bracket": (
        ARRAY_REQUEST,
        array(TEXT[0], ERROR),
    ),
    "a compact array": (
        ARRAY_REQUEST,
        ("[" + ",".join(json.dumps(c, separators=(",", ":")) for c in TEXT) + "]").encode(),
    ),
    "fragmented arguments when streamFunctionCallArguments was asked": (
        request(
            {**ASK, "toolConfig": {"functionCallingConfig": {"streamFunctionCallArguments": True}}}
        ),
        sse(
            chunk(
                {
                    "functionCall": {
                        "name": "f",
                        "partialArgs": [{"jsonPath": "$.a"}],
                        "willContinue": True,
                    }
                },
                use=usage(5, 1),
            ),
            chunk({"functionCall": {}}, finish="STOP", use=usage(5, 2)),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    req, body = LEGAL[name]
    events = select_framing(req).events(body)
    assert check(req, events) == []


def test_without_the_request_fragmented_arguments_are_a_fault() -> None:
    _, body = LEGAL["fragmented arguments when streamFunctionCallArguments was asked"]
    assert rules(body, None) == {"function-call-incomplete"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# --- synthesize ------------------------------------------------------------------------

arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(json.dumps)
tool_calls = st.lists(
    st.builds(ToolCall, name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True), arguments=arguments),
    max_size=3,
).map(tuple)
plain_texts = st.text(max_size=30) | st.sampled_from(["", "héllo 👋🏽 wörld", "日本語のテキスト"])
texts = (
    st.none()
    | plain_texts
    | st.tuples(st.text(max_size=20), plain_texts).map(lambda t: f"<think>{t[0]}</think>{t[1]}")
)
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    n=st.none() | st.integers(1, 3),
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "length", "SAFETY"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)


def body_for(thoughts: bool, candidates: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if thoughts:
        config["thinkingConfig"] = {"include_thoughts": True}  # google-genai's spelling
    if candidates is not None:
        config["candidateCount"] = candidates
    return {**ASK, "generationConfig": config}


def expected(script: Script) -> tuple[str, str]:
    """(thought, answer) a script asks for, under the <think> convention."""
    value = script.text
    if value is None:
        return "", "" if script.tool_calls else DEFAULT_TEXT
    if value.startswith("<think>") and "</think>" in value:
        thought, _, answer = value[len("<think>") :].partition("</think>")
        return thought, answer
    return "", value


def reassemble(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What a client builds from the stream: per candidate, thoughts, text, calls, finish."""
    out: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for candidate in c.get("candidates", []):
            acc = out.setdefault(
                candidate["index"], {"thought": "", "text": "", "calls": [], "finish": None}
            )
            for part in candidate["content"]["parts"]:
                if "functionCall" in part:
                    acc["calls"].append(
                        (part["functionCall"]["name"], part["functionCall"]["args"])
                    )
                else:
                    acc["thought" if part.get("thought") else "text"] += part["text"]
            acc["finish"] = candidate.get("finishReason") or acc["finish"]
    return out


def want_finish(script: Script) -> str:
    return {None: "STOP", "length": "MAX_TOKENS"}.get(script.finish_reason, script.finish_reason)  # type: ignore[arg-type]


def check_answer(
    script: Script, shown: bool, candidates: dict[int, dict[str, Any]], n: int
) -> None:
    thought, answer = expected(script)
    assert sorted(candidates) == list(range(n))
    for state in candidates.values():
        assert state["text"] == answer
        assert state["thought"] == (thought if shown else "")
        assert state["calls"] == [(c.name, json.loads(c.arguments)) for c in script.tool_calls]
        assert state["finish"] == want_finish(script)


def expected_usage(script: Script, n: int) -> tuple[int, int]:
    """(candidate tokens, thought tokens): one per piece, per argument piece of a call."""
    thought, answer = expected(script)
    size = script.chunk_size
    pieces = math.ceil(len(answer) / size) + sum(
        math.ceil(len(c.arguments) / size) for c in script.tool_calls
    )
    return n * pieces, n * math.ceil(len(thought) / size)


@given(scripts, st.booleans(), st.booleans(), st.sampled_from([None, 2]))
def test_synthesized_streams_pass_every_rule_and_carry_the_script(
    script: Script, alt: bool, shown: bool, asked_n: int | None
) -> None:
    req = request(body_for(shown, asked_n), alt=alt)
    response = synthesize(req, script)
    assert response.status == 200 and response.reason == "OK"
    framing = select_framing(req)
    content_type = "text/event-stream" if alt else "application/json; charset=UTF-8"
    assert header(response.headers, "content-type") == content_type
    events = framing.events(response.body)
    assert check(req, events) == []
    for frame in framing.frames(response.body):
        frame.decode("utf-8")  # strict: every event is whole UTF-8
    chunks = [json.loads(e.data) for e in events if e.data is not None]
    if not alt:
        assert chunks == json.loads(response.body)  # one JSON array
    n = script.n or asked_n or 1
    check_answer(script, shown, reassemble(chunks), n)
    assert all("usageMetadata" in c for c in chunks)
    assert all(c["responseId"] == chunks[0]["responseId"] for c in chunks)
    final = chunks[-1]["usageMetadata"]
    assert final["totalTokenCount"] == max(c["usageMetadata"]["totalTokenCount"] for c in chunks)
    candidates, thoughts = expected_usage(script, n)
    assert final.get("candidatesTokenCount", 0) == candidates
    assert final.get("thoughtsTokenCount", 0) == thoughts
    estimate = max(
        1, math.ceil(len(json.dumps([ASK["contents"], None, None], separators=(",", ":"))) / 4)
    )
    want_prompt = script.prompt_tokens if script.prompt_tokens is not None else estimate
    assert final["promptTokenCount"] == want_prompt


@given(scripts, st.booleans(), st.sampled_from([None, 3]))
def test_synthesized_bodies_carry_the_script(
    script: Script, shown: bool, asked_n: int | None
) -> None:
    req = request(body_for(shown, asked_n), alt=False, method="generateContent")
    response = synthesize(req, script)
    assert header(response.headers, "content-type") == "application/json; charset=UTF-8"
    assert response.body.endswith(b"}\n") and response.body.startswith(b'{\n  "candidates"')
    body = json.loads(response.body)
    n = script.n or asked_n or 1
    check_answer(script, shown, reassemble([body]), n)
    assert body["modelVersion"] == MODEL
    candidates, thoughts = expected_usage(script, n)
    final = body["usageMetadata"]
    assert final.get("candidatesTokenCount", 0) == candidates
    assert final.get("thoughtsTokenCount", 0) == thoughts
    total = final["promptTokenCount"] + candidates + thoughts
    assert final["totalTokenCount"] == total


def test_different_seeds_give_different_response_ids() -> None:
    ids = {
        json.loads(synthesize(request(alt=False, method="generateContent"), Script(seed=s)).body)[
            "responseId"
        ]
        for s in range(20)
    }
    assert len(ids) == 20


def test_synthesized_sse_looks_like_gemini_on_the_wire() -> None:
    body = synthesize(SSE_REQUEST, Script(text="Hi there", chunk_size=4)).body
    assert body.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": "Hi t"}],')
    assert body.endswith(b"}\r\n\r\n") and body.count(b"\r\n\r\n") == 2
    array_body = synthesize(ARRAY_REQUEST, Script(text="Hi there", chunk_size=4)).body
    assert array_body.startswith(b'[{\n  "candidates": [\n') and b"}\n,\r\n{\n" in array_body
    assert array_body.endswith(b"}\n]")


def test_hidden_thoughts_still_count() -> None:
    script = Script(text="<think>abcdefgh</think>Hi", chunk_size=4)
    (only,) = SSE.events(synthesize(SSE_REQUEST, script).body)  # thoughts not asked for
    sent = json.loads(only.data or "")
    assert sent["candidates"][0]["content"]["parts"] == [{"text": "Hi"}]
    assert sent["usageMetadata"]["thoughtsTokenCount"] == 2


def test_tool_calls_come_whole_in_the_final_chunk_with_the_finish() -> None:
    script = Script(text="Checking.", tool_calls=(ToolCall("f", '{"a": [1]}', id="c1"),))
    last = json.loads(SSE.events(synthesize(SSE_REQUEST, script).body)[-1].data or "")
    (candidate,) = last["candidates"]
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": [1]}, "id": "c1"}}
    ]
    assert candidate["finishReason"] == "STOP"
    wrapped = synthesize(
        request(method="generateContent"), Script(tool_calls=(ToolCall("g", "[1]"),))
    )
    parts = json.loads(wrapped.body)["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "g", "args": {"value": [1]}}}]


def test_script_headers_are_appended_and_replace_defaults() -> None:
    script = Script(headers=(("server-timing", "gfet4t7; dur=1"), ("x-extra", "1")))
    response = synthesize(SSE_REQUEST, script)
    assert header(response.headers, "server-timing") == "gfet4t7; dur=1"
    assert [n for n, _ in response.headers].count("Server-Timing") == 0
    assert header(response.headers, "content-disposition") == "attachment"
    assert header(response.headers, "x-extra") == "1"


def test_count_tokens_and_embeddings() -> None:
    counted = json.loads(
        synthesize(request(alt=False, method="countTokens"), Script(prompt_tokens=7)).body
    )
    assert counted == {
        "totalTokens": 7,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],
    }
    one = {"content": {"parts": [text("a")]}, "outputDimensionality": 4}
    embed = request(one, alt=False, method="embedContent")
    single = json.loads(synthesize(embed, Script(seed=3)).body)
    assert len(single["embedding"]["values"]) == 4
    batch = {"requests": [one, {**one, "content": {"parts": [text("b")]}}, {"content": {}}]}
    made = synthesize(request(batch, alt=False, method="batchEmbedContents"), Script(seed=3))
    vectors = [e["values"] for e in json.loads(made.body)["embeddings"]]
    assert [len(v) for v in vectors] == [4, 4, 768]
    assert vectors[0] == single["embedding"]["values"]  # same text, same seed: same vector
    assert vectors[0] != vectors[1]  # a vector depends on the text...
    other_seed = json.loads(synthesize(embed, Script(seed=4)).body)["embedding"]["values"]
    assert other_seed != vectors[0]  # ...and the seed, and nothing else
    again = synthesize(request(batch, alt=False, method="batchEmbedContents"), Script(seed=3))
    assert again.body == made.body
    assert not is_stream(request(batch, alt=False, method="batchEmbedContents"))


def test_scripted_errors_use_googles_shape_and_keep_event_stream_on_sse_requests() -> None:
    script = Script(status=429, error_message="Quota exceeded.", headers=(("retry-after", "2"),))
    on_sse = synthesize(SSE_REQUEST, script)
    assert on_sse.status == 429 and on_sse.reason == "Too Many Requests"
    assert header(on_sse.headers, "content-type") == "text/event-stream"
    assert header(on_sse.headers, "retry-after") == "2"
    assert json.loads(on_sse.body)["error"] == {
        "code": 429,
        "message": "Quota exceeded.",
        "status": "RESOURCE_EXHAUSTED",
    }
    plain = synthesize(request(method="generateContent", alt=False), Script(status=404))
    assert header(plain.headers, "content-type") == "application/json; charset=UTF-8"
    assert json.loads(plain.body)["error"]["status"] == "NOT_FOUND"


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (413, "INVALID_ARGUMENT"),
        (502, "INTERNAL"),
    ],
)
def test_error_names_the_rpc_status_of_the_http_code(status: int, name: str) -> None:
    response = error(status, "Nope.", "invalid_request_error")  # an OpenAI kind is ignored
    assert json.loads(response.body) == {
        "error": {"code": status, "message": "Nope.", "status": name}
    }
    assert response.status == status and response.reason
    assert header(response.headers, "content-type") == "application/json; charset=UTF-8"


def test_error_kind_sets_the_status_name_or_an_error_info_reason() -> None:
    assert json.loads(error(400, "m", "FAILED_PRECONDITION").body)["error"]["status"] == (
        "FAILED_PRECONDITION"
    )
    details = json.loads(error(400, "Bad key.", "API_KEY_INVALID").body)["error"]["details"]
    assert details[0]["reason"] == "API_KEY_INVALID" and details[1]["message"] == "Bad key."


@given(st.text(max_size=40), st.sampled_from([400, 404, 429, 500]))
def test_error_bodies_are_pretty_json_for_any_message(message: str, status: int) -> None:
    body = error(status, message, DIALECT.default_error_kind).body
    assert json.loads(body)["error"]["message"] == message
    assert body.startswith(b'{\n  "error": {\n    "code": ') and body.endswith(b"}\n")


# --- routes, framing, identity ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/gemini-2.5-flash:{m}",
        "/v1beta/models/gemini-2.5-flash:{m}",
        "/v1beta1/projects/p/locations/global/publishers/google/models/gemini-3-flash:{m}",
        "/proxy/v1beta/models/gemini-2.5-flash:{m}",
    ],
)
@pytest.mark.parametrize(
    "method",
    [
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
    ],
)
def test_every_method_is_served_under_every_prefix(path: str, method: str) -> None:
    match = resolve("POST", path.format(m=method))
    assert match is not None and match.dialect is DIALECTS["gemini"]
    assert match.route.endpoint == method
    assert resolve("POST", path.format(m=method) + "x") is None
    assert resolve("GET", path.format(m=method)) is None


def test_framing_follows_alt() -> None:
    assert select_framing(SSE_REQUEST) is SSE
    assert select_framing(ARRAY_REQUEST) is JSON_ARRAY
    assert DIALECT.framing_for(request(query=(("key", "k"),))) is SSE
    assert is_stream(SSE_REQUEST) and not is_stream(request(method="generateContent"))


def test_environment_points_google_genai_at_the_server() -> None:
    env = dict(DIALECT.environment)
    assert env["GOOGLE_GEMINI_BASE_URL"] == "{url}" and DIALECT.base_path == ""
    assert env["GOOGLE_API_KEY"] == env["GEMINI_API_KEY"]  # GOOGLE_API_KEY wins in the SDK


def test_identity_ignores_spelling_order_volatile_fields_keys_and_versions() -> None:
    base = {
        **ASK,
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}, "temperature": 0},
    }
    snake = {
        "generation_config": {"temperature": 0.0, "thinking_config": {"include_thoughts": True}},
        "labels": {"team": "x"},
        "contents": ASK["contents"],
        "tools": [],
    }
    assert identity(request(base)) == identity(request(snake))
    assert identity(request(base)) == identity(request(base, query=(("key", "secret"),)))
    assert identity(request(base)) == identity(request(base, prefix="/v1"))
    vertex = "/v1beta1/projects/p/locations/l/publishers/google"
    assert identity(request(base)) == identity(request(base, prefix=vertex))
    assert identity(request(ASK)) == identity(request({**ASK, "generationConfig": {}}))
    assert set(VOLATILE_FIELDS) == {"labels"}


def test_identity_keeps_the_callers_data_as_sent() -> None:
    def with_args(args: dict[str, Any]) -> Request:
        part = {"functionCall": {"name": "f", "args": args}}
        return request({"contents": [{"role": "model", "parts": [part]}]})

    assert identity(with_args({"user_id": 1})) != identity(with_args({"userId": 1}))


def test_identity_tells_apart_model_method_alt_and_content() -> None:
    base = identity(SSE_REQUEST)
    assert base != identity(ARRAY_REQUEST)  # the bytes differ, so must the recordings
    assert base != identity(request(method="generateContent"))
    other_model = Request(
        "POST", SSE_REQUEST.path.replace(MODEL, "gemini-2.5-pro"), SSE_REQUEST.query, json=ASK
    )
    assert base != identity(other_model)
    assert base != identity(request({"contents": [{"parts": [text("Say bye")], "role": "user"}]}))
    raw = Request("POST", SSE_REQUEST.path, SSE_REQUEST.query, body=b"not json")
    assert identity(raw) != base and dict(identity(raw))["body"] == '"not json"'


@given(json_values, json_values)
def test_identity_is_a_function_of_the_parsed_body(a: Any, b: Any) -> None:
    body = {"contents": a, "generationConfig": {"seed": b}}
    text_one = json.dumps(body)
    text_two = json.dumps(body, indent=3, sort_keys=True)
    one = Request(
        "POST",
        SSE_REQUEST.path,
        SSE_REQUEST.query,
        body=text_one.encode(),
        json=json.loads(text_one),
    )
    two = Request(
        "POST",
        SSE_REQUEST.path,
        SSE_REQUEST.query,
        body=text_two.encode(),
        json=json.loads(text_two),
    )
    assert identity(one) == identity(two)


def test_the_registry_holds_the_dialect() -> None:
    assert DIALECTS["gemini"] is DIALECT
    assert isinstance(select_framing(SSE_REQUEST), Framing)


def test_a_stand_in_request_that_is_no_gemini_path_reads_sse_or_sniffs() -> None:
    stand_in = Request("POST", "/", json=ASK)  # what `tapedeck lint --dialect` builds
    assert select_framing(stand_in) is SSE
    assert rules(sse(*TEXT), stand_in) == set()
    assert rules(array(*TEXT), stand_in) == set()
    assert select_framing(request(alt=False, method="generateContent")) is SSE
