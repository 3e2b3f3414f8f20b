"""How mutations see a stream: its frames as JSON values to edit, and back to frames.

Two views serve every protocol so far. Named-event SSE (Anthropic, OpenAI Responses)
reads each ``event: X`` frame whose data is a JSON object of ``type`` X as that object.
Bare-object streams (Ollama's NDJSON, Bedrock's binary frames)
read each event as ``[name or None, object]`` through a ``Codec`` that knows the framing.
Anything a view cannot read stays raw bytes, so a mutation can also plant broken frames.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockserver.dialects._kit.knobs import Mutation, dumps
from mockserver.model import Request

NamedItem = dict[str, Any] | bytes
"""A named event's JSON object, or a frame's bytes."""

ObjectItem = list[Any] | bytes
"""``[event name or None, JSON object]``, or a frame's bytes."""

Change = Callable[[list[Any], random.Random], list[Any]]


# --- named-event SSE ----------------------------------------------------------------------


def named_events(frames: list[bytes]) -> list[NamedItem]:
    out: list[NamedItem] = []
    for frame in frames:
        head, _, data = frame.partition(b"\ndata: ")
        try:
            value = json.loads(data) if head.startswith(b"event: ") else None
        except ValueError:
            value = None
        named = isinstance(value, dict) and head[7:].decode() == value.get("type")
        out.append(value if named and isinstance(value, dict) else frame)
    return out


def unnamed_events(values: list[NamedItem]) -> list[bytes]:
    return [
        v if isinstance(v, bytes) else f"event: {v['type']}\ndata: ".encode() + dumps(v) + b"\n\n"
        for v in values
    ]


def event_mutation(
    name: str, rule: str, change: Change, needs: dict[str, Any] | None = None
) -> Mutation:
    """A mutation written over named events."""

    def apply(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
        return unnamed_events(change(named_events(frames), rng))

    return Mutation(name, rule, apply, dict(needs or {}))


def at(values: list[NamedItem], kind: str, **fields: Any) -> list[int]:
    """Positions of the events of a type (whose fields match)."""
    return [
        i
        for i, v in enumerate(values)
        if isinstance(v, dict)
        and v.get("type") == kind
        and all(v.get(k) == want for k, want in fields.items())
    ]


def as_dict(value: NamedItem) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


# --- bare JSON objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How one framing's frames read as ``ObjectItem`` values and write back."""

    read: Callable[[bytes], ObjectItem]
    write: Callable[[ObjectItem], bytes]


def json_item(name: str | None, text: str | None, frame: bytes) -> ObjectItem:
    """``[name, object]`` when ``text`` is a JSON object, else the frame itself."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        value = None
    return [name, value] if isinstance(value, dict) else frame


def _line_codec(read_text: Callable[[bytes], str | None], end: bytes, prefix: bytes) -> Codec:
    def read(frame: bytes) -> ObjectItem:
        return json_item(None, read_text(frame), frame)

    def write(item: ObjectItem) -> bytes:
        return item if isinstance(item, bytes) else prefix + dumps(item[1]) + end

    return Codec(read, write)


NDJSON_OBJECTS = _line_codec(lambda f: f.decode().removeprefix("data: "), b"\n", b"")
"""One JSON object per line."""


def object_mutation(
    codec: Codec, name: str, rule: str, change: Change, needs: dict[str, Any] | None = None
) -> Mutation:
    """A mutation written over ``[name, object]`` items in ``codec``'s framing."""

    def apply(frames: list[bytes], request: Request, rng: random.Random) -> list[bytes]:
        return [codec.write(item) for item in change([codec.read(f) for f in frames], rng)]

    return Mutation(name, rule, apply, dict(needs or {}))


def objects(values: list[ObjectItem], name: str | None = None) -> list[int]:
    """Positions of the JSON objects (named ``name``, when given)."""
    return [
        i for i, v in enumerate(values) if isinstance(v, list) and (name is None or v[0] == name)
    ]


def obj(value: ObjectItem) -> dict[str, Any]:
    assert isinstance(value, list)
    found: dict[str, Any] = value[1]
    return found
