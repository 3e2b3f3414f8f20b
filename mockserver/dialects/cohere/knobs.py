"""Cohere v2 chat knobs for the hypothesis strategies: the stream request, legal variations
(keep-alive comments), and one mutation per rule of ``check``.

A mutation sees the stream as the event JSON objects (Cohere's ``event:`` name equals the
data's ``type``, so ``_kit.mutate.named_events`` reads them) and raw frames for anything
else: ``data: [DONE]`` and comments stay bytes.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from mockserver.dialects._kit.knobs import (
    PROMPT,
    Knobs,
    Mutation,
    Options,
    dumps,
    keep_alive_comments,
    post,
)
from mockserver.dialects._kit.mutate import NamedItem as Item
from mockserver.dialects._kit.mutate import as_dict as _d
from mockserver.dialects._kit.mutate import at as _at
from mockserver.dialects._kit.mutate import event_mutation as _m
from mockserver.model import Request, Script

DONE = b"data: [DONE]\n\n"
TEXT = {"tools": False}
TOOLS = {"tools": True}
PLANNED = {"tools": True, "text": True}


def cohere_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"model": "command-a-03-2025", "messages": PROMPT}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        body["tools"] = [
            {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
            for n in names
        ]
    return post("/v2/chat", {**body, "stream": True})


def _done(v: list[Item]) -> int:
    return v.index(DONE)


def _end(v: list[Item]) -> dict[str, Any]:
    return _d(v[_at(v, "message-end")[0]])


def _events(v: list[Item], *kinds: str) -> list[int]:
    return sorted(i for kind in kinds for i in _at(v, kind))


def _text_mutations() -> tuple[Mutation, ...]:
    """Mutations of the text content block (streams without tool calls)."""

    def text_not_string(v: list[Item], rng: random.Random) -> list[Item]:
        delta = _d(v[rng.choice(_at(v, "content-delta"))])
        delta["delta"]["message"]["content"]["text"] = 5
        return v

    def index_shifted(v: list[Item], rng: random.Random) -> list[Item]:
        for i in _events(v, "content-start", "content-delta", "content-end"):
            _d(v[i])["index"] += 1
        return v

    def delta_after_end(v: list[Item], rng: random.Random) -> list[Item]:
        late = copy.deepcopy(v[rng.choice(_at(v, "content-delta"))])
        v.insert(_at(v, "content-end")[0] + 1, late)
        return v

    def end_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_at(v, "content-end")[0]]
        return v

    def thinking_in_text(v: list[Item], rng: random.Random) -> list[Item]:
        content = _d(v[rng.choice(_at(v, "content-delta"))])["delta"]["message"]["content"]
        content["thinking"] = content.pop("text")
        return v

    def tool_call_claimed(v: list[Item], rng: random.Random) -> list[Item]:
        _end(v)["delta"]["finish_reason"] = "TOOL_CALL"
        return v

    return (
        _m("content-text-not-string", "event-shape", text_not_string, TEXT),
        _m("content-index-shifted", "content-index-not-contiguous", index_shifted, TEXT),
        _m("content-delta-after-end", "content-not-open", delta_after_end, TEXT),
        _m("content-end-dropped", "content-not-ended", end_dropped, TEXT),
        _m("thinking-in-text-block", "delta-type-mismatch", thinking_in_text, TEXT),
        _m("tool-call-finish-without-calls", "finish-reason-mismatch", tool_call_claimed, TEXT),
    )


def _tool_mutations() -> tuple[Mutation, ...]:
    """Mutations of the tool plan and the tool calls."""

    def index_shifted(v: list[Item], rng: random.Random) -> list[Item]:
        for i in _events(v, "tool-call-start", "tool-call-delta", "tool-call-end"):
            _d(v[i])["index"] += 1
        return v

    def delta_after_end(v: list[Item], rng: random.Random) -> list[Item]:
        late = copy.deepcopy(v[rng.choice(_at(v, "tool-call-delta"))])
        v.insert(_at(v, "tool-call-end", index=_d(late)["index"])[0] + 1, late)
        return v

    def end_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[rng.choice(_at(v, "tool-call-end"))]
        return v

    def id_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        start = _d(v[rng.choice(_at(v, "tool-call-start"))])
        del start["delta"]["message"]["tool_calls"]["id"]
        return v

    def arguments_cut(v: list[Item], rng: random.Random) -> list[Item]:
        index = rng.choice([_d(v[i])["index"] for i in _at(v, "tool-call-start")])
        last = _d(v[_at(v, "tool-call-delta", index=index)[-1]])
        function = last["delta"]["message"]["tool_calls"]["function"]
        function["arguments"] = function["arguments"][:-1]
        return v

    def plan_late(v: list[Item], rng: random.Random) -> list[Item]:
        plan = v.pop(_at(v, "tool-plan-delta")[0])
        v.insert(_at(v, "message-end")[0], plan)
        return v

    return (
        _m("tool-call-index-shifted", "tool-call-index-not-contiguous", index_shifted, TOOLS),
        _m("tool-call-delta-after-end", "tool-call-not-open", delta_after_end, TOOLS),
        _m("tool-call-end-dropped", "tool-call-not-ended", end_dropped, TOOLS),
        _m("tool-call-id-dropped", "tool-call-incomplete", id_dropped, TOOLS),
        _m("tool-arguments-cut", "tool-arguments-invalid", arguments_cut, TOOLS),
        _m("tool-plan-after-calls", "tool-plan-late", plan_late, PLANNED),
    )


def _stream_mutations() -> tuple[Mutation, ...]:
    """Mutations of the frame, the message and the end of the stream (any stream)."""

    def name_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice([i for i, x in enumerate(v) if isinstance(x, dict)])
        v[at] = b"data: " + dumps(v[at]) + b"\n\n"
        return v

    def name_mismatch(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice([i for i, x in enumerate(v) if isinstance(x, dict)])
        name = b"message-start" if _d(v[at])["type"] == "message-end" else b"message-end"
        v[at] = b"event: " + name + b"\ndata: " + dumps(v[at]) + b"\n\n"
        return v

    def not_json(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, _done(v)), b'event: content-delta\ndata: {"type":"content-\n\n')
        return v

    def start_twice(v: list[Item], rng: random.Random) -> list[Item]:
        at = _at(v, "message-start")[0]
        v.insert(at + 1, copy.deepcopy(v[at]))
        return v

    def citation_unended(v: list[Item], rng: random.Random) -> list[Item]:
        cited = {"start": 0, "end": 4, "text": "This", "sources": [], "type": "TEXT_CONTENT"}
        citation = {
            "type": "citation-start",
            "index": 0,
            "delta": {"message": {"citations": cited}},
        }
        v.insert(_at(v, "message-end")[0], citation)
        return v

    def reason_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _end(v)["delta"]["finish_reason"]
        return v

    def reason_openai(v: list[Item], rng: random.Random) -> list[Item]:
        _end(v)["delta"]["finish_reason"] = "stop"
        return v

    def usage_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _end(v)["delta"]["usage"]
        return v

    def end_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_at(v, "message-end")[0]]
        return v

    def end_twice(v: list[Item], rng: random.Random) -> list[Item]:
        at = _at(v, "message-end")[0]
        v.insert(at + 1, copy.deepcopy(v[at]))
        return v

    def done_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_done(v)]
        return v

    def done_twice(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(_done(v) + 1, DONE)
        return v

    return (
        _m("event-name-dropped", "event-name-missing", name_dropped),
        _m("event-name-mismatch", "event-name-mismatch", name_mismatch),
        _m("data-not-json", "data-not-json", not_json),
        _m("message-start-twice", "message-start-not-first", start_twice),
        _m("citation-not-ended", "citation-not-paired", citation_unended),
        _m("finish-reason-dropped", "finish-reason-missing", reason_dropped),
        _m("finish-reason-openai", "finish-reason-unknown", reason_openai),
        _m("usage-dropped", "usage-missing", usage_dropped),
        _m("message-end-dropped", "message-end-missing", end_dropped),
        _m("message-end-twice", "event-after-message-end", end_twice),
        _m("done-dropped", "done-missing", done_dropped),
        _m("done-twice", "event-after-done", done_twice),
    )


KNOBS = Knobs(
    cohere_request,
    tools=True,
    vary=keep_alive_comments,
    mutations=(*_stream_mutations(), *_text_mutations(), *_tool_mutations()),
)
