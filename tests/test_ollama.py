"""The ollama dialect: every check rule caught on a stream that breaks only it, legal
variations that pass, synthesized answers that pass and say what the script said, the
request identity, and Ollama's error shape."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve, sdk_environment
from mockserver.dialects.ollama.dialect import (
    DEFAULT_TEXT,
    DIALECT,
    MODELS,
    RULES,
    THINKING_TEXT,
    VOLATILE_FIELDS,
    check,
    error,
    identity,
    is_stream,
    synthesize,
    thinking_and_content,
    vector,
)
from mockserver.framing.ndjson import NDJSON, Decoder
from mockserver.model import Request, Script, ToolCall, canonical_json, header

MESSAGES = [{"role": "user", "content": "Say hi"}]
CHAT = {"model": "llama3.2", "messages": MESSAGES}
GENERATE = {"model": "llama3.2", "prompt": "Say hi"}
METRICS = {
    "total_duration": 900,
    "load_duration": 100,
    "prompt_eval_count": 5,
    "prompt_eval_duration": 200,
    "eval_count": 3,
    "eval_duration": 500,
}


def request(body: Any = None, path: str = "/api/chat", method: str = "POST") -> Request:
    raw = b"" if body is None else json.dumps(body).encode()
    return Request(method, path, body=raw, json=body)


def chat(content: str = "", done: bool = False, **message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": "2024-05-24T20:26:46.294874Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": done,
    }
    if done:
        out.update(done_reason="stop", **METRICS)
    return out


def gen(response: str = "", done: bool = False, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": "2024-05-24T20:48:36.231229Z",
        "response": response,
        "done": done,
        **extra,
    }
    if done:
        out.update(done_reason="stop", context=[1, 2, 3], **METRICS)
    return out


def ndjson(*items: dict[str, Any] | str) -> bytes:
    """Objects as compact JSON lines; strings are raw lines (oddities), written as given."""
    return "".join(
        i if isinstance(i, str) else json.dumps(i, separators=(",", ":")) + "\n" for i in items
    ).encode()


def without(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys}


TEXT = [chat("Hi"), chat(" there"), chat(done=True)]
CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CHAT_REQUEST = request(CHAT)


def rules(body: bytes, req: Request | None = CHAT_REQUEST) -> set[str]:
    return {v.rule for v in check(req, NDJSON.events(body))}


# --- one broken stream per rule --------------------------------------------------------

BROKEN: dict[str, tuple[Request | None, bytes]] = {
    "line-blank": (CHAT_REQUEST, ndjson(TEXT[0], "\n", *TEXT[1:])),
    "line-not-json": (
        CHAT_REQUEST,
        ndjson(TEXT[0], "data: " + json.dumps(TEXT[1]) + "\n", TEXT[2]),
    ),
    "line-unterminated": (CHAT_REQUEST, ndjson(*TEXT).rstrip(b"\n")),
    "done-not-boolean": (CHAT_REQUEST, ndjson(TEXT[0], without(TEXT[1], "done"), TEXT[2])),
    "done-missing": (CHAT_REQUEST, ndjson(*TEXT[:2])),
    "line-after-done": (CHAT_REQUEST, ndjson(*TEXT, TEXT[2])),
    "line-after-error": (CHAT_REQUEST, ndjson(TEXT[0], {"error": "model crashed"}, TEXT[1])),
    "done-reason-early": (CHAT_REQUEST, ndjson({**TEXT[0], "done_reason": "stop"}, *TEXT[1:])),
    "eval-count-missing": (CHAT_REQUEST, ndjson(*TEXT[:2], without(TEXT[2], "eval_count"))),
    "metric-invalid": (CHAT_REQUEST, ndjson(*TEXT[:2], {**TEXT[2], "eval_duration": 1.5})),
    "message-role-missing": (
        CHAT_REQUEST,
        ndjson(TEXT[0], {**TEXT[1], "message": {"content": " there"}}, TEXT[2]),
    ),
    "text-not-string": (
        request(GENERATE, "/api/generate"),
        ndjson(gen("Hi"), gen(7), gen(done=True)),
    ),
    "tool-call-shape": (
        CHAT_REQUEST,
        ndjson(
            chat(
                tool_calls=[{"function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
            ),
            chat(done=True),
        ),
    ),
    "model-changed": (CHAT_REQUEST, ndjson(TEXT[0], {**TEXT[1], "model": "qwen3"}, TEXT[2])),
}


def test_every_rule_has_a_stream_that_breaks_it() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_stream_breaks_exactly_its_rule(rule: str) -> None:
    req, stream = BROKEN[rule]
    violations = check(req, NDJSON.events(stream))
    assert [v.rule for v in violations] == [rule]
    (violation,) = violations
    assert violation.message.startswith("expected "), violation.message
    assert ", found " in violation.message and violation.message.endswith("."), violation.message
    assert violation.message.count(". ") == 0, violation.message


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_broken_streams_give_the_same_verdict_through_the_incremental_decoder(rule: str) -> None:
    req, stream = BROKEN[rule]
    decoder = Decoder()
    events = [e for i in range(0, len(stream), 7) for e in decoder.feed(stream[i : i + 7])]
    events += decoder.close()
    assert [v.rule for v in check(req, events)] == [rule]


def test_the_bases_of_the_broken_streams_pass() -> None:
    assert rules(ndjson(*TEXT)) == set()
    assert rules(ndjson(gen("Hi"), gen(done=True)), request(GENERATE, "/api/generate")) == set()
    assert rules(ndjson(chat(tool_calls=[CALL]), chat(done=True))) == set()


def test_violations_point_at_the_line_that_broke_the_rule() -> None:
    (late,) = check(CHAT_REQUEST, NDJSON.events(BROKEN["line-after-done"][1]))
    assert late.index == 3 and "done: true object at event 2" in late.message
    (missing,) = check(CHAT_REQUEST, NDJSON.events(BROKEN["done-missing"][1]))
    assert missing.index == -1 and str(missing).startswith("done-missing at stream:")


def test_a_rule_broken_on_many_lines_is_reported_once_with_a_count() -> None:
    body = ndjson(*({**TEXT[0], "done_reason": "x"} for _ in range(4)), TEXT[2])
    (violation,) = check(CHAT_REQUEST, NDJSON.events(body))
    assert violation.rule == "done-reason-early" and violation.index == 0
    assert "(3 more like it, the last at event 3)" in violation.message


def test_a_cut_stream_reports_the_cut_line_and_the_missing_end() -> None:
    body = ndjson(*TEXT)[:-20]
    assert rules(body) == {"line-unterminated", "line-not-json", "done-missing"}


def test_a_generate_stream_is_judged_as_generate_even_with_a_message_key() -> None:
    body = ndjson(gen("Hi", message=None), gen(done=True))
    assert rules(body, request(GENERATE, "/api/generate")) == set()
    assert rules(body, request(CHAT)) == {"message-role-missing"}


def test_without_a_request_the_kind_is_read_from_each_line() -> None:
    assert rules(ndjson(*TEXT), None) == set()
    assert rules(ndjson(gen("Hi"), gen(done=True)), None) == set()
    assert rules(ndjson(chat(), {**TEXT[1], "message": "hi"}, TEXT[2]), None) == {
        "message-role-missing"
    }


def test_tool_call_shape_names_each_broken_call() -> None:
    calls = [CALL, {"function": {"name": "", "arguments": {}}}, "call", {"id": "call_1"}]
    (violation,) = check(CHAT_REQUEST, NDJSON.events(ndjson(chat(tool_calls=calls), TEXT[2])))
    assert violation.rule == "tool-call-shape" and "(2 more like it" in violation.message
    assert rules(ndjson(chat(tool_calls=CALL), TEXT[2])) == {"tool-call-shape"}


def test_metric_invalid_names_the_field() -> None:
    for key, value in (("prompt_eval_count", -1), ("total_duration", "9"), ("load_duration", True)):
        (violation,) = check(
            CHAT_REQUEST, NDJSON.events(ndjson(*TEXT[:2], {**TEXT[2], key: value}))
        )
        assert violation.rule == "metric-invalid" and key in violation.message


# --- legal variations ------------------------------------------------------------------

LEGAL: dict[str, tuple[Request | None, bytes]] = {
    "CRLF line ends": (CHAT_REQUEST, ndjson(*TEXT).replace(b"\n", b"\r\n")),
    "prompt_eval_count missing (cached prompt)": (
        CHAT_REQUEST,
        ndjson(*TEXT[:2], without(TEXT[2], "prompt_eval_count")),
    ),
    "no done_reason at all (Ollama before 0.1.38)": (
        CHAT_REQUEST,
        ndjson(*TEXT[:2], without(TEXT[2], "done_reason")),
    ),
    "done_reason before done (2024 key order)": (
        CHAT_REQUEST,
        ndjson(*TEXT[:2], {**without(TEXT[2], "done"), "done": True}),
    ),
    "thinking, then content, then a tool call, whole": (
        CHAT_REQUEST,
        ndjson(chat(thinking="Hmm"), chat("Hi"), chat(tool_calls=[CALL, CALL]), TEXT[2]),
    ),
    "a tool call with an index and an id": (
        CHAT_REQUEST,
        ndjson(
            chat(tool_calls=[{"id": "call_1", "function": {"index": 1, **CALL["function"]}}]),
            TEXT[2],
        ),
    ),
    "only the done line": (CHAT_REQUEST, ndjson(TEXT[2])),
    "an error line ends the stream without done": (
        CHAT_REQUEST,
        ndjson(TEXT[0], {"error": "an error was encountered while running the model"}),
    ),
    "an error line first": (CHAT_REQUEST, ndjson({"error": "model 'x' not found"})),
    "unknown extra keys and null content": (
        CHAT_REQUEST,
        ndjson(
            {**chat(None, images=None), "remote_model": "gpt-oss:120b", "logprobs": []},
            {**TEXT[2], "_debug_info": {"template": "x"}},
        ),
    ),
    "spaces inside a line": (
        CHAT_REQUEST,
        b"".join(json.dumps(item).encode() + b"\n" for item in TEXT),
    ),
    "generate with thinking and context": (
        request(GENERATE, "/api/generate"),
        ndjson(gen("", thinking="Hmm"), gen("Hi"), gen(done=True)),
    ),
    "metrics on a done: false line": (CHAT_REQUEST, ndjson({**TEXT[0], "eval_count": 1}, TEXT[2])),
    "stream flag absent from the request": (request({"model": "m"}), ndjson(*TEXT)),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_variations_pass(name: str) -> None:
    req, stream = LEGAL[name]
    assert check(req, NDJSON.events(stream)) == []
    assert check(None, NDJSON.events(stream)) == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
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
texts = (
    st.none()
    | st.text(max_size=30)
    | st.sampled_from(["", "héllo 👋🏽 <wörld> & co", "<think>hmm</think>Yes.", "a\u2028b"])
    | st.builds(lambda t, c: f"<think>{t}</think>{c}", st.text(max_size=10), st.text(max_size=10))
)
scripts = st.builds(
    Script,
    text=texts,
    tool_calls=tool_calls,
    chunk_size=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    finish_reason=st.sampled_from([None, None, "length", "load"]),
    prompt_tokens=st.none() | st.integers(0, 50),
)
bodies = st.builds(
    lambda endpoint, stream, think: (
        endpoint,
        {**(CHAT if endpoint == "/api/chat" else GENERATE), **stream, **think},
    ),
    st.sampled_from(["/api/chat", "/api/generate"]),
    st.sampled_from([{}, {"stream": True}, {"stream": None}]),
    st.sampled_from([{}, {"think": True}, {"think": "high"}, {"think": False}]),
)


def lines_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in NDJSON.events(body)]


def reassemble(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client builds from a stream: text, thinking, tool calls, and the last line."""
    out: dict[str, Any] = {"content": "", "thinking": "", "calls": []}
    for line in lines:
        part = line.get("message", line)
        out["content"] += part.get("content", part.get("response", ""))
        out["thinking"] += part.get("thinking", "")
        out["calls"] += part.get("tool_calls", [])
    return out


def expected(endpoint: str, body: dict[str, Any], script: Script) -> dict[str, Any]:
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text or ""
    thinking, content = thinking_and_content(text, body.get("think"))
    calls = [
        (c.name, json.loads(c.arguments)) for c in script.tool_calls if endpoint == "/api/chat"
    ]
    size = script.chunk_size
    evals = math.ceil(len(thinking) / size) + math.ceil(len(content) / size)
    evals += sum(math.ceil(len(c.arguments) / size) for c in script.tool_calls if calls)
    return {"content": content, "thinking": thinking, "calls": calls, "eval_count": max(1, evals)}


@given(scripts, bodies)
def test_synthesized_streams_pass_every_rule_and_carry_the_script(
    script: Script, asked: tuple[str, dict[str, Any]]
) -> None:
    endpoint, body = asked
    req = request(body, endpoint)
    response = synthesize(req, script)
    assert (response.status, response.reason) == (200, "OK")
    assert header(response.headers, "content-type") == "application/x-ndjson"
    assert check(req, NDJSON.events(response.body)) == []
    for frame in NDJSON.frames(response.body):
        assert frame.endswith(b"\n") and frame.count(b"\n") == 1
        frame.decode("utf-8")  # strict: every line is whole UTF-8
    lines = lines_of(response.body)
    got = reassemble(lines)
    want = expected(endpoint, body, script)
    assert (got["content"], got["thinking"]) == (want["content"], want["thinking"])
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got["calls"]] == want[
        "calls"
    ]
    *parts, last = lines
    assert all(line["done"] is False and "done_reason" not in line for line in parts)
    assert last["done"] is True and last["done_reason"] == (script.finish_reason or "stop")
    assert last["eval_count"] == want["eval_count"]
    if endpoint == "/api/chat":
        assert all(line["message"]["role"] == "assistant" for line in lines)
    else:
        assert len(last["context"]) == last.get("prompt_eval_count", 0) + last["eval_count"]
    times = [line["created_at"] for line in lines]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)
    assert last["total_duration"] >= (
        last["load_duration"] + last["prompt_eval_duration"] + last["eval_duration"]
    )
    if script.prompt_tokens is not None:
        assert last.get("prompt_eval_count", 0) == script.prompt_tokens


@given(scripts, bodies)
def test_a_synthesized_body_is_the_last_line_holding_everything(
    script: Script, asked: tuple[str, dict[str, Any]]
) -> None:
    endpoint, body = asked
    streamed = lines_of(synthesize(request(body, endpoint), script).body)
    response = synthesize(request({**body, "stream": False}, endpoint), script)
    assert header(response.headers, "content-type") == "application/json; charset=utf-8"
    whole = json.loads(response.body)
    got = reassemble([whole])
    want = expected(endpoint, body, script)
    assert (got["content"], got["thinking"]) == (want["content"], want["thinking"])
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got["calls"]] == want[
        "calls"
    ]
    last = streamed[-1]
    assert [k for k in whole if k != "thinking"] == list(last)
    assert {k: v for k, v in whole.items() if k not in ("message", "response", "thinking")} == {
        k: v for k, v in last.items() if k not in ("message", "response")
    }


@given(scripts, st.integers(0, 2**32))
def test_a_different_seed_gives_different_timings(script: Script, other: int) -> None:
    assume(other != script.seed)
    req = request(CHAT)
    fields = {name: getattr(script, name) for name in Script.__dataclass_fields__}
    first, second = (
        lines_of(synthesize(req, s).body)[-1] for s in (script, Script(**{**fields, "seed": other}))
    )
    assert (first["created_at"], first["total_duration"]) != (
        second["created_at"],
        second["total_duration"],
    )


# --- synthesize: exact lines, embeddings, the model list, errors ------------------------


def test_a_chat_stream_is_ollamas_lines_exactly() -> None:
    body = synthesize(request(CHAT), Script(text="Hello", chunk_size=3, seed=7)).body
    first, second, last = lines_of(body)
    assert list(first) == ["model", "created_at", "message", "done"]
    assert first["message"] == {"role": "assistant", "content": "Hel"}
    assert second["message"] == {"role": "assistant", "content": "lo"}
    assert list(last) == [
        "model",
        "created_at",
        "message",
        "done",
        "done_reason",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    assert last["message"] == {"role": "assistant", "content": ""} and last["eval_count"] == 2
    assert body.startswith(b'{"model":"llama3.2","created_at":"20')
    assert b'"message":{"role":"assistant","content":"Hel"},"done":false}\n' in body
    assert body.endswith(b"}\n") and b"\n\n" not in body


def test_thinking_comes_first_and_tool_calls_arrive_whole() -> None:
    script = Script(
        text="<think>Hm.</think>Ok",
        tool_calls=(ToolCall("f", '{"a": [1, 2]}'), ToolCall("g", "[1]")),
        chunk_size=2,
    )
    messages = [line["message"] for line in lines_of(synthesize(request(CHAT), script).body)]
    assert messages == [
        {"role": "assistant", "content": "", "thinking": "Hm"},
        {"role": "assistant", "content": "", "thinking": "."},
        {"role": "assistant", "content": "Ok"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2]}}}],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"index": 1, "name": "g", "arguments": {"value": [1]}}}],
        },
        {"role": "assistant", "content": ""},
    ]


def test_think_in_the_request_thinks_the_default_thought() -> None:
    for think in (True, "low"):
        whole = json.loads(
            synthesize(request({**CHAT, "stream": False, "think": think}), Script()).body
        )
        assert whole["message"] == {
            "role": "assistant",
            "content": DEFAULT_TEXT,
            "thinking": THINKING_TEXT,
        }
    plain = json.loads(
        synthesize(request({**CHAT, "stream": False, "think": False}), Script()).body
    )
    assert "thinking" not in plain["message"]


def test_generate_lines_carry_response_and_the_context() -> None:
    req = request({**GENERATE, "think": True}, "/api/generate")
    lines = lines_of(synthesize(req, Script(text="Hi", chunk_size=100, prompt_tokens=3)).body)
    assert [list(line) for line in lines[:2]] == [
        ["model", "created_at", "response", "thinking", "done"],
        ["model", "created_at", "response", "done"],
    ]
    assert list(lines[-1])[:6] == [
        "model",
        "created_at",
        "response",
        "done",
        "done_reason",
        "context",
    ]
    assert len(lines[-1]["context"]) == 3 + 2


def test_generate_ignores_tool_calls() -> None:
    req = request({**GENERATE, "stream": False}, "/api/generate")
    whole = json.loads(synthesize(req, Script(tool_calls=(ToolCall("f"),))).body)
    assert whole["response"] == "" and "tool_calls" not in whole


def test_a_cached_prompt_leaves_prompt_eval_count_out() -> None:
    last = lines_of(synthesize(request(CHAT), Script(prompt_tokens=0)).body)[-1]
    assert "prompt_eval_count" not in last and last["eval_count"] >= 1
    assert (
        check(request(CHAT), NDJSON.events(synthesize(request(CHAT), Script(text="")).body)) == []
    )


def test_go_escaping_and_a_lone_surrogate() -> None:
    body = synthesize(request({**CHAT, "stream": False}), Script(text="<b>&\u2028")).body
    assert b"\\u003cb\\u003e\\u0026\\u2028" in body
    assert json.loads(body)["message"]["content"] == "<b>&\u2028"
    lone = synthesize(request(CHAT), Script(text="a\ud800b", chunk_size=1)).body
    lone.decode("utf-8")
    assert reassemble(lines_of(lone))["content"] == "a\ud800b"


def test_embed_answers_one_unit_vector_per_input() -> None:
    req = request(
        {"model": "nomic-embed-text", "input": ["a", "b", "a"], "dimensions": 5}, "/api/embed"
    )
    response = synthesize(req, Script(seed=3))
    assert header(response.headers, "content-type") == "application/json; charset=utf-8"
    answer = json.loads(response.body)
    assert list(answer) == [
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    ]
    assert answer["model"] == "nomic-embed-text" and answer["prompt_eval_count"] == 3
    first, second, third = answer["embeddings"]
    assert first == third != second and len(first) == 5
    assert abs(sum(x * x for x in first) - 1) < 1e-5
    assert first == vector(3, "a", 5)
    single = json.loads(
        synthesize(
            request({"model": "m", "input": "a", "dimensions": 5}, "/api/embed"), Script(seed=3)
        ).body
    )
    assert single["embeddings"] == [first]
    empty = json.loads(
        synthesize(request({"model": "m", "input": []}, "/api/embed"), Script()).body
    )
    assert empty == {"model": "m", "embeddings": []}
    default = json.loads(
        synthesize(request({"model": "m", "input": "x"}, "/api/embed"), Script()).body
    )
    assert len(default["embeddings"][0]) == 768


def test_legacy_embeddings_answer_one_vector() -> None:
    req = request({"model": "m", "prompt": "hello"}, "/api/embeddings")
    answer = json.loads(synthesize(req, Script(seed=1)).body)
    assert list(answer) == ["embedding"] and answer["embedding"] == vector(1, "hello", 768)
    empty = synthesize(request({"model": "m", "prompt": ""}, "/api/embeddings"), Script()).body
    assert empty == b'{"embedding":[]}'


def test_the_model_list_is_fixed() -> None:
    req = Request("GET", "/api/tags")
    one, two = (json.loads(synthesize(req, Script(seed=s)).body) for s in (1, 2))
    assert one == two
    assert [m["name"] for m in one["models"]] == [name for name, *_ in MODELS]
    assert all(len(m["digest"]) == 64 and m["details"]["format"] == "gguf" for m in one["models"])
    assert not is_stream(req)


def test_a_scripted_error_is_ollamas_error_and_script_headers_win() -> None:
    response = synthesize(
        request(CHAT),
        Script(status=503, error_message="server busy", headers=(("retry-after", "2"),)),
    )
    assert (response.status, response.reason, response.body) == (
        503,
        "Service Unavailable",
        b'{"error":"server busy"}',
    )
    assert header(response.headers, "retry-after") == "2"
    ok = synthesize(
        request(CHAT), Script(headers=(("Content-Type", "text/plain"), ("x-extra", "1")))
    )
    assert ok.headers == (("Content-Type", "text/plain"), ("x-extra", "1"))


# --- error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (404, "Not Found"), (500, "Internal Server Error"), (599, "")],
)
def test_error_shape(status: int, reason: str) -> None:
    response = error(status, "model 'x' not found", "")
    assert (response.status, response.reason) == (status, reason)
    assert response.body == b'{"error":"model \'x\' not found"}'
    assert header(response.headers, "content-type") == "application/json; charset=utf-8"


def test_error_escapes_like_go_and_keeps_unicode() -> None:
    body = error(400, "bad <input> & café", "whatever").body
    assert body == '{"error":"bad \\u003cinput\\u003e \\u0026 café"}'.encode()
    assert json.loads(body) == {"error": "bad <input> & café"}


# --- identity, is_stream, routes -------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_integral_floats() -> None:
    one = json.loads(
        '{"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], '
        '"options": {"temperature": 0}}'
    )
    two = json.loads(
        '{"options":{"temperature":0.0},"messages":[{"content":"hi","role":"user"}],"model":"llama3.2"}'
    )
    assert identity(request(one)) == identity(request(two))
    assert identity(request({**one, "options": {"temperature": 0.5}})) != identity(request(one))


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    base = {**CHAT, "options": {"temperature": 0}}
    changed = copy.deepcopy(base)
    if field.startswith("options."):
        changed["options"][field.split(".", 1)[1]] = 4
    else:
        changed[field] = "10m"
    assert identity(request(changed)) == identity(request(base))


def test_defaults_spelled_out_match_defaults_left_out() -> None:
    base = {"model": "llama3", "messages": MESSAGES}
    same = [
        {**base, "stream": True},
        {**base, "stream": None},
        {**base, "model": "llama3:latest"},
        {**base, "tools": [], "format": "", "options": {}, "keep_alive": None},
        {**base, "options": {"num_thread": 8, "use_mmap": True}},
        {**base, "messages": [{**MESSAGES[0], "images": [], "tool_calls": []}]},
    ]
    assert {identity(request(body)) for body in same} == {identity(request(base))}
    different = [
        {**base, "stream": False},
        {**base, "model": "llama3:8b"},
        {**base, "format": "json"},
        {**base, "think": True},
        {**base, "options": {"num_ctx": 8192}},
        {**base, "messages": [{"role": "user", "content": "Say bye"}]},
    ]
    identities = {identity(request(body)) for body in [base, *different]}
    assert len(identities) == 1 + len(different)


def test_generate_defaults_of_old_clients_match_new_clients() -> None:
    old = {
        "model": "llama3",
        "prompt": "p",
        "system": "",
        "template": "",
        "context": [],
        "stream": True,
        "raw": False,
        "images": [],
        "format": "",
        "options": {},
        "keep_alive": None,
    }
    new = {"model": "llama3", "stream": True, "prompt": "p"}
    assert identity(request(old, "/api/generate")) == identity(request(new, "/api/generate"))
    assert identity(request({**new, "raw": True}, "/api/generate")) != identity(
        request(new, "/api/generate")
    )


def test_embed_input_as_a_string_matches_a_list_of_one() -> None:
    one = request({"model": "m", "input": "hi"}, "/api/embed")
    assert identity(one) == identity(
        request({"model": "m", "input": ["hi"], "truncate": True}, "/api/embed")
    )
    assert identity(one) != identity(request({"model": "m", "input": ["hi", "hi"]}, "/api/embed"))
    legacy = request({"model": "m", "prompt": "hi"}, "/api/embeddings")
    assert dict(identity(legacy)) == {"model": '"m:latest"', "prompt": '"hi"'}


def test_identity_of_a_get_and_of_a_body_that_is_not_an_object() -> None:
    assert identity(Request("GET", "/api/tags")) == ()
    assert identity(request([1, 2])) == (("body", json.dumps("[1,2]")),)
    raw = Request("POST", "/api/chat", body=b"not json")
    assert identity(raw) == (("body", '"not json"'),)
    hash(identity(raw))


def test_model_tags_are_normalized_per_path_segment() -> None:
    def model(name: str) -> str:
        return json.loads(dict(identity(request({**CHAT, "model": name})))["model"])

    assert model("llama3") == "llama3:latest"
    assert model("hf.co/user/repo:Q4_K_M") == "hf.co/user/repo:Q4_K_M"
    assert model("localhost:5000/team/model") == "localhost:5000/team/model:latest"


def test_is_stream_defaults_to_true_for_chat_and_generate_only() -> None:
    assert is_stream(request(CHAT)) and is_stream(request(GENERATE, "/api/generate"))
    assert is_stream(request({**CHAT, "stream": None}))
    assert is_stream(request(CHAT, "/ollama/api/chat/"))
    assert not is_stream(request({**CHAT, "stream": False}))
    assert not is_stream(request({"model": "m", "input": "x"}, "/api/embed"))
    assert not is_stream(request({"model": "m", "prompt": "x"}, "/api/embeddings"))
    assert not is_stream(request([CHAT]))
    assert not is_stream(Request("POST", "/api/chat", body=b"x"))


def test_the_dialect_is_registered_and_routed() -> None:
    assert DIALECTS["ollama"] is DIALECT
    assert (DIALECT.framing, DIALECT.base_path) == (NDJSON, "")
    served = {
        ("POST", "/api/chat"): "chat",
        ("POST", "/api/generate"): "generate",
        ("POST", "/api/embed"): "embed",
        ("POST", "/api/embeddings"): "embeddings",
        ("GET", "/api/tags"): "tags",
        ("POST", "/ollama/api/chat"): "chat",
        ("GET", "/ollama/api/tags/"): "tags",
    }
    for (method, path), name in served.items():
        match = resolve(method, path)
        assert match is not None and match.dialect is DIALECT, path
        assert match.route.endpoint == name
    assert resolve("GET", "/api/chat") is None
    chat_compatible = resolve("POST", "/v1/chat/completions")
    assert chat_compatible is not None and chat_compatible.dialect.name == "openai_chat"
    assert sdk_environment("http://127.0.0.1:1")["OLLAMA_HOST"] == "http://127.0.0.1:1"


def test_canonical_identity_values_are_what_identity_from_makes() -> None:
    assert dict(identity(request(CHAT)))["messages"] == canonical_json(MESSAGES)
