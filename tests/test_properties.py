"""The ready-made properties and the ``tapedeck_stream`` server: valid streams pass, each
property catches the mutations of its rules, and a user's client can be property-tested
against generated streams in a few lines."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS
from mockserver.dialects._kit.rules import RuleTable
from pytest_plugin.properties import (
    ORDERING,
    TERMINATION,
    USAGE_CHUNK,
    StreamServer,
    assert_chunk_ordering,
    assert_done_terminated,
    assert_endpoint_conforms,
    assert_stream_conforms,
    assert_usage_chunk,
    fetch_stream,
    rule_group,
)
from pytest_plugin.strategies import Mutation, Stream, mutated_streams, mutations, streams

CHAT_MUTATIONS = mutations("openai_chat")


def first_stream() -> Stream:
    found: list[Stream] = []

    @settings(max_examples=1, database=None)
    @given(stream=streams("openai_chat", include_usage=False, split=False))
    def pick(stream: Stream) -> None:
        found.append(stream)

    pick()
    return found[0]


@given(stream=streams("openai_chat"))
def test_valid_streams_pass_every_property(stream: Stream) -> None:
    assert_stream_conforms("openai_chat", stream)
    assert_chunk_ordering(stream)
    assert_done_terminated(stream)
    assert_usage_chunk(stream)


@pytest.mark.parametrize("mutation", CHAT_MUTATIONS, ids=str)
@settings(max_examples=10)
@given(data=st.data())
def test_each_property_catches_the_mutations_of_its_rules(
    mutation: Mutation, data: st.DataObject
) -> None:
    broken = data.draw(mutated_streams("openai_chat", mutation))
    with pytest.raises(AssertionError, match=f"  {mutation.rule} at "):
        assert_stream_conforms("openai_chat", broken)
    for rules, prop in (
        (ORDERING, lambda: assert_chunk_ordering(broken)),
        (TERMINATION, lambda: assert_done_terminated(broken)),
        (USAGE_CHUNK, lambda: assert_usage_chunk(broken)),
    ):
        if mutation.rule in rules:
            with pytest.raises(AssertionError, match=mutation.rule):
                prop()
        else:
            prop()


def test_the_default_groups_are_openai_chats_order_termination_and_usage() -> None:
    assert {
        "role-not-first",
        "content-after-finish",
        "finish-reason-repeated",
        "finish-reason-missing",
        "usage-chunk-not-last",
        "event-after-error",
        "tool-call-start-incomplete",
        "tool-call-header-repeated",
    } == ORDERING
    assert {"done-missing", "data-after-done"} == TERMINATION
    assert {
        "usage-chunk-missing",
        "usage-chunk-duplicate",
        "usage-chunk-not-last",
        "usage-on-choices-chunk",
        "usage-null-missing",
        "usage-unrequested",
        "usage-arithmetic",
    } == USAGE_CHUNK
    # Each dialect's own table answers for it: legacy Completions orders text choices.
    assert "text-after-finish" in rule_group("openai_completions", "ordering") - ORDERING


@settings(max_examples=10)
@given(broken=mutated_streams("openai_responses", "terminal-dropped"))
def test_a_property_checks_the_groups_of_the_dialect_it_is_given(broken: Stream) -> None:
    with pytest.raises(AssertionError, match="  terminal-missing at stream: "):
        assert_done_terminated(broken, dialect="openai_responses")
    assert_chunk_ordering(broken, dialect="openai_responses")


def test_a_dialect_without_the_group_is_an_error_not_a_pass() -> None:
    bare = replace(DIALECTS["openai_chat"], rules=RuleTable())
    with pytest.raises(ValueError, match="'openai_chat' has no rules in group 'ordering'"):
        assert_chunk_ordering(b"data: [DONE]\n\n", dialect=bare)


def test_the_properties_apply_to_any_base_url() -> None:
    with StreamServer() as server:
        broken = b'data: {"choices": []}\n\n'
        server.push(broken)
        body = {"model": "m", "messages": [], "stream": True}
        request, received = fetch_stream(server.base_url(), body, api_key="k")
        assert received == broken
        assert request.json == body and ("authorization", "Bearer k") in request.headers
        with pytest.raises(AssertionError, match="done-missing at stream: expected data: "):
            assert_done_terminated(received)
        with pytest.raises(AssertionError, match=r"answered 400: .*no stream queued"):
            fetch_stream(server.base_url(), body)
        valid = first_stream()
        server.push(valid)
        assert assert_endpoint_conforms(server.base_url(), body) == valid.body
        server.push(broken)
        with pytest.raises(AssertionError, match="the openai_chat stream does not conform: 2 "):
            assert_endpoint_conforms(server.base_url(), body)
        assert len(server.requests) == 4


def test_serving_checks_every_queued_stream_was_requested() -> None:
    with (
        StreamServer() as server,
        pytest.raises(AssertionError, match="1 of 1 queued stream"),
        server.serving(b"data: [DONE]\n\n"),
    ):
        pass


def test_a_user_property_tests_their_client(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import openai
from hypothesis import given, settings
from pytest_plugin.strategies import streams

def ask(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
    return list(client.chat.completions.create(
        model="m", messages=[], stream=True, stream_options={"include_usage": True}
    ))

@settings(max_examples=15, deadline=None)
@given(stream=streams("openai_chat", include_usage=True, tools=False, n=1))
def test_the_sdk_reads_every_legal_stream(tapedeck_stream, stream):
    with tapedeck_stream.serving(stream) as base_url:
        chunks = ask(base_url)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == stream.script.text
    assert chunks[-1].usage.total_tokens > 0

@settings(max_examples=15, deadline=None)
@given(stream=streams("openai_chat", include_usage=True, tools=False, n=1))
def test_a_naive_client_is_caught(tapedeck_stream, stream):
    with tapedeck_stream.serving(stream) as base_url:
        chunks = ask(base_url)
    "".join(c.choices[0].delta.content or "" for c in chunks)  # the usage chunk: IndexError
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*IndexError: list index out of range*", "*Failing test case: test_a_naive_client*"]
    )
