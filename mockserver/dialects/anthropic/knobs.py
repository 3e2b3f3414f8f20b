"""Anthropic Messages knobs for the hypothesis strategies: the stream request, legal
variations (pings, keep-alive comments), and one mutation per rule of ``check``.

A mutation sees the stream as the event JSON objects (``event:`` equal to the data's
``type``) and raw frames for anything else (``_kit.mutate.named_events``).
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
from mockserver.dialects.anthropic.check import PAYLOADS
from mockserver.model import Request, Script

TOOLS = {"tools": True}
TWO_BLOCKS = {"tools": True, "text": True}


def anthropic_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": PROMPT}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        body["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in names]
    if options.thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return post("/v1/messages", {**body, "stream": True})


def _pings(rng: random.Random, frames: list[bytes], request: Request) -> list[bytes]:
    """Pings anywhere between message_start and message_stop (wire-formats.md §6)."""
    out = list(frames)
    for _ in range(rng.randint(0, 3)):
        out.insert(rng.randint(1, len(out) - 1), b'event: ping\ndata: {"type": "ping"}\n\n')
    return out


def _anthropic_vary(rng: random.Random, frames: list[bytes], request: Request) -> list[bytes]:
    return keep_alive_comments(rng, _pings(rng, frames, request), request)


MISFITS = {
    "text_delta": "thinking_delta",
    "thinking_delta": "text_delta",
    "input_json_delta": "text_delta",
}
"""A delta type -> one that never fits the blocks it fits."""


def _block(values: list[Item], index: int) -> tuple[int, int]:
    """The first and last position of a content block's events."""
    start = _at(values, "content_block_start", index=index)[0]
    return start, _at(values, "content_block_stop", index=index)[0]


def anthropic_mutations() -> tuple[Mutation, ...]:
    def blocks_swapped(v: list[Item], rng: random.Random) -> list[Item]:
        (a0, a1), (b0, b1) = _block(v, 0), _block(v, 1)
        return v[:a0] + v[b0 : b1 + 1] + v[a1 + 1 : b0] + v[a0 : a1 + 1] + v[b1 + 1 :]

    def stop_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        return [x for x in v if not (isinstance(x, dict) and x["type"] == "message_stop")]

    def stop_twice(v: list[Item], rng: random.Random) -> list[Item]:
        return [*v, {"type": "message_stop"}]

    def block_stop_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[rng.choice(_at(v, "content_block_stop"))]
        return v

    def delta_after_stop(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_at(v, "content_block_delta"))
        late = copy.deepcopy(v[at])
        v.insert(_at(v, "content_block_stop", index=_d(late)["index"])[0] + 1, late)
        return v

    def name_mismatch(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_at(v, "content_block_delta"))
        v[at] = b"event: content_block_stop\ndata: " + dumps(v[at]) + b"\n\n"
        return v

    def delta_twice(v: list[Item], rng: random.Random) -> list[Item]:
        at = _at(v, "message_delta")[0]
        v.insert(at + 1, copy.deepcopy(v[at]))
        return v

    def stop_reason_null(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_at(v, "message_delta")[0]])["delta"]["stop_reason"] = None
        return v

    def input_cut(v: list[Item], rng: random.Random) -> list[Item]:
        tools = [_d(v[i])["index"] for i in _at(v, "content_block_start")]
        tools = [t for t in tools if _d(v[_block(v, t)[0]])["content_block"]["type"] == "tool_use"]
        index = rng.choice(tools)
        fragments = [i for i in _at(v, "content_block_delta", index=index)]
        delta = _d(v[fragments[-1]])["delta"]
        delta["partial_json"] = delta["partial_json"][:-1]
        return v

    def thinking_unsigned(v: list[Item], rng: random.Random) -> list[Item]:
        return [
            x
            for x in v
            if not (isinstance(x, dict) and x.get("delta", {}).get("type") == "signature_delta")
        ]

    def block_after_delta(v: list[Item], rng: random.Random) -> list[Item]:
        delta = v.pop(_at(v, "message_delta")[0])
        v.insert(_at(v, "content_block_start")[-1], delta)
        return v

    def after_error(v: list[Item], rng: random.Random) -> list[Item]:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        v.insert(_at(v, "message_delta")[0], error)
        return v

    def name_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice([i for i, x in enumerate(v) if isinstance(x, dict)])
        v[at] = b"data: " + dumps(v[at]) + b"\n\n"
        return v

    def data_not_json(v: list[Item], rng: random.Random) -> list[Item]:
        # Skipped whole by the checker, so it may go anywhere, even before message_start.
        name = rng.choice([b"content_block_delta", b"message_delta", b"error"])
        data = rng.choice([b"{oops", b"[1, 2]", b'"text"', b'{"no": "type"}', b'{"type": 7}'])
        lone = rng.random() < 0.25 and name != b"error"  # error alone would end the stream
        frame = b"event: " + name + (b"\n\n" if lone else b"\ndata: " + data + b"\n\n")
        v.insert(rng.randint(0, len(v)), frame)
        return v

    def shapeless(v: list[Item], rng: random.Random) -> list[Item]:
        first, stop = _at(v, "message_start")[0], _at(v, "message_stop")[0]
        if rng.random() < 0.25:
            _d(v[first])["message"] = rng.choice(["msg_01", None, []])
            return v
        # Each is judged by its shape first, so the malformed event changes nothing else.
        odd: list[dict[str, Any]] = [
            {"type": "content_block_start", "index": 0, "content_block": "text"},
            {"type": "content_block_delta", "index": "0", "delta": {"type": "text_delta"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
            {"type": "content_block_delta", "index": 0, "delta": "text"},
            {"type": "content_block_stop"},
        ]
        v.insert(rng.randint(first + 1, stop), rng.choice(odd))
        return v

    def start_again(v: list[Item], rng: random.Random) -> list[Item]:
        first, stop = _at(v, "message_start")[0], _at(v, "message_stop")[0]
        v.insert(rng.randint(first + 1, stop), copy.deepcopy(v[first]))
        return v

    def ping_outside(v: list[Item], rng: random.Random) -> list[Item]:
        first, stop = _at(v, "message_start")[0], _at(v, "message_stop")[0]
        at = rng.choice([rng.randint(0, first), rng.randint(stop + 1, len(v))])
        v.insert(at, {"type": "ping"})
        return v

    def usage_broken(v: list[Item], rng: random.Random) -> list[Item]:
        start = _d(v[_at(v, "message_start")[0]])["message"]
        holder = rng.choice([start, _d(v[_at(v, "message_delta")[0]])])
        if rng.random() < 0.3:
            del holder["usage"]
        else:
            holder["usage"] = rng.choice(
                [None, "12", {"output_tokens": "12"}, {"output_tokens": -1}]
            )
        return v

    def output_decreased(v: list[Item], rng: random.Random) -> list[Item]:
        start = _d(v[_at(v, "message_start")[0]])["message"]["usage"]
        end = _d(v[_at(v, "message_delta")[0]])["usage"]
        if rng.random() < 0.5:
            start["output_tokens"] = end["output_tokens"] + rng.randint(1, 9)
        else:
            end["output_tokens"] = rng.randrange(start["output_tokens"])
        return v

    def delta_misfit(v: list[Item], rng: random.Random) -> list[Item]:
        # Not a fragment that carries JSON nor a signature: losing it would break more.
        fits = [
            i
            for i in _at(v, "content_block_delta")
            if _d(v[i])["delta"]["type"] in MISFITS
            and _d(v[i])["delta"].get("partial_json", "") == ""
        ]
        event = _d(v[rng.choice(fits)])
        kind = event["delta"]["type"]
        other = MISFITS[kind]
        event["delta"] = {"type": other, PAYLOADS[other][0]: event["delta"][PAYLOADS[kind][0]]}
        return v

    return (
        _m("blocks-swapped", "block-index-not-contiguous", blocks_swapped, TWO_BLOCKS),
        _m("message-stop-dropped", "message-stop-missing", stop_dropped),
        _m("message-stop-twice", "event-after-message-stop", stop_twice),
        _m("block-stop-dropped", "block-not-stopped", block_stop_dropped),
        _m("delta-after-block-stop", "block-not-open", delta_after_stop),
        _m("event-name-mismatch", "event-name-mismatch", name_mismatch),
        _m("message-delta-twice", "message-delta-repeated", delta_twice),
        _m("stop-reason-null", "stop-reason-missing", stop_reason_null),
        _m("tool-input-cut", "tool-input-invalid", input_cut, TOOLS),
        _m("thinking-unsigned", "signature-missing", thinking_unsigned, {"thinking": True}),
        _m("block-after-message-delta", "block-after-message-delta", block_after_delta),
        _m("event-after-error", "event-after-error", after_error),
        _m("event-name-dropped", "event-name-missing", name_dropped),
        _m("data-not-json", "data-not-json", data_not_json),
        _m("event-shapeless", "event-shape", shapeless),
        _m("message-start-again", "message-start-not-first", start_again),
        _m("ping-outside-message", "ping-outside-message", ping_outside),
        _m("usage-broken", "usage-missing", usage_broken),
        _m("output-tokens-decreased", "output-tokens-decreased", output_decreased),
        _m("delta-misfit", "delta-type-mismatch", delta_misfit),
    )


KNOBS = Knobs(
    anthropic_request,
    tools=True,
    thinking="request",
    vary=_anthropic_vary,
    mutations=anthropic_mutations(),
)
