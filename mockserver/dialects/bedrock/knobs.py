"""Bedrock knobs for the hypothesis strategies: the stream request of either shape
(ConverseStream, or InvokeModelWithResponseStream of an Anthropic model), and a mutation
for every rule of ``check``, over the binary AWS event-stream frames.

Frame rules break on either shape (``knobs_frames.py``); the block and metadata rules are
ConverseStream's, the chunk rules InvokeModelWithResponseStream's: each such mutation pins
its ``variant``.
A mutation that adds a defect inserts an event rather than changing one where changing
would also lose what the event carried (a block's stop, a tool's input, the metrics),
which other rules would then report.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from mockserver.dialects._kit.knobs import Knobs, Mutation, Options, dumps, post
from mockserver.dialects._kit.mutate import Change
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.dialects._kit.mutate import obj as _o
from mockserver.dialects._kit.mutate import objects as _objects
from mockserver.dialects.bedrock.knobs_frames import frame_mutations, mutation
from mockserver.model import Request, Script

CONVERSE = "converse-stream"
INVOKE = "invoke-with-response-stream"
TOOLS = {"tools": True}
BLOCK_EVENTS = ("contentBlockStart", "contentBlockDelta", "contentBlockStop")


def bedrock_request(script: Script, options: Options) -> Request:
    names = sorted({c.name for c in script.tool_calls})
    if options.variant == INVOKE:
        body: dict[str, Any] = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        if names:
            body["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in names]
        return post(f"/model/anthropic.claude-sonnet-4-5/{INVOKE}", body)
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    if names:
        specs = [{"toolSpec": {"name": n, "inputSchema": {"json": {}}}} for n in names]
        body["toolConfig"] = {"tools": specs}
    return post(f"/model/anthropic.claude-sonnet-4-5/{CONVERSE}", body)


def _converse(
    name: str, rule: str, change: Change, needs: dict[str, Any] | None = None
) -> Mutation:
    """A mutation of ConverseStream streams only."""
    return mutation(name, rule, change, {"variant": CONVERSE, **(needs or {})})


def _invoke(name: str, rule: str, change: Change) -> Mutation:
    """A mutation of InvokeModelWithResponseStream streams only."""
    return mutation(name, rule, change, {"variant": INVOKE})


# --- ConverseStream -----------------------------------------------------------------------


def _at(v: list[Item], *names: str) -> list[int]:
    """Positions of the events of these names."""
    return [i for name in names for i in _objects(v, name)]


def _open(v: list[Item]) -> list[int]:
    """Positions right after a block's start or delta, where the block is still open."""
    return sorted(i + 1 for i in _at(v, "contentBlockStart", "contentBlockDelta"))


def _stop(v: list[Item]) -> int:
    (at,) = _objects(v, "messageStop")
    return at


def _index(item: Item) -> int:
    n: int = _o(item)["contentBlockIndex"]
    return n


def _delta(n: Any, delta: Any) -> Item:
    return ["contentBlockDelta", {"contentBlockIndex": n, "delta": delta}]


def _kind(v: list[Item], n: int) -> str:
    """The member block ``n``'s deltas carry (toolUse for a block a toolUse start opened)."""
    for i in sorted(_at(v, "contentBlockStart", "contentBlockDelta")):
        if _index(v[i]) == n:
            event = _o(v[i])
            return str(next(iter(event["start"] if "start" in event else event["delta"])))
    raise ValueError(f"no block {n}")


def _copy(item: Item) -> Item:
    assert isinstance(item, list)
    return [item[0], json.loads(json.dumps(item[1]))]


def converse_mutations() -> tuple[Mutation, ...]:
    def metadata_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        return [x for x in v if not (isinstance(x, list) and x[0] == "metadata")]

    def block_stop_dropped(v: list[Item], rng: random.Random) -> list[Item]:
        del v[rng.choice(_objects(v, "contentBlockStop"))]
        return v

    def total_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[_objects(v, "metadata")[0]])["usage"]["totalTokens"] += 1
        return v

    def message_start_misplaced(v: list[Item], rng: random.Random) -> list[Item]:
        if rng.random() < 0.5:
            _o(v[0])["role"] = rng.choice(["user", None, "Assistant"])
        else:  # a second one, anywhere before metadata (after it, metadata-last fires)
            v.insert(rng.randint(1, _objects(v, "metadata")[0]), _copy(v[0]))
        return v

    def block_index_invalid(v: list[Item], rng: random.Random) -> list[Item]:
        n = rng.choice([-1, "0", None, 1.5, True])
        v.insert(rng.randint(1, _stop(v)), _delta(n, {"text": "x"}))
        return v

    def block_out_of_order(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.randint(1, _stop(v))
        stopped = [_index(v[i]) for i in _objects(v, "contentBlockStop") if i < at]
        later = len(_objects(v, "contentBlockStop")) + 1  # skips a block
        v.insert(at, _delta(rng.choice([*stopped, later]), {"text": "x"}))
        return v

    def block_started_late(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice([i + 1 for i in _objects(v, "contentBlockDelta")])
        n = _index(v[at - 1])
        start = {"toolUse": {"name": "f", "toolUseId": "tooluse_x"}}
        v.insert(at, ["contentBlockStart", {"contentBlockIndex": n, "start": start}])
        return v

    def delta_invalid(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_open(v))
        bad = [{}, {"text": 5}, {"text": "a", "toolUse": {"input": ""}}, {"toolUse": "x"}]
        bad += [{"toolUse": {"input": {}}}, {"reasoningContent": "x"}, "text"]
        v.insert(at, _delta(_index(v[at - 1]), rng.choice(bad)))
        return v

    def delta_of_another_kind(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.choice(_open(v))
        n = _index(v[at - 1])
        others = {
            "text": {"text": "x"},
            "toolUse": {"toolUse": {"input": "{}"}},
            "reasoningContent": {"reasoningContent": {"text": "x"}},
        }
        del others[_kind(v, n)]
        v.insert(at, _delta(n, rng.choice(list(others.values()))))
        return v

    def tool_input_broken(v: list[Item], rng: random.Random) -> list[Item]:
        stops = _objects(v, "contentBlockStop")
        at = rng.choice([i for i in stops if _kind(v, _index(v[i])) == "toolUse"])
        tail = {"toolUse": {"input": rng.choice(["x", "}", ",", "{"])}}
        v.insert(at, _delta(_index(v[at]), tail))  # the tool's input, then more
        return v

    def message_stop_again(v: list[Item], rng: random.Random) -> list[Item]:
        at = _stop(v)
        again = rng.choice([at, *_at(v, *BLOCK_EVENTS)])
        v.insert(at + 1, _copy(v[again]))  # another messageStop, or a block event after it
        return v

    def stop_reason_invalid(v: list[Item], rng: random.Random) -> list[Item]:
        _o(v[_stop(v)])["stopReason"] = rng.choice(["stop", "end-turn", "", None, "tool_calls"])
        return v

    def metadata_invalid(v: list[Item], rng: random.Random) -> list[Item]:
        metadata = _o(v[_objects(v, "metadata")[0]])
        change = rng.randrange(5)
        if change == 0:
            del metadata["usage"]["outputTokens"]
        elif change == 1:
            metadata["usage"]["inputTokens"] = str(metadata["usage"]["inputTokens"])
        elif change == 2:
            del metadata["metrics"]
        elif change == 3:
            metadata["metrics"]["latencyMs"] = 1.5
        else:
            metadata["usage"] = None
        return v

    return (
        _converse("metadata-dropped", "metadata-last", metadata_dropped),
        _converse("block-stop-dropped", "block-not-stopped", block_stop_dropped),
        _converse("total-wrong", "usage-arithmetic", total_wrong),
        _converse("message-start-misplaced", "message-start-first", message_start_misplaced),
        _converse("block-index-invalid", "block-index-invalid", block_index_invalid),
        _converse("block-out-of-order", "block-order", block_out_of_order),
        _converse("block-started-late", "block-start-invalid", block_started_late),
        _converse("delta-invalid", "delta-invalid", delta_invalid),
        _converse("delta-of-another-kind", "delta-kind-mismatch", delta_of_another_kind),
        _converse("tool-input-broken", "tool-input-invalid", tool_input_broken, TOOLS),
        _converse("message-stop-again", "message-stop-once", message_stop_again),
        _converse("stop-reason-invalid", "stop-reason-invalid", stop_reason_invalid),
        _converse("metadata-invalid", "metadata-invalid", metadata_invalid),
    )


# --- InvokeModelWithResponseStream ---------------------------------------------------------


def _inner(item: Item) -> dict[str, Any]:
    """The model's own event a chunk carries."""
    found: dict[str, Any] = json.loads(base64.b64decode(_o(item)["bytes"]))
    return found


def _chunk(event: dict[str, Any]) -> Item:
    return ["chunk", {"bytes": base64.b64encode(dumps(event)).decode()}]


def invoke_mutations() -> tuple[Mutation, ...]:
    def chunk_invalid(v: list[Item], rng: random.Random) -> list[Item]:
        bad = [{}, {"bytes": 5}, {"bytes": "not base64!"}, {"bytes": ""}]
        bad += [{"bytes": base64.b64encode(raw).decode()} for raw in (b"[1]", b"\xff\xfe", b"{")]
        v.insert(rng.randint(0, len(v)), ["chunk", rng.choice(bad)])  # added: none is lost
        return v

    def anthropic_order(v: list[Item], rng: random.Random) -> list[Item]:
        # Another message_start or message_stop, before the last chunk (which keeps the
        # invocation metrics).
        again = _inner(v[rng.choice([0, -1])])
        again.pop("amazon-bedrock-invocationMetrics", None)
        v.insert(rng.randint(1, len(v) - 1), _chunk(again))
        return v

    def metrics_broken(v: list[Item], rng: random.Random) -> list[Item]:
        last = _inner(v[-1])
        metrics = last["amazon-bedrock-invocationMetrics"]
        if rng.random() < 0.5:
            del last["amazon-bedrock-invocationMetrics"]
        else:
            key = rng.choice(sorted(metrics))
            metrics[key] = rng.choice([-1, str(metrics[key]), None])
        v[-1] = _chunk(last)
        return v

    return (
        _invoke("chunk-invalid", "chunk-invalid", chunk_invalid),
        _invoke("anthropic-event-repeated", "anthropic-order", anthropic_order),
        _invoke("invocation-metrics-broken", "invocation-metrics-missing", metrics_broken),
    )


KNOBS = Knobs(
    bedrock_request,
    tools=True,
    thinking="text",
    mutations=frame_mutations() + converse_mutations() + invoke_mutations(),
    variants=(CONVERSE, INVOKE),
)
