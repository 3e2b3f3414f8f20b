"""OpenAI Responses knobs for the hypothesis strategies: the stream request, keep-alive
comments as the legal variation, and at least one mutation per rule of
``responses_rules.RULES``, each breaking its rule and only it on every stream it applies to
(``needs`` pins a text answer or tool calls where the rule needs one).
"""

from __future__ import annotations

import copy
import random
from typing import Any

from mockserver.dialects._kit.knobs import (
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


def responses_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"model": "gpt-4.1-mini", "input": "Tell me something."}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        body["tools"] = [{"type": "function", "name": n, "parameters": {}} for n in names]
    return post("/v1/responses", {**body, "stream": True})


def _renumber(values: list[Item]) -> list[Item]:
    """sequence_number 0, 1, 2... again, after a mutation moved or dropped events."""
    numbered = [v for v in values if isinstance(v, dict) and "sequence_number" in v]
    for number, value in enumerate(numbered):
        value["sequence_number"] = number
    return values


DONE = b"data: [DONE]\n\n"
TEXT_DONE = {
    "response.output_text.done": "text",
    "response.reasoning_summary_text.done": "text",
    "response.function_call_arguments.done": "arguments",
}
"""The .done events that repeat a text whole, and the field holding it."""


def _end(values: list[Item]) -> int:
    return _at(values, "response.completed")[0]


def _response(values: list[Item]) -> dict[str, Any]:
    response: dict[str, Any] = _d(values[_end(values)])["response"]
    return response


def _numbered(values: list[Item]) -> list[dict[str, Any]]:
    return [v for v in values if isinstance(v, dict) and "sequence_number" in v]


def lifecycle_mutations() -> tuple[Mutation, ...]:
    """Defects of the response's lifecycle: numbering, order, the terminal event, usage."""

    def number_skipped(v: list[Item], rng: random.Random) -> list[Item]:
        numbered = _numbered(v)
        for value in numbered[rng.randint(1, len(numbered) - 1) :]:
            value["sequence_number"] += 1
        return v

    def number_repeated(v: list[Item], rng: random.Random) -> list[Item]:
        numbered = _numbered(v)
        k = rng.randint(1, len(numbered) - 1)
        numbered[k]["sequence_number"] = numbered[k - 1]["sequence_number"]
        return v

    def number_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        numbered = _numbered(v)
        del numbered[rng.randint(1, len(numbered) - 1)]["sequence_number"]
        return v

    def created_late(v: list[Item], rng: random.Random) -> list[Item]:
        created, progress = _at(v, "response.created")[0], _at(v, "response.in_progress")[0]
        v[created], v[progress] = v[progress], v[created]
        return _renumber(v)

    def in_progress_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_at(v, "response.in_progress")[0]]
        return _renumber(v)

    def terminal_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_end(v)]
        return v

    def status_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _response(v)["status"] = "in_progress"
        return v

    def after_end(v: list[Item], rng: random.Random) -> list[Item]:
        v.append(copy.deepcopy(v[_at(v, "response.in_progress")[0]]))
        return _renumber(v)

    def done_twice(v: list[Item], rng: random.Random) -> list[Item]:
        # OpenRouter's trailing [DONE] is legal; anything after it is not.
        return [*v, DONE, DONE]

    def usage_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        _response(v)["usage"] = None
        return v

    def usage_total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _response(v)["usage"]["total_tokens"] += 1
        return v

    def id_changed(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_at(v, "response.in_progress")[0]])["response"]["id"] += "x"
        return v

    def output_short(v: list[Item], rng: random.Random) -> list[Item]:
        _response(v)["output"].pop()
        return v

    return (
        _m("sequence-number-skipped", "sequence-number-order", number_skipped),
        _m("sequence-number-repeated", "sequence-number-order", number_repeated),
        _m("sequence-number-dropped", "sequence-number-missing", number_dropped),
        _m("created-after-in-progress", "created-not-first", created_late),
        _m("in-progress-dropped", "in-progress-missing", in_progress_dropped),
        _m("terminal-dropped", "terminal-missing", terminal_dropped),
        _m("terminal-status-wrong", "terminal-status", status_wrong),
        _m("event-after-completed", "event-after-end", after_end),
        _m("done-twice", "data-after-done", done_twice),
        _m("usage-dropped", "usage-missing", usage_dropped),
        _m("usage-total-wrong", "usage-arithmetic", usage_total_wrong),
        _m("response-id-changed", "response-id-changed", id_changed),
        _m("final-output-short", "final-output-mismatch", output_short),
    )


def frame_mutations() -> tuple[Mutation, ...]:
    """Defects of the frames themselves: what a parser meets before any state machine."""

    def not_json(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, _end(v)), b'data: {"type": "response.output_text.delta",\n\n')
        return v

    def event_only(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, len(v)), b"event: response.output_text.delta\n\n")
        return v

    def untyped(v: list[Item], rng: random.Random) -> list[Item]:
        event = copy.deepcopy(_d(v[_at(v, "response.in_progress")[0]]))
        del event["type"]
        v.insert(rng.randint(0, _end(v)), b"data: " + dumps(event) + b"\n\n")
        return v

    def name_mismatch(v: list[Item], rng: random.Random) -> list[Item]:
        at = _at(v, "response.in_progress")[0]
        v[at] = b"event: response.created\ndata: " + dumps(v[at]) + b"\n\n"
        return v

    return (
        _m("not-json", "data-not-json", not_json),
        _m("event-only-block", "event-without-data", event_only),
        _m("event-without-type", "event-shape", untyped),
        _m("event-name-mismatch", "event-name-mismatch", name_mismatch),
    )


def item_mutations() -> tuple[Mutation, ...]:
    """Defects of output items and their parts: indexes, open and done, ids, texts."""

    def indexes_from_one(v: list[Item], rng: random.Random) -> list[Item]:
        for value in v:
            if isinstance(value, dict) and "output_index" in value:
                value["output_index"] += 1
        return v

    def item_done_twice(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_at(v, "response.output_item.done"))
        v.insert(at + 1, copy.deepcopy(v[at]))
        return _renumber(v)

    def part_done_twice(v: list[Item], rng: random.Random) -> list[Item]:
        parts = _at(v, "response.content_part.done") + _at(
            v, "response.reasoning_summary_part.done"
        )
        at = rng.choice(parts)
        v.insert(at + 1, copy.deepcopy(v[at]))
        return _renumber(v)

    def item_done_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[rng.choice(_at(v, "response.output_item.done"))]
        return _renumber(v)

    def item_renamed(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[rng.choice(_at(v, "response.output_item.done"))])["item"]["id"] += "x"
        return v

    def wrong_item_type(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_at(v, "response.output_item.added"))
        added = _d(v[at])
        if added["item"]["type"] == "message":
            event: dict[str, Any] = {"type": "response.function_call_arguments.delta"}
        else:
            event = {"type": "response.output_text.delta", "content_index": 0}
        event.update(delta="x", item_id=added["item"]["id"], output_index=added["output_index"])
        v.insert(at + 1, {**event, "sequence_number": 0})
        return _renumber(v)

    def done_text_changed(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice([i for kind in TEXT_DONE for i in _at(v, kind)])
        _d(v[at])[TEXT_DONE[_d(v[at])["type"]]] += "!"
        return v

    def arguments_cut(v: list[Item], rng: random.Random) -> list[Item]:
        # The call's last character (its closing brace) gone everywhere it is said, so
        # that deltas, .done, the item and the final output still agree with each other.
        added = [_d(v[i])["item"] for i in _at(v, "response.output_item.added")]
        call = rng.choice([item["id"] for item in added if item["type"] == "function_call"])
        last = _d(v[_at(v, "response.function_call_arguments.delta", item_id=call)[-1]])
        last["delta"] = last["delta"][:-1]
        done = _d(v[_at(v, "response.function_call_arguments.done", item_id=call)[0]])
        done["arguments"] = done["arguments"][:-1]
        finished = [_d(v[i])["item"] for i in _at(v, "response.output_item.done")]
        for item in [*finished, *_response(v)["output"]]:
            if item["id"] == call:
                item["arguments"] = item["arguments"][:-1]
        return v

    return (
        _m("output-index-from-one", "index-order", indexes_from_one),
        _m("item-done-twice", "item-not-open", item_done_twice),
        _m("part-done-twice", "part-not-open", part_done_twice, {"text": True}),
        _m("item-done-dropped", "left-open", item_done_dropped),
        _m("item-renamed-at-done", "item-identity-changed", item_renamed),
        _m("event-on-wrong-item", "event-wrong-item-type", wrong_item_type),
        _m("done-text-changed", "done-text-mismatch", done_text_changed),
        _m("tool-arguments-cut", "tool-arguments-invalid", arguments_cut, {"tools": True}),
    )


KNOBS = Knobs(
    responses_request,
    tools=True,
    thinking="text",
    vary=keep_alive_comments,
    mutations=lifecycle_mutations() + frame_mutations() + item_mutations(),
)
