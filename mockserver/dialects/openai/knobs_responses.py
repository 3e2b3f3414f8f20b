"""OpenAI Responses knobs for the hypothesis strategies: the stream request, keep-alive
comments as the legal variation, and one mutation per rule of ``responses_check``.
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


def responses_mutations() -> tuple[Mutation, ...]:
    def number_skipped(v: list[Item], rng: random.Random) -> list[Item]:
        numbered = [x for x in v if isinstance(x, dict) and "sequence_number" in x]
        for value in numbered[rng.randint(1, len(numbered) - 1) :]:
            value["sequence_number"] += 1
        return v

    def number_repeated(v: list[Item], rng: random.Random) -> list[Item]:
        numbered = [x for x in v if isinstance(x, dict) and "sequence_number" in x]
        k = rng.randint(1, len(numbered) - 1)
        numbered[k]["sequence_number"] = numbered[k - 1]["sequence_number"]
        return v

    def terminal_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[_at(v, "response.completed")[0]]
        return v

    def after_end(v: list[Item], rng: random.Random) -> list[Item]:
        v.append(copy.deepcopy(v[_at(v, "response.in_progress")[0]]))
        return _renumber(v)

    def usage_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_at(v, "response.completed")[0]])["response"]["usage"] = None
        return v

    def usage_total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _d(v[_at(v, "response.completed")[0]])["response"]["usage"]["total_tokens"] += 1
        return v

    def id_changed(v: list[Item], rng: random.Random) -> list[Item]:
        response = _d(v[_at(v, "response.in_progress")[0]])["response"]
        response["id"] += "x"
        return v

    def name_mismatch(v: list[Item], rng: random.Random) -> list[Item]:
        at = _at(v, "response.in_progress")[0]
        v[at] = b"event: response.created\ndata: " + dumps(v[at]) + b"\n\n"
        return v

    return (
        _m("sequence-number-skipped", "sequence-number-order", number_skipped),
        _m("sequence-number-repeated", "sequence-number-order", number_repeated),
        _m("terminal-dropped", "terminal-missing", terminal_dropped),
        _m("event-after-completed", "event-after-end", after_end),
        _m("usage-dropped", "usage-missing", usage_dropped),
        _m("usage-total-wrong", "usage-arithmetic", usage_total_wrong),
        _m("response-id-changed", "response-id-changed", id_changed),
        _m("event-name-mismatch", "event-name-mismatch", name_mismatch),
    )


KNOBS = Knobs(
    responses_request,
    tools=True,
    thinking="text",
    vary=keep_alive_comments,
    mutations=responses_mutations(),
)
