"""Paced replay: recorded offsets scaled by the speed, synthesized streams by a profile.

Only lower bounds are asserted (a deadline is never early); how close replay comes to the
recorded gaps is measured by benchmarks/pacing.py, not asserted here."""

from __future__ import annotations

import json
import time

import pytest

from mockserver.dialects import DIALECTS
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script, Timing
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from mockserver.timing import Profile, deadlines
from tests import rawhttp

BODY = {"model": "m", "messages": [{"role": "user", "content": "pace"}], "stream": True}


def paced_exchange(gap: float = 0.05) -> Exchange:
    request = Request("POST", "/v1/chat/completions", body=json.dumps(BODY).encode(), json=BODY)
    response = DIALECTS["openai_chat"].synthesize(request, Script(text="abcdefgh", chunk_size=4))
    frames = sse.frames(response.body)
    offsets = tuple(gap + gap * n for n in range(len(frames)))
    return Exchange(request, response, timing=Timing(headers=gap / 2, events=offsets))


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_recorded_offsets_are_honoured_at_a_speed(speed: float) -> None:
    exchange = paced_exchange()
    assert exchange.timing is not None
    with BackgroundServer(Library([exchange])) as server:
        server.state.speed = speed
        started = time.monotonic()
        reply = rawhttp.request(server.url, "/v1/chat/completions", BODY)
        elapsed = time.monotonic() - started
    assert reply.body == exchange.response.body
    assert reply.chunks == list(sse.frames(exchange.response.body))
    assert elapsed >= exchange.timing.events[-1] / speed


def test_speed_zero_ignores_the_recorded_timing() -> None:
    exchange = paced_exchange(gap=60.0)  # paced, this would take minutes
    assert exchange.timing is not None
    with BackgroundServer(Library([exchange])) as server:
        assert server.state.speed == 0
        started = time.monotonic()
        rawhttp.request(server.url, "/v1/chat/completions", BODY)
        assert time.monotonic() - started < exchange.timing.events[-1]


def test_a_profile_paces_synthesized_streams() -> None:
    profile = Profile(ttft=0.1, tokens_per_second=50, jitter=0.2, seed=3)
    with BackgroundServer(Library(())) as server:
        server.state.use(Player(Library(()), synthesize=True))
        server.state.profile = profile
        started = time.monotonic()
        reply = rawhttp.request(server.url, "/v1/chat/completions", BODY)
        elapsed = time.monotonic() - started
    assert reply.chunks is not None
    timing = profile.timing(len(reply.chunks))
    assert elapsed >= timing.events[-1]


def test_profiles_are_seeded_and_parsed() -> None:
    profile = Profile.parse("ttft=0.25,tps=20,jitter=0.5,seed=9")
    assert profile == Profile(ttft=0.25, tokens_per_second=20, jitter=0.5, seed=9)
    first, second = profile.timing(10), profile.timing(10)
    assert first == second
    assert first.events[0] == 0.25
    gaps = [b - a for a, b in zip(first.events, first.events[1:], strict=False)]
    assert all(0.025 <= gap <= 0.075 for gap in gaps)  # 1/20 s, +-50%
    with pytest.raises(ValueError, match="unknown profile field 'speed'"):
        Profile.parse("speed=2")
    with pytest.raises(ValueError, match="tokens_per_second > 0"):
        Profile(tokens_per_second=0)


def test_a_timing_that_does_not_fit_the_frames_is_not_used() -> None:
    assert deadlines(Timing(0.0, (0.1, 0.2)), frames=3, speed=1.0) is None
    assert deadlines(Timing(0.0, (0.1, 0.2)), frames=2, speed=0.0) is None
    schedule = deadlines(Timing(0.1, (0.1, 0.2)), frames=2, speed=2.0)
    assert schedule is not None
    assert (schedule.headers, schedule.events) == (0.05, 2)
    assert (schedule.at(0), schedule.at(1)) == (0.05, 0.1)
