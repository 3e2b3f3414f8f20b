"""The cohere dialect against every real Cohere v2 recording in the corpus.

Each recording loads, is served by the cohere dialect, replays byte-exact over a raw
socket (one HTTP chunk per event), and passes every rule of the validator. The synthesizer
is held to the same recordings: its events have the shape of Cohere's, key order included,
and the conformance summary reads what a client would read from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects.cohere.conformance import summarize
from mockserver.dialects.cohere.dialect import DIALECT, check, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script, ToolCall, header
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()
STREAM = "cohere/v2-chat-stream.yaml"
TOOL_CALLS = "cohere/v2-chat-stream-tool-calls.yaml"

# (file, interaction index) -> the rule ids the validator must report: none, all real.
VERDICTS: dict[tuple[str, int], set[str]] = {
    # A text answer: message-start, one text block of 100 one-token deltas, content-end,
    # message-end with COMPLETE and both billed_units and tokens, then data: [DONE].
    (STREAM, 0): set(),
    # A tool turn: a 12-delta tool plan, two tool calls whose arguments start empty in
    # tool-call-start and arrive in fragments with newlines, no content block at all,
    # finish TOOL_CALL.
    (TOOL_CALLS, 0): set(),
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def files() -> list[Path]:
    return sorted((ROOT / "cohere").glob("*.yaml"))


def payloads(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in SSE.events(body) if e.data and e.data != "[DONE]"]


def test_every_cohere_recording_is_served_by_the_cohere_dialect() -> None:
    assert files()
    for path in files():
        library = Library(load(path))
        assert library.unserved == (), path.name
        for entry in library.entries:
            assert entry.dialect is DIALECT and entry.endpoint == "chat", entry.source
            assert entry.streaming, entry.source


def test_the_table_covers_every_cohere_recording() -> None:
    found = {
        (path.relative_to(ROOT).as_posix(), index)
        for path in files()
        for index, _ in enumerate(load(path))
    }
    assert found == set(VERDICTS)


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recorded_stream(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    assert exchange.response.status == 200 and DIALECT.is_stream(exchange.request)
    violations = check(exchange.request, SSE.events(exchange.response.body))
    assert {v.rule for v in violations} == VERDICTS[(name, index)], [str(v) for v in violations]
    assert check(None, SSE.events(exchange.response.body)) == violations


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer() as running:
        yield running


@pytest.mark.parametrize("name", sorted({name for name, _ in VERDICTS}))
def test_a_recording_replays_byte_exact_one_chunk_per_event(
    server: BackgroundServer, name: str
) -> None:
    library = Library(exchanges(name))
    server.state.use(Player(library))
    for entry in library.entries:
        recorded = entry.exchange
        reply = rawhttp.request(server.url, recorded.request.path, recorded.request.body)
        assert (reply.status, reply.body) == (200, recorded.response.body), entry.source
        assert reply.chunks == list(SSE.frames(recorded.response.body)), entry.source
        assert reply.header("content-type") == "text/event-stream"
    assert server.state.player.misses == [] and server.state.player.unplayed() == []


def test_the_recorded_request_matches_the_same_request_spelled_otherwise() -> None:
    (real,) = exchanges(STREAM)
    body = json.loads(real.request.body)
    again = {"stream": True, **{k: v for k, v in body.items() if k != "stream"}}
    again["messages"] = [
        {**m, "content": [{"type": "text", "text": m["content"]}]} for m in again["messages"]
    ]
    assert identity(Request("POST", "/v2/chat", json=again)) == identity(real.request)


# --- the summary reads what a client reads ---------------------------------------------


def test_the_summary_of_the_text_recording() -> None:
    (real,) = exchanges(STREAM)
    events = payloads(real.response.body)
    text = "".join(
        e["delta"]["message"]["content"]["text"] for e in events if e["type"] == "content-delta"
    )
    billed = events[-1]["delta"]["usage"]["billed_units"]
    said = summarize(SSE.events(real.response.body))
    assert said.texts == {0: text} and text.startswith("Arrr")
    assert said.finishes == {0: "stop"} and said.done and not said.error
    given, taken = billed["input_tokens"], billed["output_tokens"]
    assert said.usage == (given, taken, given + taken) == (7, 109, 116)
    assert said.ids == {events[0]["id"]}


def test_the_summary_of_the_tool_call_recording() -> None:
    (real,) = exchanges(TOOL_CALLS)
    said = summarize(SSE.events(real.response.body))
    calls = sorted(said.calls.items())
    assert [(c.name, json.loads(c.arguments)) for _, c in calls] == [
        ("get_time", {"location": "Tokyo"}),
        ("get_weather", {"location": "Tokyo"}),
    ]
    assert [c.id for _, c in calls] == ["get_time_dg5wwc00d8v5", "get_weather_bc8241gkqss5"]
    assert said.texts[0].startswith("I will search") and said.finishes == {0: "tool_calls"}


# --- the synthesizer against the recordings --------------------------------------------


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type."""
    if isinstance(value, dict):
        return [(key, skeleton(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [skeleton(item) for item in value]
    return type(value).__name__


def shapes(body: bytes) -> set[str]:
    out = set()
    for event in SSE.events(body):
        assert event.data is not None
        data = event.data if event.data == "[DONE]" else skeleton(json.loads(event.data))
        out.add(json.dumps([event.event, data]))
    return out


def test_a_synthesized_text_stream_has_the_shape_and_order_of_the_real_one() -> None:
    (real,) = exchanges(STREAM)
    ours = synthesize(real.request, Script(text="Arrr, matey!"))
    assert shapes(ours.body) == shapes(real.response.body)

    def order(body: bytes) -> list[str | None]:
        kinds = [e.event or e.data for e in SSE.events(body)]
        return [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]  # runs as one

    assert order(ours.body) == order(real.response.body)
    for name in ("content-type", "cache-control"):
        assert header(ours.headers, name) == header(real.response.headers, name), name


def test_a_synthesized_tool_turn_has_the_shape_of_the_real_one() -> None:
    (real,) = exchanges(TOOL_CALLS)
    calls = (ToolCall("get_time", '{"location": "Tokyo"}'), ToolCall("get_weather", "{}"))
    ours = synthesize(real.request, Script(text="I will search.", tool_calls=calls))
    assert shapes(ours.body) == shapes(real.response.body)
    ids = [
        e["delta"]["message"]["tool_calls"]["id"]
        for e in payloads(ours.body)
        if e["type"] == "tool-call-start"
    ]
    real_ids = [
        e["delta"]["message"]["tool_calls"]["id"]
        for e in payloads(real.response.body)
        if e["type"] == "tool-call-start"
    ]
    assert [len(i) for i in ids] == [len(i) for i in real_ids]
    assert check(real.request, SSE.events(ours.body)) == []
