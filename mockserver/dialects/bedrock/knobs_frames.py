"""Bedrock mutations of the framing, the same on either stream shape: frames read as
[``:event-type``, JSON payload] and written back (``EVENTSTREAM``), and the defects of the
frame rules (CRCs, lengths, headers, message types, payloads, a stream going on after an
exception). Part of the dialect's knobs (``knobs.py``), which adds each shape's own.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

from mockserver.dialects._kit.knobs import Mutation, dumps
from mockserver.dialects._kit.mutate import Change, Codec, json_item, object_mutation
from mockserver.dialects._kit.mutate import ObjectItem as Item
from mockserver.framing import aws_eventstream

JSON_TYPE = (":content-type", "application/json")


def _read(frame: bytes) -> Item:
    event = aws_eventstream.parse(frame)
    name = aws_eventstream.headers(event).get(":event-type")
    text = event.data if name and aws_eventstream.problem(event) is None else None
    return json_item(name, text, frame)


def _write(item: Item) -> bytes:
    if isinstance(item, bytes):
        return item
    name, value = item
    return event_frame(name, dumps(value))


def event_frame(name: str, payload: bytes) -> bytes:
    """An event frame with Bedrock's three headers, in Bedrock's order."""
    headers = [(":event-type", name), JSON_TYPE, (":message-type", "event")]
    return aws_eventstream.encode(headers, payload)


EVENTSTREAM = Codec(_read, _write)
"""Each frame as [its ``:event-type``, its JSON payload], or its bytes when it has none."""


def mutation(name: str, rule: str, change: Change, needs: dict[str, Any] | None = None) -> Mutation:
    """A mutation written over [event type, payload] items."""
    return object_mutation(EVENTSTREAM, name, rule, change, needs)


# --- broken frames -----------------------------------------------------------------------


def _sealed(frame: bytearray) -> bytes:
    """``frame`` with both CRCs computed again, so only the damage done to it shows."""
    struct.pack_into(">I", frame, 8, zlib.crc32(frame[:8]))
    struct.pack_into(">I", frame, len(frame) - 4, zlib.crc32(frame[:-4]))
    return bytes(frame)


def frame_mutations() -> tuple[Mutation, ...]:
    """Broken frames and misplaced exceptions: the same rules on either shape."""
    write = EVENTSTREAM.write

    def truncated(v: list[Item], rng: random.Random) -> list[Item]:
        return [*v[:-1], write(v[-1])[:-3]]

    def crc_broken(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.randrange(len(v))
        frame = bytearray(write(v[at]))
        frame[-1] ^= 0xFF  # the message CRC's last byte
        v[at] = bytes(frame)
        return v

    def prelude_crc_broken(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.randrange(len(v))
        frame = bytearray(write(v[at]))
        frame[8 + rng.randrange(4)] ^= 1 << rng.randrange(8)
        v[at] = bytes(frame)
        return v

    def headers_too_long(v: list[Item], rng: random.Random) -> list[Item]:
        # More header bytes stated than the whole message holds; the prelude CRC agrees.
        at = rng.randrange(len(v))
        frame = bytearray(write(v[at]))
        struct.pack_into(">I", frame, 4, len(frame) - aws_eventstream.OVERHEAD + rng.randint(1, 99))
        v[at] = _sealed(frame)
        return v

    def header_broken(v: list[Item], rng: random.Random) -> list[Item]:
        at = rng.randrange(len(v))
        frame = bytearray(write(v[at]))
        value = aws_eventstream.PRELUDE + 1 + frame[aws_eventstream.PRELUDE]  # the first's type
        if rng.random() < 0.5:
            frame[value] = 42  # no such value type
        else:
            struct.pack_into(">H", frame, value + 1, 0xFFFF)  # a string past the block
        v[at] = _sealed(frame)
        return v

    def message_type_wrong(v: list[Item], rng: random.Random) -> list[Item]:
        name, value = rng.choice([x for x in v if isinstance(x, list)])
        headers = rng.choice(
            [
                [(":event-type", name), JSON_TYPE, (":message-type", "message")],
                [(":event-type", name), JSON_TYPE],
                [JSON_TYPE, (":message-type", "exception")],  # naming no exception type
            ]
        )
        v.insert(rng.randint(0, len(v)), aws_eventstream.encode(headers, dumps(value)))
        return v

    def unknown_event(v: list[Item], rng: random.Random) -> list[Item]:
        v.insert(rng.randint(0, len(v)), [rng.choice(["ping", "messageDelta", "trace"]), {}])
        return v

    def payload_not_json(v: list[Item], rng: random.Random) -> list[Item]:
        name = rng.choice([x[0] for x in v if isinstance(x, list)])
        payload = rng.choice([b"", b"not json", b"[1]", b'"text"', b'{"role":'])
        v.insert(rng.randint(0, len(v)), event_frame(name, payload))
        return v

    def event_after_exception(v: list[Item], rng: random.Random) -> list[Item]:
        headers = [
            (":exception-type", "throttlingException"),
            JSON_TYPE,
            (":message-type", "exception"),
        ]
        exception = aws_eventstream.encode(headers, b'{"message":"Too many requests."}')
        v.insert(rng.randrange(len(v)), exception)  # never last: an event follows it
        return v

    return (
        mutation("frame-truncated", "frame-truncated", truncated),
        mutation("message-crc-broken", "message-crc", crc_broken),
        mutation("prelude-crc-broken", "prelude-crc", prelude_crc_broken),
        mutation("headers-longer-than-message", "prelude-length", headers_too_long),
        mutation("header-broken", "headers-malformed", header_broken),
        mutation("message-type-wrong", "message-type", message_type_wrong),
        mutation("unknown-event", "event-type-unknown", unknown_event),
        mutation("payload-not-json", "payload-not-json", payload_not_json),
        mutation("event-after-exception", "event-after-exception", event_after_exception),
    )
