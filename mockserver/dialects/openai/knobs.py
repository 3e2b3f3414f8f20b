"""Knobs of the OpenAI chunk streams (Chat Completions, legacy Completions): the stream
request, the legal variations, and at least one mutation per rule of each dialect's table
(``stream_check.STREAM_RULES`` plus the chat or the text-choice rules).

Every mutation is built to break its rule and nothing else: a chunk it adds carries an
empty value and ``usage: null`` when the stream has include_usage, so that only the
targeted rule fires (the tests hold each one to exactly that).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

from mockserver.dialects._kit.knobs import (
    PROMPT,
    Item,
    Knobs,
    Mutation,
    Options,
    chain,
    items,
    keep_alive_comments,
    on_items,
    post,
    unitems,
)
from mockserver.model import Request, Script

DONE = b"data: [DONE]\n\n"
USAGE = {"include_usage": True}
NO_USAGE = {"include_usage": False}
TOOLS = {"tools": True}

Change = Callable[[list[Item], random.Random], list[Item]]


def _body(script: Script, options: Options, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", **fields, "stream": True}
    if script.n is not None and script.n > 1:
        body["n"] = script.n
    if options.include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def chat_request(script: Script, options: Options) -> Request:
    body = _body(script, options, messages=PROMPT)
    if script.tool_calls:
        names = sorted({call.name for call in script.tool_calls})
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in names
        ]
    return post("/v1/chat/completions", body)


COMPLETIONS_VARIANTS = ("plain", "logprobs")
"""Legacy Completions streams without and with ``logprobs`` (per-token lists on each choice)."""


def completions_request(script: Script, options: Options) -> Request:
    body = _body(script, options, prompt="Tell me something.")
    if options.variant == "logprobs":
        body["logprobs"] = 1
    return post("/v1/completions", body)


# --- helpers over JSON items -------------------------------------------------------------


def _chunks(values: list[Item]) -> list[int]:
    """Positions of chunks with choices."""
    return [
        i
        for i, v in enumerate(values)
        if isinstance(v, dict) and isinstance(v.get("choices"), list) and v["choices"]
    ]


def _usage_at(values: list[Item]) -> int:
    return next(
        i
        for i, v in enumerate(values)
        if isinstance(v, dict) and v.get("choices") == [] and v.get("usage") is not None
    )


def _finishes(values: list[Item]) -> list[int]:
    return [i for i in _chunks(values) if _choice(values[i]).get("finish_reason") is not None]


def _d(value: Item) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def _choice(value: Item) -> dict[str, Any]:
    assert isinstance(value, dict)
    choice: dict[str, Any] = value["choices"][0]
    return choice


def _done(values: list[Item]) -> int:
    return values.index(DONE)


def _like(value: Item, choice: dict[str, Any]) -> dict[str, Any]:
    """A chunk with the head (and usage: null, when present) of ``value`` and one choice."""
    assert isinstance(value, dict)
    return {**copy.deepcopy(value), "choices": [choice]}


# --- variations ---------------------------------------------------------------------------


def _empty_values(blank: Callable[[int], dict[str, Any]]) -> Callable[..., list[bytes]]:
    """Empty deltas (or texts) inserted before a choice's finish: legal, and a classic trap
    for clients that index ``delta.content`` or treat "" as the end."""

    def vary(rng: random.Random, frames: list[bytes], request: Request) -> list[bytes]:
        values = items(frames)
        for _ in range(rng.randint(0, 2)):
            open_chunks = [i for i in _chunks(values) if i not in _finishes(values)]
            if not open_chunks:
                break
            at = rng.choice(open_chunks)
            values.insert(at + 1, _like(values[at], blank(_choice(values[at])["index"])))
        return unitems(values)

    return vary


def _repeated_roles(rng: random.Random, frames: list[bytes], request: Request) -> list[bytes]:
    """The first delta's role repeated on later deltas of its choice, as OpenRouter,
    Snowflake Cortex and Z.ai send it: legal, the openai SDK reads it."""
    if rng.random() < 0.5:
        return frames
    values = items(frames)
    seen: set[int] = set()
    for at in _chunks(values):
        choice = _choice(values[at])
        if choice["index"] in seen and isinstance(choice.get("delta"), dict):
            choice["delta"]["role"] = "assistant"
        seen.add(choice["index"])
    return unitems(values)


def chat_blank(n: int) -> dict[str, Any]:
    return {"index": n, "delta": {}, "logprobs": None, "finish_reason": None}


def text_blank(n: int) -> dict[str, Any]:
    return {"text": "", "index": n, "logprobs": None, "finish_reason": None}


# --- mutations ----------------------------------------------------------------------------


def _m(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    return Mutation(name, rule, on_items(change), dict(needs or {}))


def common_mutations(blank: Callable[[int], dict[str, Any]], obj: str) -> tuple[Mutation, ...]:
    """One mutation per rule of the shared chunk-stream state machine."""

    def drop_done(v: list[Item], rng: random.Random) -> list[Item]:
        return [x for x in v if x != DONE]

    def repeat_done(v: list[Item], rng: random.Random) -> list[Item]:
        return [*v[: _done(v) + 1], DONE, *v[_done(v) + 1 :]]

    def usage_early(v: list[Item], rng: random.Random) -> list[Item]:
        usage = v.pop(_usage_at(v))
        v.insert(_chunks(v)[-1], usage)
        return v

    def usage_twice(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(_usage_at(v), copy.deepcopy(v[_usage_at(v)]))
        return v

    def usage_with_choices(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_usage_at(v)])["choices"] = [blank(0)]
        return v

    def usage_null_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del _d(v[rng.choice(_chunks(v))])["usage"]
        return v

    def usage_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_usage_at(v)]
        return v

    def usage_unrequested(v: list[Item], rng: random.Random) -> list[Item]:
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        v.insert(_done(v), {**_like(v[_chunks(v)[0]], blank(0)), "choices": [], "usage": usage})
        return v

    def usage_on_open_choice(v: list[Item], rng: random.Random) -> list[Item]:
        # A chunk before a finish, not the finish itself: unasked usage there is no
        # server's habit (on the finish chunk it is Mistral's, and legal).
        at = rng.choice(_finishes(v))
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        v.insert(at, {**_like(v[at], blank(_choice(v[at])["index"])), "usage": usage})
        return v

    def usage_total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_usage_at(v)])["usage"]["total_tokens"] += rng.randint(1, 5)
        return v

    def finish_twice(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_finishes(v))
        again = blank(_choice(v[at])["index"])
        v.insert(at + 1, _like(v[at], {**again, "finish_reason": _choice(v[at])["finish_reason"]}))
        return v

    def finish_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        _choice(v[rng.choice(_finishes(v))])["finish_reason"] = None
        return v

    def id_changed(v: list[Item], rng: random.Random) -> list[Item]:
        # An added empty chunk, so that a one-chunk stream has a second chunk to differ.
        at = _chunks(v)[0]
        other = _like(v[at], blank(_choice(v[at])["index"]))
        v.insert(at + 1, {**other, "id": str(other["id"]) + "-other"})
        return v

    def object_changed(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[rng.choice(_chunks(v))])["object"] = obj + ".other"
        return v

    def not_json(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, _done(v)), b'data: {"choices": [\n\n')
        return v

    def event_only(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, _done(v)), b"event: ping\n\n")
        return v

    def chunk_after_error(v: list[Item], rng: random.Random) -> list[Item]:
        error = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
        v.insert(_chunks(v)[-1], error)
        return v

    def choices_not_list(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_chunks(v))
        v.insert(at, {**_like(v[at], blank(0)), "choices": blank(0)})
        return v

    return (
        _m("drop-done", "done-missing", drop_done),
        _m("repeat-done", "data-after-done", repeat_done),
        _m("usage-before-finish", "usage-chunk-not-last", usage_early, USAGE),
        _m("usage-twice", "usage-chunk-duplicate", usage_twice, USAGE),
        _m("usage-with-choices", "usage-on-choices-chunk", usage_with_choices, USAGE),
        _m("usage-null-dropped", "usage-null-missing", usage_null_dropped, USAGE),
        _m("usage-dropped", "usage-chunk-missing", usage_dropped, USAGE),
        _m("usage-unrequested", "usage-unrequested", usage_unrequested, NO_USAGE),
        _m("usage-on-open-choice", "usage-unrequested", usage_on_open_choice, NO_USAGE),
        _m("usage-total-wrong", "usage-arithmetic", usage_total_wrong, USAGE),
        _m("finish-twice", "finish-reason-repeated", finish_twice),
        _m("finish-dropped", "finish-reason-missing", finish_dropped),
        _m("id-changed", "chunk-identity-changed", id_changed),
        _m("object-changed", "object-not-chunk", object_changed),
        _m("not-json", "data-not-json", not_json),
        _m("event-only-block", "event-without-data", event_only),
        _m("chunk-after-error", "event-after-error", chunk_after_error),
        _m("choices-not-list", "chunk-shape", choices_not_list),
    )


def _calls(v: list[Item]) -> list[tuple[int, dict[str, Any]]]:
    """(position, tool call delta) for every tool call delta in the stream."""
    return [
        (i, call)
        for i in _chunks(v)
        for call in _choice(v[i]).get("delta", {}).get("tool_calls") or []
    ]


def chat_mutations() -> tuple[Mutation, ...]:
    def role_changed(v: list[Item], rng: random.Random) -> list[Item]:
        # Another role than the first delta's: a repeat of the same one is legal.
        _choice(v[rng.choice(_finishes(v))])["delta"]["role"] = "user"
        return v

    def content_after_finish(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_finishes(v))
        late = {**chat_blank(_choice(v[at])["index"]), "delta": {"content": "late"}}
        v.insert(at + 1, _like(v[at], late))
        return v

    def header_without_id(v: list[Item], rng: random.Random) -> list[Item]:
        del rng.choice([call for _, call in _calls(v) if "id" in call])["id"]
        return v

    def header_repeated(v: list[Item], rng: random.Random) -> list[Item]:
        rng.choice([call for _, call in _calls(v) if "id" not in call])["id"] = "call_again"
        return v

    def arguments_cut(v: list[Item], rng: random.Random) -> list[Item]:
        # The last fragment of one call loses its last character: a JSON object's text
        # without its final brace never parses.
        fragments = [c for _, c in _calls(v) if "id" not in c and c["function"]["arguments"]]
        last = {c["index"]: c for c in fragments}  # per tool index, its last fragment
        function = rng.choice(sorted(last.items()))[1]["function"]
        function["arguments"] = function["arguments"][:-1]
        return v

    return (
        _m("role-changed", "role-not-first", role_changed),
        _m("content-after-finish", "content-after-finish", content_after_finish),
        _m("tool-header-without-id", "tool-call-start-incomplete", header_without_id, TOOLS),
        _m("tool-header-repeated", "tool-call-header-repeated", header_repeated, TOOLS),
        _m("tool-arguments-cut", "tool-arguments-invalid", arguments_cut, {**TOOLS, "n": 1}),
    )


def completions_mutations() -> tuple[Mutation, ...]:
    def text_after_finish(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_finishes(v))
        v.insert(at + 1, _like(v[at], {**text_blank(_choice(v[at])["index"]), "text": "late"}))
        return v

    def text_missing(v: list[Item], rng: random.Random) -> list[Item]:
        del _choice(v[rng.choice(_chunks(v))])["text"]
        return v

    def logprobs_misaligned(v: list[Item], rng: random.Random) -> list[Item]:
        # One list a token short: a client zipping tokens with offsets loses one.
        scored = [i for i in _chunks(v) if isinstance(_choice(v[i]).get("logprobs"), dict)]
        logprobs = _choice(v[rng.choice(scored)])["logprobs"]
        logprobs[rng.choice(["tokens", "token_logprobs", "text_offset"])].pop()
        return v

    return (
        _m("text-after-finish", "text-after-finish", text_after_finish),
        _m("text-missing", "choice-text-missing", text_missing),
        _m("logprobs-misaligned", "logprobs-shape", logprobs_misaligned, {"variant": "logprobs"}),
    )


OPENAI_CHAT = Knobs(
    chat_request,
    tools=True,
    choices=True,
    usage_option=True,
    vary=chain(keep_alive_comments, _empty_values(chat_blank), _repeated_roles),
    mutations=common_mutations(chat_blank, "chat.completion.chunk") + chat_mutations(),
)

OPENAI_COMPLETIONS = Knobs(
    completions_request,
    choices=True,
    usage_option=True,
    vary=chain(keep_alive_comments, _empty_values(text_blank)),
    mutations=common_mutations(text_blank, "text_completion") + completions_mutations(),
    variants=COMPLETIONS_VARIANTS,
)
