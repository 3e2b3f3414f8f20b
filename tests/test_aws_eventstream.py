"""AWS event-stream framing: exact cuts for any bytes, the same events whatever the byte
splits, encode/parse round trips, and every kind of damage named — checked against
botocore's own decoder where the bytes are well formed."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from mockserver.framing import FRAMINGS
from mockserver.framing.aws_eventstream import (
    AWS_EVENTSTREAM,
    PROBLEMS,
    Decoder,
    decode,
    encode,
    frames,
    headers,
    parse,
    problem,
)
from mockserver.model import Event

names = st.text(st.characters(codec="utf-8", exclude_characters="=!"), min_size=1, max_size=12)
names = names.filter(lambda n: len(n.encode()) < 256)
header_lists = st.lists(
    st.tuples(names, st.text(max_size=20)), max_size=4, unique_by=lambda h: h[0]
)
payloads = st.binary(max_size=80) | st.text(max_size=40).map(str.encode)
messages = st.builds(encode, header_lists, payloads)
streams = st.lists(messages, max_size=5).map(b"".join)
# A stream, possibly cut short, with garbage after, or with one byte flipped.
bodies = (
    streams
    | st.tuples(streams, st.binary(max_size=30)).map(b"".join)
    | st.tuples(streams, st.integers(0, 400)).map(lambda s: s[0][: s[1]])
    | st.binary(max_size=60)
)


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(body[start:point])
        start = point
    pieces.append(body[start:])
    return pieces


def feed_all(pieces: list[bytes]) -> list[Event]:
    decoder = Decoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.close()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]


MESSAGE = encode(
    [(":event-type", "messageStart"), (":message-type", "event")], b'{"role":"assistant"}'
)


@given(bodies)
def test_frames_join_back_to_the_body(body: bytes) -> None:
    assert b"".join(frames(body)) == body


@given(st.lists(messages, max_size=6))
def test_each_message_is_one_frame(parts: list[bytes]) -> None:
    assert frames(b"".join(parts)) == tuple(parts)


@given(bodies, st.lists(st.integers(min_value=0, max_value=500), max_size=12))
def test_the_decoder_gives_the_same_events_for_any_split(body: bytes, cuts: list[int]) -> None:
    assert feed_all(split_at(body, cuts)) == list(decode(body))


@given(bodies)
def test_the_decoder_byte_by_byte(body: bytes) -> None:
    assert feed_all([body[i : i + 1] for i in range(len(body))]) == list(decode(body))


@given(header_lists, payloads)
def test_encode_then_parse_round_trips(pairs: list[tuple[str, str]], payload: bytes) -> None:
    event = parse(encode(pairs, payload))
    assert headers(event) == dict(pairs)
    assert event.data == payload.decode("utf-8", "replace")
    assert problem(event) is None


@given(header_lists, payloads)
def test_botocore_reads_what_encode_writes(pairs: list[tuple[str, str]], payload: bytes) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(encode(pairs, payload))
    (message,) = list(buffer)
    assert message.headers == dict(pairs)
    assert message.payload == payload


@given(st.lists(messages, min_size=1, max_size=3), st.data())
def test_any_flipped_byte_is_detected(parts: list[bytes], data: st.DataObject) -> None:
    body = b"".join(parts)
    damaged = flip(body, data.draw(st.integers(0, len(body) - 1)))
    found = [problem(event) for event in decode(damaged)]
    assert any(p is not None for p in found)
    assert {p[0] for p in found if p is not None} <= set(PROBLEMS)


def test_a_flipped_payload_byte_is_a_message_crc_mismatch_botocore_also_sees() -> None:
    damaged = flip(MESSAGE, len(MESSAGE) - 6)
    event = parse(damaged)
    kind, detail = problem(event) or ("", "")
    assert kind == "message-crc" and detail.startswith("CRC32 0x") and detail.endswith(" computed")
    assert headers(event)[":event-type"] == "messageStart"  # still readable, still wrong
    buffer = EventStreamBuffer()
    buffer.add_data(damaged)
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_a_broken_prelude_makes_the_rest_one_frame() -> None:
    damaged = flip(MESSAGE, 2) + MESSAGE  # the total length no longer matches its CRC
    assert frames(damaged) == (damaged,)
    (event,) = decode(damaged)
    assert problem(event) == ("prelude-crc", problem(event)[1])  # type: ignore[index]
    assert event.data is None and event.event is None


def test_a_truncated_tail_is_the_last_frame() -> None:
    body = MESSAGE + MESSAGE[:-5]
    assert frames(body) == (MESSAGE, MESSAGE[:-5])
    last = decode(body)[-1]
    assert problem(last) == (
        "truncated",
        f"{len(MESSAGE) - 5} of the {len(MESSAGE)} bytes the prelude states",
    )
    assert problem(parse(MESSAGE[:7])) == ("truncated", "7 bytes, less than a 12-byte prelude")


def test_inconsistent_lengths_under_a_good_prelude_crc() -> None:
    prelude = struct.pack(">II", 16, 40)  # 16 bytes cannot hold 40 bytes of headers
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\0" * 4
    assert frames(frame) == (frame,)
    assert problem(parse(frame))[0] == "prelude-length"  # type: ignore[index]
    assert problem(parse(MESSAGE + b"x"))[0] == "prelude-length"  # type: ignore[index]


def test_a_header_block_that_does_not_decode() -> None:
    block = b"\x05:abc" + b"\x07\x00\x09short"  # a string said to be 9 bytes holds 5
    total = 16 + len(block)
    prelude = struct.pack(">II", total, len(block))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + block
    frame = head + struct.pack(">I", zlib.crc32(head))
    kind, detail = problem(parse(frame)) or ("", "")
    assert kind == "headers" and "past the header block" in detail


def test_every_header_value_type_decodes() -> None:
    block = b"".join(
        bytes([len(name)]) + name.encode() + bytes([kind]) + value
        for name, kind, value in [
            ("t", 0, b""),
            ("f", 1, b""),
            ("b", 2, b"\xff"),
            ("s", 3, struct.pack(">h", -2)),
            ("i", 4, struct.pack(">i", 70000)),
            ("l", 5, struct.pack(">q", 2**40)),
            ("a", 6, b"\x00\x03abc"),
            ("ts", 8, struct.pack(">q", 1700000000000)),
            ("u", 9, bytes(range(16))),
        ]
    )
    prelude = struct.pack(">II", 16 + len(block), len(block))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + block
    event = parse(head + struct.pack(">I", zlib.crc32(head)))
    assert problem(event) is None
    assert headers(event) == {
        "t": "true",
        "f": "false",
        "b": "-1",
        "s": "-2",
        "i": "70000",
        "l": str(2**40),
        "a": "YWJj",
        "ts": "1700000000000",
        "u": "00010203-0405-0607-0809-0a0b0c0d0e0f",
    }


def test_the_event_name_follows_the_message_type() -> None:
    exception = encode(
        [(":exception-type", "throttlingException"), (":message-type", "exception")],
        b'{"message":"slow down"}',
    )
    error = encode([(":error-code", "InternalFailure"), (":message-type", "error")], b"")
    assert parse(MESSAGE).event == "messageStart"
    assert parse(exception).event == "throttlingException"
    assert parse(error).event == "InternalFailure" and parse(error).data == ""


def test_a_decoder_after_a_broken_prelude_waits_for_close() -> None:
    decoder = Decoder()
    assert [e.event for e in decoder.feed(MESSAGE + flip(MESSAGE, 1))] == ["messageStart"]
    assert decoder.feed(MESSAGE) == []  # nothing after a bad prelude can be trusted
    (rest,) = decoder.close()
    assert rest.raw == flip(MESSAGE, 1) + MESSAGE
    assert decoder.close() == []


def test_registered_with_bedrocks_content_type() -> None:
    assert FRAMINGS["aws_eventstream"] is AWS_EVENTSTREAM
    assert AWS_EVENTSTREAM.content_type == "application/vnd.amazon.eventstream"
    assert AWS_EVENTSTREAM.events(MESSAGE * 2) == (parse(MESSAGE), parse(MESSAGE))
