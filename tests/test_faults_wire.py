"""Every fault kind, for every dialect, on a replayed recording and on a synthesized answer,
seen on a raw socket: exactly the recorded bytes up to the fault point, then the fault.

The expected bytes come from the framing cutting the recorded body (the events a client
would see), never from the fault code."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.app import ServerState
from mockserver.dialects import DIALECTS, ROUTER
from mockserver.dialects.contract import Dialect, Recipe
from mockserver.faults import Faults, parse
from mockserver.framing import aws_eventstream
from mockserver.index import Library
from mockserver.model import Exchange, Script, Timing
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from mockserver.synth import synthesize
from pytest_plugin.strategies import faults


def _stream_recipe(dialect: Dialect, framing: str | None = None) -> Recipe:
    for recipe in dialect.recipes:
        exchange = synthesize(recipe.path, recipe.body, recipe.script, method=recipe.method)
        request = exchange.request
        frames = dialect.framing_for(request).frames(exchange.response.body)
        if (
            exchange.response.status == 200
            and dialect.is_stream(request)
            and len(frames) >= 4
            and framing in (None, dialect.framing_for(request).name)
        ):
            return recipe
    raise LookupError(dialect.name)


CASES = {name: _stream_recipe(d) for name, d in DIALECTS.items() if name != "openai_embeddings"}
CASES["gemini_json_array"] = _stream_recipe(DIALECTS["gemini"], "json_array")


@dataclass
class Seen:
    """What a raw client saw: the head, each complete chunk (with when its last byte
    arrived), whether the chunked body ended, and whether the connection was reset."""

    raw: bytes
    head: bytes
    chunks: list[bytes]
    arrivals: list[float]
    ended: bool
    reset: bool
    started: float

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(": ")
            if key.lower() == name:
                return value
        return None

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


def send(url: str, recipe: Recipe, fault: str | None) -> Seen:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(recipe.body).encode()
    head = [
        f"{recipe.method} {recipe.path} HTTP/1.1",
        f"Host: {host}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if fault is not None:
        head.append(f"x-tapedeck-fault: {fault}")
    pieces: list[tuple[float, bytes]] = []
    reset = False
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        try:
            while piece := sock.recv(65536):
                pieces.append((time.monotonic(), piece))
        except ConnectionResetError:
            reset = True
    raw = b"".join(p for _, p in pieces)
    return _parse(raw, pieces, reset, started)


def _parse(raw: bytes, pieces: list[tuple[float, bytes]], reset: bool, started: float) -> Seen:
    head, _, rest = raw.partition(b"\r\n\r\n")
    chunks: list[bytes] = []
    arrivals: list[float] = []
    ended = False
    offset = len(head) + 4
    if b"transfer-encoding: chunked" in head.lower():
        while b"\r\n" in rest:
            size_line, _, after = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                ended = True
                break
            if len(after) < size + 2:
                break  # an incomplete chunk: cut off
            chunks.append(after[:size])
            offset += len(size_line) + 2 + size + 2
            arrivals.append(_arrival(pieces, offset))
            rest = after[size + 2 :]
    return Seen(raw, head, chunks, arrivals, ended, reset, started)


def _arrival(pieces: list[tuple[float, bytes]], offset: int) -> float:
    seen = 0
    for at, piece in pieces:
        seen += len(piece)
        if seen >= offset:
            return at
    return pieces[-1][0]


def recorded_frames(recipe: Recipe, script: Script | None = None) -> tuple[bytes, ...]:
    exchange = synthesize(recipe.path, recipe.body, script or recipe.script, method=recipe.method)
    match = ROUTER.resolve(recipe.method, exchange.request.path)
    assert match is not None
    return match.dialect.framing_for(exchange.request).frames(exchange.response.body)


@pytest.fixture(scope="module")
def replay() -> Iterator[str]:
    exchanges = [synthesize(r.path, r.body, r.script, method=r.method) for r in CASES.values()]
    library = Library(Exchange(e.request, e.response, "faults.yaml#0") for e in exchanges)
    with BackgroundServer(ServerState(Player(library, allow_repeats=True))) as server:
        yield server.url


@pytest.fixture(scope="module")
def synthesizer() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as server:
        yield server


@pytest.fixture(scope="module")
def synthesized(synthesizer: BackgroundServer) -> str:
    return synthesizer.url


@pytest.fixture(params=["replay", "synthesized"])
def where(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(server URL, the Script its answers come from: the recipe's, or the default)."""
    url = request.getfixturevalue(request.param)
    return url, None if request.param == "replay" else Script()


def expected(recipe: Recipe, script: Script | None) -> tuple[bytes, ...]:
    return recorded_frames(recipe, script)


ALL = pytest.mark.parametrize("case", sorted(CASES))


def _dialect(case: str) -> Dialect:
    recipe = CASES[case]
    match = ROUTER.resolve(recipe.method, recipe.path.partition("?")[0])
    assert match is not None
    return match.dialect


@ALL
def test_no_fault_is_the_recorded_stream(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    seen = send(url, CASES[case], None)
    assert seen.chunks == list(expected(CASES[case], script)) and seen.ended


@ALL
def test_reset_after_three_events(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    seen = send(url, CASES[case], "reset:after=3")
    assert seen.reset, "a TCP reset (RST), not a clean close"
    assert seen.chunks == list(expected(CASES[case], script)[:3])
    assert not seen.ended


@ALL
def test_reset_before_the_status_line(case: str, where: tuple[str, Any]) -> None:
    seen = send(where[0], CASES[case], "reset:after=0")
    assert seen.reset and seen.raw == b""


@ALL
def test_truncate_ends_the_body_cleanly_after_three_events(
    case: str, where: tuple[str, Any]
) -> None:
    url, script = where
    seen = send(url, CASES[case], "truncate:after=3")
    assert not seen.reset and seen.ended
    assert seen.chunks == list(expected(CASES[case], script)[:3])


@ALL
def test_stall_pauses_before_the_event_then_goes_on(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    seen = send(url, CASES[case], "stall:before=2,seconds=0.3")
    assert seen.chunks == list(expected(CASES[case], script)) and seen.ended
    # The pause comes after the second event and before the third.
    assert seen.arrivals[2] - seen.started >= 0.3 > seen.arrivals[1] - seen.started


def test_stall_before_the_headers(where: tuple[str, Any]) -> None:
    seen = send(where[0], CASES["openai_chat"], "stall:before=0,seconds=0.3")
    assert seen.arrivals[0] - seen.started >= 0.3 and seen.ended


@ALL
def test_drip_delays_every_event(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    frames = expected(CASES[case], script)
    seen = send(url, CASES[case], "drip:gap=0.02")
    assert seen.chunks == list(frames) and seen.ended
    # Each event waits its gap on the server: the whole stream takes at least the sum of
    # them; measured on a busy client, single gaps jitter, their median does not.
    assert seen.arrivals[-1] - seen.started >= 0.02 * len(frames)
    gaps = sorted(b - a for a, b in zip(seen.arrivals, seen.arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.015


@ALL
def test_error_is_the_dialects_own_in_band_error(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    dialect = _dialect(case)
    seen = send(url, CASES[case], "error:after=2,message=boom-42")
    frames = expected(CASES[case], script)
    assert seen.chunks[:2] == list(frames[:2]) and seen.ended and not seen.reset
    in_band = b"".join(seen.chunks[2:])
    assert b"boom-42" in in_band
    request = synthesize(CASES[case].path, CASES[case].body, Script()).request
    framing = dialect.framing_for(request)
    if framing.name == "aws_eventstream":
        event = framing.parse(seen.chunks[2])
        assert aws_eventstream.headers(event)[":message-type"] == "exception"
    elif framing.name != "json_array":  # the array's element is not a frame on its own
        event = framing.parse(seen.chunks[2])
        assert event.data is not None and "boom-42" in json.dumps(json.loads(event.data))


@ALL
def test_corrupt_replaces_one_event_with_invalid_bytes(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    frames = expected(CASES[case], script)
    seen = send(url, CASES[case], "corrupt:at=1")
    assert seen.ended and len(seen.chunks) == len(frames)
    assert seen.chunks[0] == frames[0] and seen.chunks[2:] == list(frames[2:])
    assert seen.chunks[1] != frames[1]
    request = synthesize(CASES[case].path, CASES[case].body, Script()).request
    framing = _dialect(case).framing_for(request)
    if framing.name == "aws_eventstream":
        assert aws_eventstream.problem(framing.parse(seen.chunks[1])) is not None
    else:
        whole = b"".join(seen.chunks)
        with pytest.raises(ValueError):
            for event in framing.events(whole) if framing.name != "json_array" else ():
                if event.data and not event.data.startswith("[DONE"):
                    json.loads(event.data)
            if framing.name == "json_array":
                json.loads(whole)


@ALL
def test_split_cuts_events_across_chunks(case: str, where: tuple[str, Any]) -> None:
    url, script = where
    frames = expected(CASES[case], script)
    seen = send(url, CASES[case], "split:seed=7")
    assert b"".join(seen.chunks) == b"".join(frames) and seen.ended
    assert len(seen.chunks) > len(frames)
    again = send(url, CASES[case], "split:seed=7")
    assert again.chunks == seen.chunks  # seeded: the same cuts every time


@ALL
def test_status_429_is_the_dialects_error_with_retry_after(
    case: str, where: tuple[str, Any]
) -> None:
    seen = send(where[0], CASES[case], "status:code=429,retry_after=2")
    assert seen.status == 429 and seen.header("retry-after") == "2"
    assert not seen.chunks and seen.body  # an error answer, not a stream


def test_a_malformed_spec_is_a_400_naming_the_key(replay: str) -> None:
    seen = send(replay, CASES["anthropic"], "reset:aftr=3")
    assert seen.status == 400
    message = json.loads(seen.body)["error"]["message"]
    assert "'aftr'" in message and "truncate" in message and "after" in message


NONSTREAM = next(r for r in DIALECTS["openai_chat"].recipes if r.file.endswith("nonstream.yaml"))


@pytest.fixture(scope="module")
def plain() -> Iterator[tuple[str, bytes]]:
    exchange = synthesize(NONSTREAM.path, NONSTREAM.body, NONSTREAM.script)
    library = Library([Exchange(exchange.request, exchange.response, "plain.yaml#0")])
    with BackgroundServer(ServerState(Player(library, allow_repeats=True))) as server:
        yield server.url, exchange.response.body


def test_truncate_of_a_json_body_cuts_it_in_half(plain: tuple[str, bytes]) -> None:
    url, body = plain
    seen = send(url, NONSTREAM, "truncate:after=1")
    assert seen.body == body[: len(body) // 2]
    assert seen.header("content-length") == str(len(body) // 2)


def test_reset_of_a_json_body_after_its_first_half(plain: tuple[str, bytes]) -> None:
    url, body = plain
    seen = send(url, NONSTREAM, "reset:after=1")
    assert seen.reset and seen.body == body[: len(body) // 2]
    assert seen.header("content-length") == str(len(body))


def test_error_on_a_json_answer_is_a_500_error_answer(plain: tuple[str, bytes]) -> None:
    seen = send(plain[0], NONSTREAM, "error:message=boom")
    assert seen.status == 500 and json.loads(seen.body)["error"]["message"] == "boom"


def test_corrupt_of_a_json_body_is_not_json(plain: tuple[str, bytes]) -> None:
    url, body = plain
    seen = send(url, NONSTREAM, "corrupt:at=1")
    assert seen.body[: len(body) // 2] == body[: len(body) // 2]
    with pytest.raises(ValueError):
        json.loads(seen.body)


def test_a_paced_replay_keeps_its_pace_up_to_the_fault() -> None:
    recipe = CASES["anthropic"]
    exchange = synthesize(recipe.path, recipe.body, recipe.script)
    frames = recorded_frames(recipe)
    timing = Timing(0.0, tuple(0.1 * n for n in range(len(frames))))
    paced = Exchange(exchange.request, exchange.response, "paced.yaml#0", timing)
    state = ServerState(Player(Library([paced]), allow_repeats=True), speed=1.0)
    with BackgroundServer(state) as server:
        seen = send(server.url, recipe, "truncate:after=3")
    assert seen.chunks == list(frames[:3]) and seen.ended
    assert seen.arrivals[2] - seen.started >= 0.18  # the third event's recorded 0.2 s


@settings(max_examples=40, deadline=None)
@given(data=st.data(), case=st.sampled_from(sorted(CASES)))
def test_any_drawn_fault_is_served_as_it_says(
    synthesizer: BackgroundServer, data: Any, case: str
) -> None:
    synthesizer.state.faults = Faults()  # a header spec's times count afresh
    spec = data.draw(faults(_dialect(case)))
    fault = parse(spec)
    seen = send(synthesizer.url, CASES[case], spec)
    if fault.kind == "reset":
        assert seen.reset
        return
    assert b"Tapedeck failed" not in seen.raw
    assert seen.status == (fault.int("code") if fault.kind == "status" else 200)
    assert seen.ended or fault.kind == "status"
