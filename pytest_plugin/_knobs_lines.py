"""Knobs of the protocols whose events are bare JSON objects: Gemini (``data:`` lines,
CRLF blank lines), Ollama (NDJSON) and Bedrock (binary AWS event-stream frames).

A mutation sees each event as ``[name, object]`` (name: Bedrock's ``:event-type``, else
None) or raw bytes for anything else, and writes it back in the protocol's framing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from mockserver.framing import aws_eventstream
from mockserver.model import Request, Script
from pytest_plugin._knobs import PROMPT, Knobs, Mutation, Options, dumps, post

Item = list[Any] | bytes  # [event name or None, JSON object], or a raw frame
Change = Callable[[list[Item], random.Random], list[Item]]
TOOLS = {"tools": True}
TWO = {"tools": True, "text": True}


def _codec(kind: str) -> tuple[Callable[[bytes], Item], Callable[[Item], bytes]]:
    def read(frame: bytes) -> Item:
        if kind == "bedrock":
            event = aws_eventstream.parse(frame)
            name = aws_eventstream.headers(event).get(":event-type")
            text = event.data if name and aws_eventstream.problem(event) is None else None
        else:
            text = (
                frame.decode().removeprefix("data: ")
                if kind == "ndjson" or frame.startswith(b"data: {")
                else None
            )
            name = None
        try:
            value = json.loads(text) if text else None
        except ValueError:
            value = None
        return [name, value] if isinstance(value, dict) else frame

    def write(item: Item) -> bytes:
        if isinstance(item, bytes):
            return item
        name, value = item
        if kind == "bedrock":
            fields = {":event-type": name, ":content-type": "application/json"}
            return aws_eventstream.encode(
                [*fields.items(), (":message-type", "event")], dumps(value)
            )
        return dumps(value) + b"\n" if kind == "ndjson" else b"data: " + dumps(value) + b"\r\n\r\n"

    return read, write


def _m(
    kind: str, name: str, rule: str, change: Change, needs: dict[str, Any] | None = None
) -> Mutation:
    read, write = _codec(kind)

    def apply(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
        return [write(item) for item in change([read(f) for f in frames], rng)]

    return Mutation(name, rule, apply, dict(needs or {}))


def _objects(values: list[Item], name: str | None = None) -> list[int]:
    return [
        i for i, v in enumerate(values) if isinstance(v, list) and (name is None or v[0] == name)
    ]


def _o(value: Item) -> dict[str, Any]:
    assert isinstance(value, list)
    found: dict[str, Any] = value[1]
    return found


# --- Gemini ---------------------------------------------------------------------------------


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
        _m("gemini", "done-added", "done-sentinel", done_added),
        _m("gemini", "comment-line", "line-not-data", comment),
        _m("gemini", "usage-dropped", "usage-missing", usage_dropped),
        _m("gemini", "finish-dropped", "finish-reason-missing", finish_dropped, {"n": 1}),
        _m("gemini", "response-id-changed", "response-id-changed", id_changed, TWO),
        _m("gemini", "not-json", "chunk-not-json", not_json),
        _m("gemini", "function-call-unnamed", "function-call-incomplete", call_unnamed, TOOLS),
        _m("gemini", "total-wrong", "usage-arithmetic", total_wrong),
    )


GEMINI = Knobs(
    gemini_request, tools=True, choices=True, thinking="text", mutations=gemini_mutations()
)


# --- Ollama ---------------------------------------------------------------------------------


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
        _m("ndjson", "done-dropped", "done-missing", done_dropped),
        _m("ndjson", "line-after-done", "line-after-done", after_done),
        _m("ndjson", "blank-line", "line-blank", blank),
        _m("ndjson", "sse-prefix", "line-not-json", sse_prefix, {"text": True}),
        _m("ndjson", "model-changed", "model-changed", model_changed),
        _m("ndjson", "eval-count-dropped", "eval-count-missing", eval_dropped),
    )


OLLAMA = Knobs(ollama_request, tools=True, thinking="text", mutations=ollama_mutations())


# --- Bedrock ConverseStream ------------------------------------------------------------------


def bedrock_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        specs = [{"toolSpec": {"name": n, "inputSchema": {"json": {}}}} for n in names]
        body["toolConfig"] = {"tools": specs}
    return post("/model/anthropic.claude-sonnet-4-5/converse-stream", body)


def bedrock_mutations() -> tuple[Mutation, ...]:
    def truncated(v: list[Item], rng: random.Random) -> list[Item]:
        write = _codec("bedrock")[1]
        return [*v[:-1], write(v[-1])[:-3]]

    def crc_broken(v: list[Item], rng: random.Random) -> list[Item]:
        write = _codec("bedrock")[1]
        at = rng.randrange(len(v))
        frame = bytearray(write(v[at]))
        frame[-1] ^= 0xFF  # the message CRC's last byte
        v[at] = bytes(frame)
        return v

    def metadata_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        return [x for x in v if not (isinstance(x, list) and x[0] == "metadata")]

    def block_stop_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[rng.choice(_objects(v, "contentBlockStop"))]
        return v

    def total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[_objects(v, "metadata")[0]])["usage"]["totalTokens"] += 1
        return v

    return (
        _m("bedrock", "frame-truncated", "frame-truncated", truncated),
        _m("bedrock", "message-crc-broken", "message-crc", crc_broken),
        _m("bedrock", "metadata-dropped", "metadata-last", metadata_dropped),
        _m("bedrock", "block-stop-dropped", "block-not-stopped", block_stop_dropped),
        _m("bedrock", "total-wrong", "usage-arithmetic", total_wrong),
    )


BEDROCK = Knobs(bedrock_request, tools=True, thinking="text", mutations=bedrock_mutations())
