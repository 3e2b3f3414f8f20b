"""The hypothesis strategies: every generated stream of every dialect is valid, in any
byte split; mutations, knobs and splits do what they say. (Every rule's mutation breaking it
and only it is part of every dialect's contract: test_dialect_contract.py.)"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

from mockserver.dialects import DIALECTS
from mockserver.validation import validate
from pytest_plugin.strategies import (
    MutatedStream,
    Stream,
    byte_splits,
    knobs,
    mutated_streams,
    mutations,
    streamable_dialects,
    streams,
)

T = TypeVar("T")


def first(strategy: st.SearchStrategy[T], condition: Callable[[T], Any] = bool) -> T:
    """The first generated example meeting ``condition``, unshrunk (shrinking is slow)."""
    quick = settings(phases=[Phase.generate], max_examples=1000, database=None)
    with warnings.catch_warnings():
        # find() describes its own closure when it succeeds, which hypothesis finds long.
        warnings.filterwarnings("ignore", "Generating overly large repr", HypothesisWarning)
        return find(strategy, condition, settings=quick)


NO_STREAMS = {"openai_embeddings": "an embedding is one JSON answer, never a stream"}
STREAMING = streamable_dialects()


def test_every_dialect_has_streams_or_says_why_not() -> None:
    assert set(STREAMING) | set(NO_STREAMS) == set(DIALECTS)
    assert not set(STREAMING) & set(NO_STREAMS)


@pytest.mark.parametrize("dialect", STREAMING)
@given(data=st.data())
def test_generated_streams_are_valid_in_any_split(dialect: str, data: st.DataObject) -> None:
    stream = data.draw(streams(dialect))
    assert isinstance(stream, Stream)
    assert stream.violations() == []
    assert b"".join(stream.chunks) == stream.body
    # Fed in the generated chunks (cut inside characters and JSON too), the framing's
    # incremental decoder yields exactly the events of the whole body.
    framing = DIALECTS[dialect].framing_for(stream.request)
    decoder = framing.decoder()
    fed = [event for chunk in stream.chunks for event in decoder.feed(chunk)] + decoder.close()
    assert [e.raw for e in fed] == [e.raw for e in stream.events if e.raw.strip(b"\r\n")]


@given(data=st.data())
def test_mutated_streams_come_in_chunks_that_join_to_the_body(data: st.DataObject) -> None:
    # That each mutation breaks its rule and only it: test_dialect_contract.py.
    broken = data.draw(mutated_streams(data.draw(st.sampled_from(STREAMING)), split=True))
    assert isinstance(broken, MutatedStream) and broken.base is not None
    assert broken.mutation is not None and broken.mutation in mutations(broken.dialect)
    assert b"".join(broken.chunks) == broken.body != broken.base.body


@pytest.mark.parametrize(
    ("dialect", "marker"),
    [
        ("anthropic", b"thinking_delta"),
        ("openai_responses", b"reasoning"),
        ("gemini", b'"thought": true'),
        ("ollama", b'"thinking":'),
    ],
)
def test_thinking_is_generated_where_the_protocol_has_it(dialect: str, marker: bytes) -> None:
    stream = first(streams(dialect, thinking=True, split=False))
    assert marker in stream.body and stream.violations() == []


def test_the_legal_shapes_real_servers_send_are_generated() -> None:
    # Legacy Completions with logprobs (a stream variant), chat with the first delta's
    # role repeated on later deltas (OpenRouter, Snowflake Cortex): both valid.
    scored = first(streams("openai_completions", variant="logprobs", split=False))
    assert b'"token_logprobs":[' in scored.body and scored.violations() == []
    repeated = first(
        streams("openai_chat", n=1, split=False),
        lambda s: s.body.count(b'"role":"assistant"') > 1,
    )
    assert repeated.violations() == []


def test_mutations_name_the_rule_they_break() -> None:
    (mutation,) = [m for m in mutations("openai_chat") if m.name == "usage-with-choices"]
    assert str(mutation) == "usage-with-choices (breaks usage-on-choices-chunk)"
    with pytest.raises(ValueError, match="unknown mutation 'nope' for openai_chat; known: "):
        first(mutated_streams("openai_chat", "nope"))


def test_byte_splits_reach_inside_a_utf8_character() -> None:
    body = 'data: {"content":"é🙂"}\n\n'.encode()

    def cuts(split: tuple[bytes, ...]) -> list[int]:
        return [sum(map(len, split[:k])) for k in range(1, len(split))]

    split = find(byte_splits(body), lambda s: any(body[at] & 0xC0 == 0x80 for at in cuts(s)))
    assert b"".join(split) == body
    with pytest.raises(UnicodeDecodeError):
        for piece in split:
            piece.decode("utf-8")


@pytest.mark.parametrize("dialect", ["openai_chat"])
def test_the_knobs_reach_tools_choices_and_usage(dialect: str) -> None:
    assert knobs(dialect).tools and knobs(dialect).choices and knobs(dialect).usage_option
    parallel = first(streams(dialect, split=False), lambda s: len(s.script.tool_calls) >= 2)
    assert parallel.body.count(b'"id":"call_') >= 2 and parallel.violations() == []
    two = first(streams(dialect, n=2, include_usage=True, split=False))
    assert b'"index":1' in two.body and b'"choices":[]' in two.body
    unicode = first(streams(dialect, split=False), lambda s: "🙂" in (s.script.text or ""))
    assert "🙂".encode() in unicode.body


def test_a_generated_stream_validates_as_bytes_and_as_events() -> None:
    stream = first(streams("openai_chat", include_usage=True))
    assert validate("openai_chat", stream.body, stream.request) == []
    assert validate(DIALECTS["openai_chat"], stream.events, stream.request) == []
    broken = first(mutated_streams("openai_chat", "usage-null-dropped"))
    assert [v.rule for v in validate("openai_chat", broken.body, broken.request)] == [
        "usage-null-missing"
    ]
    with pytest.raises(ValueError, match="unknown dialect 'nope'; known dialects: "):
        validate("nope", b"")
