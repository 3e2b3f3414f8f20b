"""SSE and NDJSON framing: exact cuts, and the same events whatever the byte splits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.framing import ndjson, sse
from mockserver.model import Event

# Bytes that exercise the awkward parts: every terminator, colons, spaces, UTF-8.
SSE_ALPHABET = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b":", b" ", b"data", b"event", b"id", b"retry", b"x", b"\xc3\xa9", b"1"]
)
sse_bodies = st.lists(SSE_ALPHABET, max_size=60).map(b"".join) | st.binary(max_size=200)


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(body[start:point])
        start = point
    pieces.append(body[start:])
    return pieces


def feed_all(decoder: sse.Decoder | ndjson.Decoder, pieces: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


@given(sse_bodies)
def test_sse_frames_join_back_to_the_body(body: bytes) -> None:
    assert b"".join(sse.frames(body)) == body


@given(sse_bodies)
def test_every_sse_frame_but_the_last_ends_in_a_blank_line(body: bytes) -> None:
    # A blank line: two line terminators (CRLF, LF or CR) in a row, per the WHATWG spec.
    for frame in sse.frames(body)[:-1]:
        assert re.search(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)\Z", frame)


@given(sse_bodies, st.lists(st.integers(min_value=0, max_value=260), max_size=12))
def test_sse_decoder_gives_the_same_events_for_any_split(body: bytes, cuts: list[int]) -> None:
    assert feed_all(sse.Decoder(), split_at(body, cuts)) == list(sse.decode(body))


@given(sse_bodies)
def test_sse_decoder_byte_by_byte(body: bytes) -> None:
    pieces = [body[i : i + 1] for i in range(len(body))]
    assert feed_all(sse.Decoder(), pieces) == list(sse.decode(body))


def test_cr_at_the_end_of_one_piece_and_lf_at_the_start_of_the_next() -> None:
    decoder = sse.Decoder()
    assert decoder.feed(b"data: a\r\n\r") == []  # the last CR may start a CRLF
    events = decoder.feed(b"\ndata: b\r\n\r\n")
    assert [e.data for e in events] == ["a", "b"]
    assert events[0].raw == b"data: a\r\n\r\n"


def test_lone_cr_terminators() -> None:
    assert sse.frames(b"data: a\r\rdata: b\r\r") == (b"data: a\r\r", b"data: b\r\r")
    assert [e.data for e in sse.decode(b"data: a\r\rdata: b\r\r")] == ["a", "b"]


def test_gemini_crlf_separators() -> None:
    body = b'data: {"a":1}\r\n\r\ndata: {"a":2}\r\n\r\n'
    assert sse.frames(body) == (b'data: {"a":1}\r\n\r\n', b'data: {"a":2}\r\n\r\n')


def test_comments_multi_line_data_and_fields() -> None:
    body = b": OPENROUTER PROCESSING\n\nevent: error\nid: 7\nretry: 300\ndata: one\ndata:two\n\n"
    comment, event = sse.decode(body)
    assert comment.data is None and comment.comments == ("OPENROUTER PROCESSING",)
    assert (event.event, event.id, event.retry, event.data) == ("error", "7", 300, "one\ntwo")


def test_only_one_space_after_the_colon_is_stripped() -> None:
    (event,) = sse.decode(b"data:  padded \n\n")
    assert event.data == " padded "


def test_missing_final_blank_line_is_the_last_frame() -> None:
    body = b"data: a\n\ndata: [DONE]"
    assert sse.frames(body) == (b"data: a\n\n", b"data: [DONE]")
    assert [e.data for e in sse.decode(body)] == ["a", "[DONE]"]
    decoder = sse.Decoder()
    assert [e.data for e in decoder.feed(body)] == ["a"]
    assert [e.data for e in decoder.close()] == ["[DONE]"]


def test_utf8_split_inside_a_character() -> None:
    body = "data: é🙂\n\n".encode()
    pieces = [body[:7], body[7:9], body[9:]]
    (event,) = feed_all(sse.Decoder(), pieces)
    assert event.data == "é🙂"


@pytest.mark.parametrize("body", [b"", b"\n", b"\n\n\n"])
def test_blank_bodies_have_no_events(body: bytes) -> None:
    assert sse.decode(body) == ()
    assert b"".join(sse.frames(body)) == body


ndjson_bodies = st.lists(
    st.sampled_from([b'{"a":1}', b"\n", b"\r\n", b'"\xc3\xa9"', b"x", b" "]), max_size=40
).map(b"".join)


@given(ndjson_bodies)
def test_ndjson_frames_join_back(body: bytes) -> None:
    assert b"".join(ndjson.frames(body)) == body


@given(ndjson_bodies, st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_ndjson_decoder_any_split(body: bytes, cuts: list[int]) -> None:
    expected = [ndjson.parse(frame) for frame in ndjson.frames(body)]
    assert feed_all(ndjson.Decoder(), split_at(body, cuts)) == expected


def test_ndjson_lines() -> None:
    body = b'{"done":false}\n{"done":true}\n'
    assert ndjson.frames(body) == (b'{"done":false}\n', b'{"done":true}\n')
    assert [e.data for e in ndjson.NDJSON.events(body)] == ['{"done":false}', '{"done":true}']
    assert ndjson.frames(b"a\rb\n") == (b"a\rb\n",)  # a bare CR does not end an NDJSON line
