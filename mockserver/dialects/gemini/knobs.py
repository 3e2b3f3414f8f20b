"""Gemini knobs for the hypothesis strategies: the stream request (``alt=sse``), and one
mutation per rule of ``check``, over the stream's JSON objects.
"""

from __future__ import annotations

import random
from typing import Any

from mockserver.dialects._kit.knobs import Knobs, Mutation, Options, post
from mockserver.dialects._kit.mutate import SSE_CRLF_OBJECTS, Change, object_mutation
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.dialects._kit.mutate import obj as _o
from mockserver.dialects._kit.mutate import objects as _objects
from mockserver.model import Request, Script

TOOLS = {"tools": True}
TWO = {"tools": True, "text": True}


def _m(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    return object_mutation(SSE_CRLF_OBJECTS, name, rule, change, needs)


def gemini_request(script: Script, options: Options) -> Request:
    config: dict[str, Any] = {}
    if script.n and script.n > 1:
        config["candidateCount"] = script.n
    if options.thinking:
        config["thinkingConfig"] = {"includeThoughts": True}
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    if config:
        body["generationConfig"] = config
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        declarations = [{"name": n, "parameters": {"type": "object"}} for n in names]
        body["tools"] = [{"functionDeclarations": declarations}]
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    return post(path, body, (("alt", "sse"),))


def gemini_mutations() -> tuple[Mutation, ...]:
    def done_added(v: list[Item], rng: random.Random) -> list[Item]:
        return [*v, b"data: [DONE]\r\n\r\n"]

    def comment(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, len(v)), b": keep-alive\r\n\r\n")
        return v

    def usage_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _o(v[rng.choice(_objects(v))])["usageMetadata"]
        return v

    def finish_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _o(v[_objects(v)[-1]])["candidates"][0]["finishReason"]
        return v

    def id_changed(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[_objects(v)[-1]])["responseId"] += "x"
        return v

    def not_json(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, len(v)), b"data: {oops\r\n\r\n")
        return v

    def call_unnamed(v: list[Item], rng: random.Random) -> list[Item]:
        parts = _o(v[_objects(v)[-1]])["candidates"][0]["content"]["parts"]
        rng.choice([p for p in parts if "functionCall" in p])["functionCall"]["name"] = ""
        return v

    def total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[_objects(v)[-1]])["usageMetadata"]["totalTokenCount"] += 1
        return v

    return (
        _m("done-added", "done-sentinel", done_added),
        _m("comment-line", "line-not-data", comment),
        _m("usage-dropped", "usage-missing", usage_dropped),
        _m("finish-dropped", "finish-reason-missing", finish_dropped, {"n": 1}),
        _m("response-id-changed", "response-id-changed", id_changed, TWO),
        _m("not-json", "chunk-not-json", not_json),
        _m("function-call-unnamed", "function-call-incomplete", call_unnamed, TOOLS),
        _m("total-wrong", "usage-arithmetic", total_wrong),
    )


KNOBS = Knobs(
    gemini_request, tools=True, choices=True, thinking="text", mutations=gemini_mutations()
)
