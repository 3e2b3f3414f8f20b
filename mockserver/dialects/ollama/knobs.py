"""Ollama knobs for the hypothesis strategies: the NDJSON stream request, and a mutation
for every rule of ``check``, over the stream's JSON lines (the last line is the done one).
"""

from __future__ import annotations

import json
import random
from typing import Any

from mockserver.dialects._kit.knobs import PROMPT, Knobs, Mutation, Options, dumps, post
from mockserver.dialects._kit.mutate import NDJSON_OBJECTS, Change, object_mutation
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.dialects._kit.mutate import obj as _o
from mockserver.dialects._kit.mutate import objects as _objects
from mockserver.dialects.ollama.check import METRICS
from mockserver.model import Request, Script

TOOLS = {"tools": True}


def _m(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    return object_mutation(NDJSON_OBJECTS, name, rule, change, needs)


def ollama_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"model": "llama3.2", "messages": PROMPT}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        body["tools"] = [{"type": "function", "function": {"name": n}} for n in names]
    return post("/api/chat", body)  # Ollama streams unless told not to


def ollama_mutations() -> tuple[Mutation, ...]:
    def done_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[-1])["done"] = False
        del _o(v[-1])["done_reason"]
        return v

    def after_done(v: list[Item], rng: random.Random) -> list[Item]:
        return [*v, [None, dict(_o(v[-1]))]]

    def blank(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, len(v) - 1), b"\n")
        return v

    def sse_prefix(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_objects(v)[:-1])  # not the done line: done-missing would fire too
        v[at] = b"data: " + dumps(_o(v[at])) + b"\n"
        return v

    def model_changed(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(0, [None, {**_o(v[0]), "model": "other"}])
        return v

    def eval_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _o(v[-1])["eval_count"]
        return v

    def unterminated(v: list[Item], rng: random.Random) -> list[Item]:
        # Only the last line: a middle one would run into the next, making it not JSON.
        return [*v[:-1], dumps(_o(v[-1]))]

    def done_dropped_early(v: list[Item], rng: random.Random) -> list[Item]:
        part = _o(v[rng.randrange(len(v) - 1)])
        if rng.random() < 0.5:
            del part["done"]
        else:
            part["done"] = rng.choice(["false", 0, None])
        return v

    def error_before_the_end(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randrange(len(v)), [None, {"error": "an error was encountered"}])
        return v

    def done_reason_early(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[rng.randrange(len(v) - 1)])["done_reason"] = "stop"
        return v

    def metric_broken(v: list[Item], rng: random.Random) -> list[Item]:
        last = _o(v[-1])
        key = rng.choice([k for k in METRICS if k in last])
        last[key] = rng.choice([-1, 1.5, str(last[key]), True, None])
        return v

    def role_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _o(v[rng.randrange(len(v))])["message"]["role"]
        return v

    def text_not_string(v: list[Item], rng: random.Random) -> list[Item]:
        message = _o(v[rng.randrange(len(v))])["message"]
        message[rng.choice(["content", "thinking"])] = rng.choice([7, ["text"], {"text": "x"}])
        return v

    def arguments_as_json_text(v: list[Item], rng: random.Random) -> list[Item]:
        # OpenAI's shape: the arguments object sent as a JSON string.
        at = rng.choice([i for i in _objects(v) if _o(v[i])["message"].get("tool_calls")])
        function = _o(v[at])["message"]["tool_calls"][0]["function"]
        function["arguments"] = json.dumps(function["arguments"])
        return v

    return (
        _m("done-dropped", "done-missing", done_dropped),
        _m("line-after-done", "line-after-done", after_done),
        _m("blank-line", "line-blank", blank),
        _m("sse-prefix", "line-not-json", sse_prefix, {"text": True}),
        _m("model-changed", "model-changed", model_changed),
        _m("eval-count-dropped", "eval-count-missing", eval_dropped),
        _m("last-line-unterminated", "line-unterminated", unterminated),
        _m("done-not-boolean", "done-not-boolean", done_dropped_early),
        _m("error-before-the-end", "line-after-error", error_before_the_end),
        _m("done-reason-early", "done-reason-early", done_reason_early),
        _m("metric-broken", "metric-invalid", metric_broken),
        _m("role-dropped", "message-role-missing", role_dropped),
        _m("text-not-string", "text-not-string", text_not_string),
        _m("arguments-as-json-text", "tool-call-shape", arguments_as_json_text, TOOLS),
    )


KNOBS = Knobs(ollama_request, tools=True, thinking="text", mutations=ollama_mutations())
