"""The JSON-array framing (Gemini's streamGenerateContent without alt=sse): exact cuts at
top-level elements, element JSON without the array punctuation, and the same events
whatever the byte splits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.cassettes import load
from mockserver.framing import FRAMINGS
from mockserver.framing.json_array import JSON_ARRAY, Decoder, decode, frames, parse
from mockserver.model import Event
from tests.conftest import corpus_root

# Bytes that exercise the awkward parts: brackets and quotes inside strings, escapes,
# every separator, bare values, multi-byte UTF-8.
ALPHABET = st.sampled_from(
    [
        *(b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b" ", b"\n", b"\r\n", b"1"),
        *(b"true", b'"a]"', b'"\\""', b"\xc3\xa9", b"null", b"-2.5e3"),
    ]
)
bodies = st.lists(ALPHABET, max_size=60).map(b"".join) | st.binary(max_size=200)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


def array_body(elements: list[Any], indent: int | None, separator: str, tail: str) -> bytes:
    texts = [json.dumps(e, indent=indent, ensure_ascii=False) for e in elements]
    return ("[" + separator.join(texts) + tail).encode()


arrays = st.builds(
    array_body,
    st.lists(json_values, max_size=5),
    st.sampled_from([None, 2]),
    st.sampled_from([",", "\n,\r\n", " , "]),
    st.sampled_from(["]", "\n]", "\n]\n"]),
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
    events: list[Event] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


@given(bodies | arrays)
def test_frames_join_back_to_the_body(body: bytes) -> None:
    assert b"".join(frames(body)) == body
    assert all(frames(body))  # no empty frame


@given(bodies | arrays, st.lists(st.integers(min_value=0, max_value=260), max_size=12))
def test_decoder_gives_the_same_events_for_any_split(body: bytes, cuts: list[int]) -> None:
    assert feed_all(split_at(body, cuts)) == list(decode(body))


@given(bodies | arrays)
def test_decoder_byte_by_byte(body: bytes) -> None:
    assert feed_all([body[i : i + 1] for i in range(len(body))]) == list(decode(body))


@given(st.lists(json_values, max_size=5), st.sampled_from([None, 2]))
def test_each_element_is_one_event_holding_its_json(
    elements: list[Any], indent: int | None
) -> None:
    body = array_body(elements, indent, "\n,\r\n", "\n]")
    events = decode(body)
    assert [json.loads(e.data) for e in events[:-1] if e.data is not None] == elements
    assert events[-1].data is None and events[-1].raw.endswith(b"]")
    assert len(events) == len(elements) + 1


def test_an_element_is_an_event_as_soon_as_it_closes() -> None:
    decoder = Decoder()
    assert decoder.feed(b'[{"a": [1, "]"') == []
    (first,) = decoder.feed(b"]}\n")  # the element is complete: no need to see the comma
    assert first.data == '{"a": [1, "]"]}' and first.raw == b'[{"a": [1, "]"]}'
    (second,) = decoder.feed(b',\r\n{"b": "\\"}"}')
    assert second.data == '{"b": "\\"}"}' and second.raw == b'\n,\r\n{"b": "\\"}"}'
    assert decoder.feed(b"\n") == []
    (tail,) = decoder.feed(b"]") + decoder.close()
    assert tail == Event(data=None, raw=b"\n]")


def test_gemini_layout_is_cut_before_each_separator() -> None:
    body = b'[{\n  "a": 1\n}\n,\r\n{\n  "a": 2\n}\n]'
    assert frames(body) == (b'[{\n  "a": 1\n}', b'\n,\r\n{\n  "a": 2\n}', b"\n]")
    assert [e.data for e in decode(body)] == ['{\n  "a": 1\n}', '{\n  "a": 2\n}', None]


@pytest.mark.parametrize(
    ("body", "cut"),
    [
        (b"[]", [b"[]"]),
        (b"[1, 22,3]", [b"[1", b", 22", b",3", b"]"]),
        (b'["a]", [2], {"b": {}}]', [b'["a]"', b", [2]", b', {"b": {}}', b"]"]),
        (b'[{"a": 1}, {"b"', [b'[{"a": 1}', b', {"b"']),  # truncated: the rest is a frame
        (b'{"a": 1}{"b": 2}\n', [b'{"a": 1}', b'{"b": 2}', b"\n"]),  # no array: values
        (b"  [ true , null ] ", [b"  [ true", b" , null", b" ] "]),
        (b"", []),
    ],
)
def test_cuts(body: bytes, cut: list[bytes]) -> None:
    assert list(frames(body)) == cut


def test_parse_strips_only_the_array_punctuation() -> None:
    assert parse(b"[[1, 2]").data == "[1, 2]"  # the first element may be an array itself
    assert parse(b"\n,\r\n[3]").data == "[3]"
    assert parse(b'\n, "]"').data == '"]"'
    assert parse(b"\n]\n").data is None and parse(b"[]").data is None
    assert parse(b"\n").data is None
    assert parse(b',{"a": "\xff"}').data == '{"a": "\ufffd"}'  # bad UTF-8 is replaced


def test_registered_and_named() -> None:
    assert FRAMINGS["json_array"] is JSON_ARRAY
    assert JSON_ARRAY.content_type == "application/json"
    assert JSON_ARRAY.events(b"[1]") == decode(b"[1]")


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name", ["gemini/stream-json-array-gzip.yaml", "gemini/stream-json-array-tools-gzip.yaml"]
)
def test_recorded_json_array_streams(name: str) -> None:
    for exchange in load(corpus_root() / name):
        body = exchange.response.body
        events = decode(body)
        chunks = [json.loads(e.data) for e in events if e.data is not None]
        assert chunks == json.loads(body)  # the elements, in order, nothing lost
        assert events[-1].data is None
        assert feed_all(split_at(body, list(range(0, len(body), 7)))) == list(events)
