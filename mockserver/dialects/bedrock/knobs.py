"""Bedrock ConverseStream knobs for the hypothesis strategies: the stream request, and one
mutation per rule of ``check``, over the binary AWS event-stream frames.
"""

from __future__ import annotations

import random
from typing import Any

from mockserver.dialects._kit.knobs import Knobs, Mutation, Options, dumps, post
from mockserver.dialects._kit.mutate import Change, Codec, json_item, object_mutation
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.dialects._kit.mutate import obj as _o
from mockserver.dialects._kit.mutate import objects as _objects
from mockserver.framing import aws_eventstream
from mockserver.model import Request, Script

TOOLS = {"tools": True}
TWO = {"tools": True, "text": True}


def _read(frame: bytes) -> Item:
    event = aws_eventstream.parse(frame)
    name = aws_eventstream.headers(event).get(":event-type")
    text = event.data if name and aws_eventstream.problem(event) is None else None
    return json_item(name, text, frame)


def _write(item: Item) -> bytes:
    if isinstance(item, bytes):
        return item
    name, value = item
    fields = {":event-type": name, ":content-type": "application/json"}
    return aws_eventstream.encode([*fields.items(), (":message-type", "event")], dumps(value))


EVENTSTREAM = Codec(_read, _write)
"""Each frame as [its ``:event-type``, its JSON payload], or its bytes when it has none."""


def _m(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    return object_mutation(EVENTSTREAM, name, rule, change, needs)


def bedrock_request(script: Script, options: Options) -> Request:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    if script.tool_calls:
        names = sorted({c.name for c in script.tool_calls})
        specs = [{"toolSpec": {"name": n, "inputSchema": {"json": {}}}} for n in names]
        body["toolConfig"] = {"tools": specs}
    return post("/model/anthropic.claude-sonnet-4-5/converse-stream", body)


def bedrock_mutations() -> tuple[Mutation, ...]:
    def truncated(v: list[Item], rng: random.Random) -> list[Item]:
        write = EVENTSTREAM.write
        return [*v[:-1], write(v[-1])[:-3]]

    def crc_broken(v: list[Item], rng: random.Random) -> list[Item]:
        write = EVENTSTREAM.write
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
        _m("frame-truncated", "frame-truncated", truncated),
        _m("message-crc-broken", "message-crc", crc_broken),
        _m("metadata-dropped", "metadata-last", metadata_dropped),
        _m("block-stop-dropped", "block-not-stopped", block_stop_dropped),
        _m("total-wrong", "usage-arithmetic", total_wrong),
    )


KNOBS = Knobs(bedrock_request, tools=True, thinking="text", mutations=bedrock_mutations())
