"""Ollama knobs for the hypothesis strategies: the NDJSON stream request, and one mutation
per rule of ``check``, over the stream's JSON lines.
"""

from __future__ import annotations

import random
from typing import Any

from mockserver.dialects._kit.knobs import PROMPT, Knobs, Mutation, Options, dumps, post
from mockserver.dialects._kit.mutate import NDJSON_OBJECTS, Change, object_mutation
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.dialects._kit.mutate import obj as _o
from mockserver.dialects._kit.mutate import objects as _objects
from mockserver.model import Request, Script

TOOLS = {"tools": True}
TWO = {"tools": True, "text": True}


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

    return (
        _m("done-dropped", "done-missing", done_dropped),
        _m("line-after-done", "line-after-done", after_done),
        _m("blank-line", "line-blank", blank),
        _m("sse-prefix", "line-not-json", sse_prefix, {"text": True}),
        _m("model-changed", "model-changed", model_changed),
        _m("eval-count-dropped", "eval-count-missing", eval_dropped),
    )


KNOBS = Knobs(ollama_request, tools=True, thinking="text", mutations=ollama_mutations())
