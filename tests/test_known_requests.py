"""The fast road: a request whose bytes were answered from a recording before is answered
again without being parsed (``app._known``, ``Player.next_known``) when the server keeps
nothing per request, as ``tapedeck serve`` runs. It must answer exactly as the full road:
same recordings, same FIFO order, same misses, and faults still apply."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import app as app_module
from mockserver.faults import parse
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.test_app import CHAT, EXCHANGES, NONSTREAM_BODY, STREAM_BODY, chat

# Each request body a client may send: the recorded ones, in two spellings (the same
# identity, other bytes), and one nothing answers.
BODIES = (
    json.dumps(chat("twice")).encode(),
    json.dumps(chat("twice"), indent=1).encode(),
    json.dumps(chat("hello")).encode(),
    json.dumps(chat("stream please", stream=True)).encode(),
    json.dumps(chat("nobody recorded this")).encode(),
)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library(EXCHANGES)) as running:
        yield running


def answers(server: BackgroundServer, bodies: list[bytes], *, log: int | None) -> list[object]:
    """What a fresh library and player answer to ``bodies`` in turn: status and body (a
    miss by its status alone: the full road's message says which requests it kept)."""
    server.state.use(Player(Library(EXCHANGES), log=log))
    seen: list[object] = []
    for body in bodies:
        reply = rawhttp.request(server.url, CHAT, body)
        seen.append((reply.status, reply.body if reply.status == 200 else None))
    return seen


@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.sampled_from(range(len(BODIES))), min_size=1, max_size=8))
def test_the_fast_road_answers_as_the_full_road(server: BackgroundServer, picks: list[int]) -> None:
    bodies = [BODIES[pick] for pick in picks]
    assert answers(server, bodies, log=0) == answers(server, bodies, log=None)


def test_a_repeated_request_is_not_parsed_again(
    server: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    build = app_module.build_request

    def counting(http: object, body: bytes, max_depth: int = 128) -> object:
        parsed.append(body)
        return build(http, body, max_depth)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "build_request", counting)
    server.state.use(Player(Library(EXCHANGES), log=0, allow_repeats=True))
    bodies = [rawhttp.request(server.url, CHAT, chat("hello")).body for _ in range(3)]
    assert bodies == [NONSTREAM_BODY] * 3
    assert len(parsed) == 1
    # A player that keeps requests takes the full road every time: it keeps them parsed.
    server.state.use(Player(Library(EXCHANGES), allow_repeats=True))
    for _ in range(2):
        rawhttp.request(server.url, CHAT, chat("hello"))
    assert len(parsed) == 3
    assert [r.json for r in server.state.player.requests] == [chat("hello")] * 2


def test_faults_apply_to_known_requests(server: BackgroundServer) -> None:
    server.state.use(Player(Library(EXCHANGES), log=0, allow_repeats=True))
    stream = chat("stream please", stream=True)
    assert rawhttp.request(server.url, CHAT, stream).body == STREAM_BODY  # now known
    asked = rawhttp.request(
        server.url, CHAT, stream, headers={"x-tapedeck-fault": "status:code=429"}
    )
    assert asked.status == 429
    server.state.faults.queue(parse("status:code=503"))
    assert rawhttp.request(server.url, CHAT, stream).status == 503
    assert rawhttp.request(server.url, CHAT, stream).body == STREAM_BODY  # used up
