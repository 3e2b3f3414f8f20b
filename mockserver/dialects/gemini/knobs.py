"""Gemini knobs for the hypothesis strategies: the stream request in both of its shapes (SSE
with ``alt=sse``, else one JSON array), and a mutation for every rule of ``check``.

A mutation sees the stream as its chunks, whatever the shape: a chunk's JSON object, an
element's text as is (``str``: broken JSON, a value that is no object), or, in SSE only, a
raw frame (``bytes``); the shape's writer puts the punctuation back. The rules of one
shape (``line-not-data``, ``done-sentinel``, ``array-*``) pin it with ``needs``; the
array's own punctuation is broken on its frames.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

from mockserver.dialects._kit.knobs import Knobs, Mutation, Options, post
from mockserver.dialects.gemini.common import dumps
from mockserver.framing.json_array import parse
from mockserver.model import Request, Script

SSE, ARRAY = "sse", "array"
TOOLS = {"tools": True}
TWO = {"tools": True, "text": True}

Chunk = dict[str, Any] | str | bytes
"""A chunk's JSON object; an element's text as is; or (SSE only) a raw frame."""

Change = Callable[[list[Chunk], random.Random], list[Chunk]]
_END = b"\r\n\r\n"


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
    return post(path, body, (("alt", "sse"),) if options.variant in (None, SSE) else ())


# --- the stream as chunks ------------------------------------------------------------------


def _sse(request: Request) -> bool:
    return request.query_value("alt") == "sse"


def read(frames: list[bytes], request: Request) -> list[Chunk]:
    """The chunks of a stream's frames; the array's closing frame is left to ``write``."""
    out: list[Chunk] = []
    for frame in frames:
        if not _sse(request):
            text = parse(frame).data
        elif frame.startswith(b"data: ") and frame.endswith(_END) and frame.count(b"\n") == 2:
            text = frame[6:-4].decode()
        else:
            out.append(frame)
            continue
        if text is not None:
            out.append(_chunk(text))
    return out


def _chunk(text: str) -> Chunk:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def write(chunks: list[Chunk], request: Request) -> list[bytes]:
    """Frames as Google writes them: ``data: {…}\\r\\n\\r\\n``, or ``[{…}\\n,\\r\\n{…}\\n]``."""
    if _sse(request):
        return [c if isinstance(c, bytes) else b"data: " + _element(c) + _END for c in chunks]
    elements = []
    for c in chunks:
        assert not isinstance(c, bytes), "a raw frame is SSE only: pin the sse variant"
        elements.append(_element(c, indent=2))
    if not elements:
        return [b"[]"]
    return [b"[" + elements[0], *(b"\n,\r\n" + e for e in elements[1:]), b"\n]"]


def _element(chunk: dict[str, Any] | str, indent: int | None = None) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode()
    return dumps(chunk, indent=indent) if indent else dumps(chunk, separators=(",", ": "))


def _m(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    """A mutation written over chunks, in either shape."""

    def apply(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
        return write(change(read(frames, request), rng), request)

    return Mutation(name, rule, apply, dict(needs or {}))


def _objects(chunks: list[Chunk]) -> list[int]:
    return [i for i, c in enumerate(chunks) if isinstance(c, dict)]


def _o(chunk: Chunk) -> dict[str, Any]:
    assert isinstance(chunk, dict)
    return chunk


def _head(chunk: Chunk) -> dict[str, Any]:
    """What every chunk of the stream repeats: its id and model."""
    return {k: _o(chunk)[k] for k in ("modelVersion", "responseId")}


# --- the mutations -------------------------------------------------------------------------


def gemini_mutations() -> tuple[Mutation, ...]:
    def done_added(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        return [*v, b"data: [DONE]" + _END]

    def not_data(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        if rng.random() < 0.4:
            v.insert(rng.randint(0, len(v)), b": keep-alive" + _END)
            return v
        # SSE itself reads these chunks as before; google-genai's parser raises on them.
        at = rng.choice(_objects(v))
        frame = b"data: " + _element(_o(v[at])) + _END
        v[at] = rng.choice(
            [b"data:" + frame[6:], b"event: message\r\n" + frame, b"id: 7\r\n" + frame]
        )
        return v

    def usage_dropped(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        del _o(v[rng.choice(_objects(v))])["usageMetadata"]
        return v

    def finish_dropped(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        del _o(v[-1])["candidates"][0]["finishReason"]
        return v

    def id_changed(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        _o(v[-1])["responseId"] += "x"
        return v

    def not_json(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        # Balanced braces: the array's framing still finds where the element ends.
        v.insert(rng.randint(0, len(v)), rng.choice(["{oops}", '{"candidates": oops}', "{'a': 1}"]))
        return v

    def call_unnamed(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        parts = _o(v[-1])["candidates"][0]["content"]["parts"]
        rng.choice([p for p in parts if "functionCall" in p])["functionCall"]["name"] = ""
        return v

    def total_wrong(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        _o(v[-1])["usageMetadata"]["totalTokenCount"] += 1
        return v

    def shapeless(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        # A chunk of the wrong shape is judged by nothing else, so it may go anywhere.
        odd: list[Chunk] = [
            "[]",
            '"text"',
            '[{"candidates": []}]',
            {"candidates": {"content": {}}},
            {"candidates": [1]},
            {"candidates": [{"index": "0"}]},
            {"candidates": [{"content": "hi", "index": 0}]},
            {"candidates": [{"content": {"parts": "hi"}, "index": 0}]},
            {"candidates": [{"content": {"parts": ["hi"]}, "index": 0}]},
        ]
        v.insert(rng.randint(0, len(v)), rng.choice(odd))
        return v

    def after_error(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        error = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
        v.insert(rng.randint(0, len(v) - 1), error)
        return v

    def after_finish(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        last = _o(v[-1])
        candidate = rng.choice(last["candidates"])
        late: dict[str, Any] = {"content": {"parts": [{"text": "more"}], "role": "model"}}
        if rng.random() < 0.5:  # no content, but another reason
            other = "MAX_TOKENS" if candidate["finishReason"] != "MAX_TOKENS" else "STOP"
            late = {"content": {"parts": [], "role": "model"}, "finishReason": other}
        late["index"] = candidate["index"]
        usage = copy.deepcopy(last["usageMetadata"])  # the same total: still the largest
        return [*v, {"candidates": [late], "usageMetadata": usage, **_head(last)}]

    def final_smaller(v: list[Chunk], rng: random.Random) -> list[Chunk]:
        chunks = [_o(v[i]) for i in _objects(v)]
        if len(chunks) > 1 and rng.random() < 0.5:  # the last chunk counts less
            most = max(c["usageMetadata"]["totalTokenCount"] for c in chunks[:-1])
            total = rng.randrange(most)
            chunks[-1]["usageMetadata"] = {"promptTokenCount": total, "totalTokenCount": total}
            return v
        # Else a usage-only chunk after the finish (legal itself), counting less.
        most = max(c["usageMetadata"]["totalTokenCount"] for c in chunks)
        total = rng.randrange(most)
        usage = {"promptTokenCount": total, "totalTokenCount": total}
        return [*v, {"usageMetadata": usage, **_head(chunks[-1])}]

    sse, array = {"variant": SSE}, {"variant": ARRAY}
    return (
        _m("done-added", "done-sentinel", done_added, sse),
        _m("not-data-line", "line-not-data", not_data, sse),
        _m("usage-dropped", "usage-missing", usage_dropped),
        _m("finish-dropped", "finish-reason-missing", finish_dropped, {"n": 1}),
        _m("response-id-changed", "response-id-changed", id_changed, TWO),
        _m("not-json", "chunk-not-json", not_json),
        _m("function-call-unnamed", "function-call-incomplete", call_unnamed, TOOLS),
        _m("total-wrong", "usage-arithmetic", total_wrong),
        _m("chunk-shapeless", "chunk-shape", shapeless),
        _m("chunk-after-error", "event-after-error", after_error),
        _m("chunk-after-finish", "finish-reason-not-last", after_finish),
        _m("final-usage-smaller", "usage-final-not-largest", final_smaller),
        Mutation("array-not-closed", "array-not-closed", _unclosed, array),
        Mutation("array-punctuation", "array-punctuation", _punctuation, array),
    )


def _unclosed(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
    """The closing ']' cut off (the stream ends after an element, or after blank space)."""
    assert frames[-1].strip() == b"]", frames[-1]
    return [*frames[:-1], rng.choice([b"", b"\n", b"\n\r\n"])]


def _punctuation(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
    """A ',' missing between two elements, or one too many after the last."""
    out = list(frames)
    if len(out) > 2 and rng.random() < 0.5:
        at = rng.randrange(1, len(out) - 1)
        out[at] = out[at].replace(b",", b"", 1)
    else:
        out[-1] = b"\n," + out[-1]
    return out


KNOBS = Knobs(
    gemini_request,
    tools=True,
    choices=True,
    thinking="text",
    mutations=gemini_mutations(),
    variants=(SSE, ARRAY),
)
