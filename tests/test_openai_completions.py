"""The openai_completions dialect (legacy ``POST /v1/completions``): every check rule caught
on a stream that breaks only it, legal variations that pass, synthesized answers that pass
and say what the script said (prompts, n, echo, logprobs, include_usage), the request
identity, the routes (chat paths still go to chat), and OpenAI's error shape."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects.openai.completions import (
    DEFAULT_TEXT,
    DIALECT,
    RULES,
    VOLATILE_FIELDS,
    check,
    error,
    identity,
    is_stream,
    prompts,
    synthesize,
)
from mockserver.framing.sse import SSE, decode
from mockserver.model import Request, Script, ToolCall, header

MODEL = "gpt-3.5-turbo-instruct"
PLAIN = {"model": MODEL, "prompt": "Say hi", "stream": True}
USAGE = {**PLAIN, "stream_options": {"include_usage": True}}
MODEL_BODY = {"model": MODEL, "prompt": "hi"}
ABSENT = object()
DONE = "data: [DONE]\n\n"


def request(body: Any = None, path: str = "/v1/completions", query: Any = ()) -> Request:
    return Request("POST", path, tuple(query), body=json.dumps(body).encode(), json=body)


def choice(index: int = 0, text: Any = "", finish: str | None = None, **extra: Any) -> Any:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish, **extra}


def chunk(*choices: dict[str, Any], usage: Any = ABSENT, **top: Any) -> dict[str, Any]:
    out = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": list(choices),
        **top,
    }
    if usage is not ABSENT:
        out["usage"] = usage
    return out


def usage_obj(prompt: int = 5, completion: int = 3, total: int | None = None) -> dict[str, int]:
    total = prompt + completion if total is None else total
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def sse(*items: dict[str, Any] | str) -> bytes:
    return "".join(
        i if isinstance(i, str) else f"data: {json.dumps(i)}\n\n" for i in items
    ).encode()


def text_stream(u: Any = ABSENT) -> list[dict[str, Any] | str]:
    return [
        chunk(choice(text="Hi"), usage=u),
        chunk(choice(text=" there"), usage=u),
        chunk(choice(text="!", finish="stop"), usage=u),
    ]


def rules(body: bytes, req: Request | None = None) -> set[str]:
    return {v.rule for v in check(req or request(PLAIN), SSE.events(body))}


def _with(item: dict[str, Any] | str, **changes: Any) -> dict[str, Any]:
    assert isinstance(item, dict)
    return {**item, **changes}


_text = text_stream()
_usage = [*text_stream(None), chunk(usage=usage_obj())]
_bad_logprobs = {"tokens": ["Hi"], "token_logprobs": [], "top_logprobs": None, "text_offset": [0]}
BROKEN: dict[str, tuple[dict[str, Any], bytes]] = {
    "data-not-json": (PLAIN, sse(_text[0], "data: {oops\n\n", *_text[1:], DONE)),
    "event-without-data": (PLAIN, sse(_text[0], "event: ping\n\n", *_text[1:], DONE)),
    "done-missing": (PLAIN, sse(*_text)),
    "data-after-done": (PLAIN, sse(*_text, DONE, DONE)),
    "event-after-error": (PLAIN, sse(_text[0], {"error": {"message": "x"}}, _text[1], DONE)),
    "chunk-shape": (PLAIN, sse(_text[0], {"id": "cmpl-1", "text": "x"}, *_text[1:], DONE)),
    "chunk-identity-changed": (PLAIN, sse(_text[0], _with(_text[1], id="cmpl-2"), _text[2], DONE)),
    # The trap: chat's ".chunk" suffix does not exist on this endpoint.
    "object-not-chunk": (
        PLAIN,
        sse(_text[0], _with(_text[1], object="text_completion.chunk"), _text[2], DONE),
    ),
    "finish-reason-repeated": (PLAIN, sse(*_text, chunk(choice(finish="stop")), DONE)),
    "finish-reason-missing": (PLAIN, sse(*_text[:2], DONE)),
    "usage-chunk-missing": (USAGE, sse(*_usage[:-1], DONE)),
    "usage-chunk-duplicate": (USAGE, sse(*_usage, _usage[-1], DONE)),
    "usage-chunk-not-last": (USAGE, sse(*_usage[:2], _usage[3], _usage[2], DONE)),
    "usage-on-choices-chunk": (
        USAGE,
        sse(*_usage[:2], chunk(choice(text="!", finish="stop"), usage=usage_obj()), DONE),
    ),
    "usage-null-missing": (USAGE, sse(_usage[0], _text[1], *_usage[2:], DONE)),
    "usage-unrequested": (PLAIN, sse(*_text, chunk(usage=usage_obj()), DONE)),
    "usage-arithmetic": (USAGE, sse(*_usage[:-1], chunk(usage=usage_obj(5, 3, 9)), DONE)),
    # A chat-shaped choice: a delta and no text.
    "choice-text-missing": (
        PLAIN,
        sse(_text[0], chunk({"index": 0, "delta": {"content": "x"}}), _text[2], DONE),
    ),
    "text-after-finish": (PLAIN, sse(*_text, chunk(choice(text="more")), DONE)),
    "logprobs-shape": (
        PLAIN,
        sse(chunk(choice(text="Hi", logprobs=_bad_logprobs)), *_text[1:], DONE),
    ),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


def test_unasked_usage_passes_on_the_finishing_text_chunk_only() -> None:
    # The shared rule, on text choices: usage on the last text chunk (which carries the
    # finish) is tolerated unasked; on a text chunk before it, it is not.
    last = sse(*_text[:2], chunk(choice(text="!", finish="stop"), usage=usage_obj()), DONE)
    assert rules(last) == set()
    early = sse(chunk(choice(text="Hi"), usage=usage_obj()), *_text[1:], DONE)
    assert rules(early) == {"usage-unrequested"}
    assert rules(sse(*text_stream(None), DONE)) == set()  # vLLM's usage: null is no usage


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    body, stream = BROKEN[rule]
    violations = check(request(body), SSE.events(stream))
    assert [v.rule for v in violations] == [rule]
    (violation,) = violations
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


def test_broken_streams_pass_once_repaired() -> None:
    assert rules(sse(*_text, DONE)) == set()
    assert rules(sse(*_usage, DONE), request(USAGE)) == set()


def test_a_rule_broken_on_many_events_is_reported_once_with_a_count() -> None:
    body = sse(*_text, *(chunk(choice(text=str(i))) for i in range(3)), DONE)
    (violation,) = check(request(PLAIN), SSE.events(body))
    assert violation.rule == "text-after-finish" and violation.index == 3
    assert "(2 more like it, the last at event 5)" in violation.message


def test_the_violation_names_what_was_found() -> None:
    (missing,) = check(request(PLAIN), SSE.events(BROKEN["choice-text-missing"][1]))
    assert "found no text key" in missing.message and missing.index == 1
    numeric = sse(chunk(choice(text=7, finish="stop")), DONE)
    (wrong,) = check(request(PLAIN), SSE.events(numeric))
    assert wrong.rule == "choice-text-missing" and "found '7'" in wrong.message


@pytest.mark.parametrize(
    "logprobs",
    [
        "not an object",
        {"tokens": ["a"], "token_logprobs": [-1.0]},  # text_offset missing
        {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [], "text_offset": [0]},
        {"tokens": "a", "token_logprobs": [-1.0], "top_logprobs": None, "text_offset": [0]},
    ],
)
def test_logprobs_that_do_not_line_up_are_caught(logprobs: Any) -> None:
    body = sse(chunk(choice(text="a", finish="stop", logprobs=logprobs)), DONE)
    assert rules(body) == {"logprobs-shape"}


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
GOOD_LOGPROBS = {
    "tokens": ["Say", " hi"],
    "token_logprobs": [None, -0.5],
    "top_logprobs": [None, {" hi": -0.5}],
    "text_offset": [0, 3],
}

LEGAL: dict[str, tuple[dict[str, Any], bytes]] = {
    "keep-alive comments": (
        PLAIN,
        sse(": keepalive\n\n", _text[0], ": ping\n\n", *_text[1:], DONE),
    ),
    "CRLF separators": (PLAIN, sse(*_text, DONE).replace(b"\n", b"\r\n")),
    "no space after data:": (PLAIN, sse(*_text, DONE).replace(b"data: ", b"data:")),
    "event lines before data": (
        PLAIN,
        b"".join(b"event: x\n" + b + b"\n\n" for b in sse(*_text, DONE).split(b"\n\n") if b),
    ),
    "vLLM: stop_reason, and usage null without include_usage": (
        PLAIN,
        sse(
            chunk(choice(text="Hi", stop_reason=None), usage=None),
            chunk(choice(text="!", finish="length", stop_reason=None), usage=None),
            DONE,
        ),
    ),
    "finish on an empty trailing text chunk": (
        PLAIN,
        sse(chunk(choice(text="Hi")), chunk(choice(text="", finish="stop")), DONE),
    ),
    "two prompts times n=2, interleaved": (
        {**USAGE, "prompt": ["a", "b"], "n": 2},
        sse(
            *(chunk(choice(i, "x"), usage=None) for i in (0, 1, 2, 3)),
            *(chunk(choice(i, "y", "stop"), usage=None) for i in (3, 1, 0, 2)),
            chunk(usage=usage_obj(2, 8)),
            DONE,
        ),
    ),
    "Azure: prompt-filter chunk and filter-only choices": (
        USAGE,
        sse(
            AZURE_PREFILTER,
            chunk(choice(text="Hi", content_filter_results=FILTER), usage=None),
            chunk(
                {"index": 0, "finish_reason": None, "content_filter_results": FILTER}, usage=None
            ),
            chunk(choice(text="!", finish="stop", content_filter_results={}), usage=None),
            chunk(usage=usage_obj()),
            DONE,
        ),
    ),
    "logprobs with an echoed first token": (
        PLAIN,
        sse(chunk(choice(text="Say hi", finish="stop", logprobs=GOOD_LOGPROBS)), DONE),
    ),
    "mid-stream error event and no [DONE]": (
        PLAIN,
        sse(_text[0], 'event: error\ndata: {"error": {"message": "overloaded"}}\n\n'),
    ),
    "unknown extra keys": (
        PLAIN,
        sse(chunk(choice(text="Hi", finish="stop", extra=1), system_fingerprint="fp"), DONE),
    ),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    body, stream = LEGAL[name]
    assert check(request(body), SSE.events(stream)) == []
    assert check(request(body), decode(stream)) == []


# --- synthesize ------------------------------------------------------------------------

texts = st.none() | st.text(max_size=30) | st.sampled_from(["", "héllo 👋🏽 wörld", "日本語"])
scripts = st.builds(
    Script,
    text=texts,
    n=st.none() | st.integers(1, 3),
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "length", "content_filter"]),
    prompt_tokens=st.none() | st.integers(0, 500),
)
prompt_values = st.one_of(
    st.text(max_size=12),
    st.lists(st.text(max_size=6), min_size=1, max_size=3),
    st.lists(st.integers(0, 50000), min_size=1, max_size=4),
    st.lists(st.lists(st.integers(0, 50000), min_size=1, max_size=3), min_size=1, max_size=2),
)
bodies = st.fixed_dictionaries(
    {"model": st.just(MODEL), "prompt": prompt_values},
    optional={
        "n": st.integers(1, 2),
        "echo": st.booleans(),
        "logprobs": st.integers(0, 3),
        "suffix": st.text(max_size=8),
        "stream_options": st.just({"include_usage": True}),
    },
)


def chunks_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in decode(body) if e.data and e.data != "[DONE]"]


def expected_choices(body: dict[str, Any], script: Script) -> list[str]:
    """What each choice says: the echoed prompt, if asked, then the script's text."""
    text = DEFAULT_TEXT if script.text is None else script.text
    copies = script.n or body.get("n", 1)
    echo = [p if isinstance(p, str) else "" for p in prompts(body["prompt"])]
    return [(e if body.get("echo") else "") + text for e in echo for _ in range(copies)]


def reassemble(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for ch in c["choices"]:
            acc = out.setdefault(ch["index"], {"text": "", "finish": None, "tokens": []})
            acc["text"] += ch["text"]
            acc["finish"] = ch["finish_reason"] or acc["finish"]
            if ch["logprobs"] is not None:
                acc["tokens"] += ch["logprobs"]["tokens"]
    return out


@given(scripts, bodies)
def test_synthesized_streams_pass_every_rule_and_carry_the_script(
    script: Script, fields: dict[str, Any]
) -> None:
    body = {**fields, "stream": True}
    req = request(body)
    response = synthesize(req, script)
    assert response.status == 200 and response.reason == "OK"
    assert header(response.headers, "content-type") == "text/event-stream; charset=utf-8"
    assert check(req, SSE.events(response.body)) == []
    for frame in SSE.frames(response.body):
        frame.decode("utf-8")
    chunks = chunks_of(response.body)
    choices = reassemble(chunks)
    want = expected_choices(body, script)
    assert [choices[i]["text"] for i in sorted(choices)] == want
    assert sorted(choices) == list(range(len(want)))
    finish = script.finish_reason or "stop"
    assert all(state["finish"] == finish for state in choices.values())
    if "logprobs" in body:
        assert all("".join(state["tokens"]) == state["text"] for state in choices.values())
    include_usage = "stream_options" in body
    assert all(("usage" in c) == include_usage for c in chunks)
    if include_usage:
        usage = chunks[-1]["usage"]
        assert chunks[-1]["choices"] == []
        size = script.chunk_size
        text = DEFAULT_TEXT if script.text is None else script.text
        assert usage["completion_tokens"] == len(want) * math.ceil(len(text) / size)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        if script.prompt_tokens is not None:
            assert usage["prompt_tokens"] == script.prompt_tokens


@given(scripts, bodies)
def test_a_body_says_what_the_stream_says(script: Script, fields: dict[str, Any]) -> None:
    whole = json.loads(synthesize(request(fields), script).body)
    chunks = chunks_of(synthesize(request({**fields, "stream": True}), script).body)
    streamed = reassemble(chunks)
    assert whole["object"] == "text_completion" and whole["id"].startswith("cmpl-")
    assert [c["index"] for c in whole["choices"]] == sorted(streamed)
    for c in whole["choices"]:
        assert list(c) == ["text", "index", "logprobs", "finish_reason"]
        assert c["text"] == streamed[c["index"]]["text"]
        assert c["finish_reason"] == streamed[c["index"]]["finish"]
        if "logprobs" in fields:
            assert c["logprobs"]["tokens"] == streamed[c["index"]]["tokens"]
            assert len(c["logprobs"]["text_offset"]) == len(c["logprobs"]["tokens"])
        else:
            assert c["logprobs"] is None
    assert whole["id"] == chunks[0]["id"] and whole["created"] == chunks[0]["created"]
    usage = whole["usage"]
    assert list(usage) == ["prompt_tokens", "completion_tokens", "total_tokens"]


@given(st.integers(0, 2**32), st.integers(0, 2**32))
def test_a_different_seed_gives_a_different_id(one: int, two: int) -> None:
    assume(one != two)
    ids = {
        json.loads(synthesize(request(MODEL_BODY), Script(seed=s)).body)["id"] for s in (one, two)
    }
    assert len(ids) == 2 and all(len(i) == len("cmpl-") + 29 for i in ids)


def test_a_stream_puts_the_finish_on_the_last_text_chunk_in_openai_order() -> None:
    body = synthesize(request(USAGE), Script(text="Hello", chunk_size=3, seed=7)).body
    chunks = chunks_of(body)
    assert list(chunks[0]) == ["id", "object", "created", "model", "choices", "usage"]
    assert [c["choices"] for c in chunks[:-1]] == [
        [{"text": "Hel", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": "lo", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage_obj(2, 2)
    assert body.endswith(b'"total_tokens":4}}\n\ndata: [DONE]\n\n')
    assert b'"object":"text_completion",' in body  # compact, no ".chunk"


def test_empty_text_still_sends_one_finishing_chunk() -> None:
    chunks = chunks_of(synthesize(request(PLAIN), Script(text="")).body)
    assert [c["choices"] for c in chunks] == [
        [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    ]


def test_choices_are_prompt_major_and_echo_each_prompt() -> None:
    body = {**PLAIN, "prompt": ["A:", [1, 2]], "n": 2, "echo": True}
    chunks = chunks_of(synthesize(request(body), Script(text="ok", chunk_size=8)).body)
    assert [(c["choices"][0]["index"], c["choices"][0]["text"]) for c in chunks] == [
        (0, "A:"),
        (1, "A:"),
        (2, ""),  # a token-id prompt echoes as "": there is no tokenizer
        (3, ""),
        (0, "ok"),
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
    ]


def test_logprobs_cover_the_echo_with_null_and_offsets_count_characters() -> None:
    body = {"model": MODEL, "prompt": "1, 2,", "echo": True, "logprobs": 1}
    (only,) = json.loads(synthesize(request(body), Script(text=" 3, 4", chunk_size=3)).body)[
        "choices"
    ]
    logprobs = only["logprobs"]
    assert only["text"] == "1, 2, 3, 4"
    assert logprobs["tokens"] == ["1, 2,", " 3,", " 4"]
    assert logprobs["text_offset"] == [0, 5, 8]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert all(-3 <= lp < 0 for lp in logprobs["token_logprobs"][1:])
    assert logprobs["top_logprobs"][1] == {" 3,": logprobs["token_logprobs"][1]}


def test_prompt_tokens_count_words_of_prompts_and_suffix() -> None:
    def prompt_tokens(body: dict[str, Any]) -> int:
        usage: dict[str, int] = json.loads(synthesize(request(body), Script()).body)["usage"]
        return usage["prompt_tokens"]

    assert prompt_tokens({"prompt": "Say this is a test"}) == 5
    assert prompt_tokens({"prompt": "Say this", "suffix": "and that."}) == 5
    assert prompt_tokens({"prompt": [[1, 2, 3], [4]]}) == 4
    assert prompt_tokens({"prompt": ""}) == 1  # never zero
    assert prompt_tokens({}) == 1


@pytest.mark.parametrize(
    ("prompt", "count"),
    [("a", 1), (["a", "b"], 2), ([1, 2], 1), ([[1], [2, 3]], 2), ([], 1), (None, 1), (7, 1)],
)
def test_prompt_forms(prompt: Any, count: int) -> None:
    assert len(prompts(prompt)) == count
    body = {"model": MODEL, "prompt": prompt}
    assert len(json.loads(synthesize(request(body), Script()).body)["choices"]) == count


def test_tool_calls_in_a_script_are_ignored_the_api_has_no_tools() -> None:
    script = Script(text="plain", tool_calls=(ToolCall("f", "{}"),))
    (only,) = json.loads(synthesize(request(MODEL_BODY), script).body)["choices"]
    assert only["text"] == "plain" and only["finish_reason"] == "stop"


def test_success_headers_look_like_openai_and_script_headers_win() -> None:
    response = synthesize(request(PLAIN), Script(headers=(("x-request-id", "req_mine"),)))
    assert header(response.headers, "openai-version") == "2020-10-01"
    assert header(response.headers, "x-ratelimit-limit-tokens") is not None
    assert [v for k, v in response.headers if k == "x-request-id"] == ["req_mine"]


def test_a_scripted_error_is_openais_error_even_for_a_stream_request() -> None:
    response = synthesize(request(PLAIN), Script(status=401, error_message="Bad key."))
    assert (response.status, response.reason) == (401, "Unauthorized")
    assert header(response.headers, "content-type") == "application/json"
    assert json.loads(response.body)["error"] == {
        "message": "Bad key.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (401, "invalid_request_error", "invalid_api_key"),
        (404, "invalid_request_error", "model_not_found"),
        (500, "server_error", None),
    ],
)
def test_error_shape(status: int, kind: str, code: str | None) -> None:
    response = error(status, "Oops.", kind)
    assert response.status == status
    assert json.loads(response.body) == {
        "error": {"message": "Oops.", "type": kind, "param": None, "code": code}
    }
    assert response.body.startswith(b'{\n    "error": {\n') and response.body.endswith(b"}\n")


# --- identity, routes ------------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    one = json.loads('{"model": "m", "prompt": ["a", "b"], "temperature": 0, "max_tokens": 5}')
    two = json.loads('{"max_tokens":5.0,"temperature":0.0,"prompt":["a","b"],"model":"m"}')
    assert identity(request(one)) == identity(request(two))
    assert identity(request({**one, "prompt": ["b", "a"]})) != identity(request(one))


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    base = {**USAGE}
    changed = copy.deepcopy(base)
    if field.startswith("stream_options."):
        changed["stream_options"][field.split(".", 1)[1]] = True
    else:
        changed[field] = "anyone"
    assert identity(request(changed)) == identity(request(base))


def test_defaults_spelled_out_match_defaults_left_out() -> None:
    base = {"model": MODEL, "prompt": "hi"}
    same = [
        {**base, "stream": False},
        {**base, "n": 1},
        {**base, "n": 1.0},
        {**base, "echo": False},
        {**base, "suffix": None, "logprobs": None},
        {**base, "stream_options": {"include_usage": False}},
    ]
    assert {identity(request(body)) for body in same} == {identity(request(base))}
    different = [
        {**base, "stream": True},
        {**base, "n": 2},
        {**base, "n": True},
        {**base, "echo": True},
        {**base, "suffix": "!"},
        {**base, "logprobs": 0},
        {**base, "prompt": ["hi"]},
        {**base, "prompt": [6151]},
        {**base, "stream_options": {"include_usage": True}},
    ]
    assert len({identity(request(body)) for body in [base, *different]}) == 1 + len(different)


def test_azure_deployment_and_api_version_take_part_in_identity() -> None:
    path = "/openai/deployments/instruct/completions"
    base = request(MODEL_BODY, path, [("api-version", "2024-02-01")])
    assert ("azure.deployment", '"instruct"') in identity(base)
    assert identity(base) != identity(request(MODEL_BODY, path, [("api-version", "2024-06-01")]))
    other = request(MODEL_BODY, path.replace("instruct", "other"), [("api-version", "2024-02-01")])
    assert identity(base) != identity(other)
    assert identity(request(MODEL_BODY, "/v1/completions", [("x", "1")])) == identity(
        request(MODEL_BODY)
    )


def test_identity_of_a_body_that_is_not_an_object() -> None:
    raw = Request("POST", "/v1/completions", body=b"not json")
    assert identity(raw) == (("body", '"not json"'),)


def test_is_stream() -> None:
    assert is_stream(request(PLAIN))
    assert not is_stream(request({**PLAIN, "stream": "true"}))
    assert not is_stream(request([PLAIN]))


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/completions", "openai_completions"),
        ("/completions", "openai_completions"),
        ("//openai/deployments/test-openai/completions", "openai_completions"),
        ("/openai/v1/completions", "openai_completions"),
        ("/api/v1/completions", "openai_completions"),
        ("/novita/v3/openai/completions", "openai_completions"),
        # The prefix route must not swallow chat: the more specific pattern wins.
        ("/v1/chat/completions", "openai_chat"),
        ("/chat/completions", "openai_chat"),
        ("/api/v1/chat/completions", "openai_chat"),
        ("/novita/v3/openai/chat/completions", "openai_chat"),
        ("/openai/deployments/gpt-4o/chat/completions", "openai_chat"),
        ("/openai/v1/chat/completions", "openai_chat"),
    ],
)
def test_routes_and_chat_still_wins_for_chat_paths(path: str, dialect: str) -> None:
    match = resolve("POST", path)
    assert match is not None and match.dialect.name == dialect, path


def test_the_dialect_is_registered() -> None:
    assert DIALECTS["openai_completions"] is DIALECT
    assert (DIALECT.framing, DIALECT.base_path) == (SSE, "/v1")
    assert dict(DIALECT.environment)["OPENAI_BASE_URL"] == "{url}/v1"
    assert DIALECT.check is check and DIALECT.synthesize is synthesize and DIALECT.error is error
