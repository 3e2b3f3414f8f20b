"""The pacer: every paced stream of a server written from one timer, on time and in order.

Through a real server on loopback (raw sockets see every chunk as it arrives), and the
pacer alone on socket pairs for the properties. Only lower bounds on time are asserted
(an event never leaves before its deadline); how close to it, under load, is measured by
benchmarks/pacing.py --load. Paces are a millisecond or so, to keep the suite fast."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.app import ServerState
from mockserver.dialects import DIALECTS
from mockserver.framing import sse
from mockserver.framing.http import chunked
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script, Timing
from mockserver.pacer import Pacer
from mockserver.player import Player
from mockserver.server_limits import ServerLimits
from mockserver.server_thread import BackgroundServer
from mockserver.timing import Schedule
from tests import rawhttp

BODY = {"model": "m", "messages": [{"role": "user", "content": "pace"}], "stream": True}
CHAT = "/v1/chat/completions"


def paced_exchange(text: str, offsets: Callable[[int], float], content: str = "pace") -> Exchange:
    body = {**BODY, "messages": [{"role": "user", "content": content}]}
    request = Request("POST", CHAT, body=json.dumps(body).encode(), json=body)
    response = DIALECTS["openai_chat"].synthesize(request, Script(text=text, chunk_size=4))
    frames = sse.frames(response.body)
    events = tuple(offsets(number) for number in range(len(frames)))
    return Exchange(request, response, timing=Timing(headers=0.001, events=events))


def request_bytes(content: str = "pace", version: str = "1.1") -> bytes:
    body = json.dumps({**BODY, "messages": [{"role": "user", "content": content}]}).encode()
    return (
        f"POST {CHAT} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def timed_read(sock: socket.socket) -> list[tuple[float, bytes]]:
    """Every recv() until the server closes, with the monotonic time it returned at."""
    seen = []
    while data := sock.recv(65536):
        seen.append((time.monotonic(), data))
    return seen


def chunk_times(seen: list[tuple[float, bytes]]) -> list[float]:
    """The time each HTTP chunk of the body was complete (the body's chunks, in order)."""
    raw = b"".join(data for _, data in seen)
    ends, at = [], raw.index(b"\r\n\r\n") + 4
    while True:
        line_end = raw.index(b"\r\n", at)
        size = int(raw[at:line_end], 16)
        if size == 0:
            break
        at = line_end + 2 + size + 2
        ends.append(at)
    times, received, index = [], 0, 0
    for when, data in seen:
        received += len(data)
        while index < len(ends) and ends[index] <= received:
            times.append(when)
            index += 1
    return times


def test_each_event_leaves_at_its_deadline_in_order() -> None:
    # Irregular gaps (1 to 4 ms), as a model's are.
    exchange = paced_exchange("one two three four five six", lambda n: 0.001 * sum(
        1 + k % 4 for k in range(n + 1)))  # fmt: skip
    assert exchange.timing is not None
    frames = sse.frames(exchange.response.body)
    state = ServerState(Player(Library([exchange])), speed=1.0)
    with BackgroundServer(state) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sent = time.monotonic()
            sock.sendall(request_bytes())
            seen = timed_read(sock)
        assert state.pacer.streams == 0
        lateness = state.pacer.lateness()
    reply = rawhttp.parse(b"".join(data for _, data in seen))
    assert reply.status == 200
    assert reply.chunks == list(frames)  # one chunk per event, in order
    arrived = chunk_times(seen)
    assert len(arrived) == len(frames)
    for when, offset in zip(arrived, exchange.timing.events, strict=True):
        assert when - sent >= offset  # never before its deadline
    assert lateness.events == len(frames)


def test_many_streams_interleave_and_each_gets_its_own_bytes() -> None:
    # Two recordings with different paces, eight clients of each at once.
    fast = paced_exchange("a b c d e f g h", lambda n: 0.001 * (n + 1), content="fast")
    slow = paced_exchange("i j k l", lambda n: 0.003 * (n + 1), content="slow")
    state = ServerState(Player(Library([fast, slow]), allow_repeats=True), speed=1.0)
    replies: dict[str, list[bytes]] = {"fast": [], "slow": []}
    lock = threading.Lock()

    def client(content: str) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request_bytes(content))
            raw = b"".join(data for _, data in timed_read(sock))
        with lock:
            replies[content].append(raw)

    with BackgroundServer(state) as server:
        port = int(server.url.rsplit(":", 1)[1])
        threads = [threading.Thread(target=client, args=(name,)) for name in ("fast", "slow") * 8]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert state.pacer.streams == 0
        written = state.pacer.lateness().events
    for name, exchange in (("fast", fast), ("slow", slow)):
        assert len(replies[name]) == 8
        for raw in replies[name]:
            reply = rawhttp.parse(raw)
            assert reply.chunks == list(sse.frames(exchange.response.body))
    assert written == 8 * len(sse.frames(fast.response.body)) + 8 * len(
        sse.frames(slow.response.body)
    )


def test_a_client_that_leaves_mid_stream_frees_its_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 40 events 20 ms apart: the client leaves after the first, long before the last.
    exchange = paced_exchange("x" * 4 * 37, lambda n: 0.002 + 0.02 * n)
    frames = sse.frames(exchange.response.body)
    state = ServerState(Player(Library([exchange])), speed=1.0)
    ended = threading.Event()
    outcomes: list[bool] = []
    play = state.pacer.play

    def watched(*args: object) -> asyncio.Future[bool]:
        # On the server's loop: the stream's future, told to wake this thread when it
        # ends (after the pacer's own callback, which drops the stream).
        done = play(*args)  # type: ignore[arg-type]

        def tell(future: asyncio.Future[bool]) -> None:
            outcomes.append(future.result())
            ended.set()

        done.add_done_callback(tell)
        return done

    monkeypatch.setattr(state.pacer, "play", watched)
    with BackgroundServer(state) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request_bytes())
            received = b""
            while b"data:" not in received:  # the headers, then the first event
                received += sock.recv(65536)
            assert state.pacer.streams == 1
        # The pacer sees the closed connection at the stream's next deadline (20 ms).
        assert ended.wait(timeout=5)
        assert outcomes == [False]  # ended by the client leaving, not by the last event
        assert state.pacer.streams == 0
        assert state.pacer.lateness().events < len(frames)


def test_an_http_10_client_gets_the_frames_unchunked_at_the_pace() -> None:
    exchange = paced_exchange("one two three", lambda n: 0.003 * (n + 1))
    assert exchange.timing is not None
    state = ServerState(Player(Library([exchange])), speed=1.0)
    with BackgroundServer(state) as server:
        started = time.monotonic()
        reply = rawhttp.request(server.url, CHAT, BODY, version="HTTP/1.0")
        elapsed = time.monotonic() - started
        assert state.pacer.lateness().events == len(sse.frames(exchange.response.body))
    assert reply.status == 200 and reply.chunks is None
    assert reply.body == exchange.response.body
    assert elapsed >= exchange.timing.events[-1]


def test_a_kept_alive_connection_serves_the_next_request_after_a_paced_stream() -> None:
    exchange = paced_exchange("one two", lambda n: 0.001 * (n + 1))
    state = ServerState(Player(Library([exchange]), allow_repeats=True), speed=1.0)
    with BackgroundServer(state) as server:
        connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
        bodies, sockets = [], []
        for _ in range(2):
            connection.request("POST", CHAT, json.dumps(BODY), {"content-type": "application/json"})
            answer = connection.getresponse()
            assert answer.status == 200
            bodies.append(answer.read())
            sockets.append(connection.sock)
        connection.close()
        assert sockets[0] is not None and sockets[0] is sockets[1]  # one connection for both
        assert state.pacer.lateness().events == 2 * len(sse.frames(exchange.response.body))
    assert bodies == [exchange.response.body] * 2


def test_a_stream_in_flight_gets_the_shutdown_timeout_then_is_dropped() -> None:
    exchange = paced_exchange("slow", lambda n: 0.002 + 10.0 * n)  # 10 s between events
    state = ServerState(Player(Library([exchange])), speed=1.0)
    server = BackgroundServer(state, server_limits=ServerLimits(shutdown_timeout=0.1)).start()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes())
        received = b""
        while b"data:" not in received:
            received += sock.recv(65536)
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
        sock.settimeout(5)
        while sock.recv(65536):  # closed by the server, not left hanging
            pass
    assert stopped < 5
    assert state.pacer.streams == 0


# The pacer alone: a transport on one end of a socket pair, the bytes read at the other.


async def play_all(
    streams: Sequence[tuple[Sequence[bytes], Timing, bool]], pacer: Pacer
) -> list[bytes]:
    """Each stream played to its own socket pair at once; what each reader received."""
    loop = asyncio.get_running_loop()
    pairs = [socket.socketpair() for _ in streams]
    played, transports = [], []
    start = loop.time()
    for (frames, timing, chunk_coded), (ours, _) in zip(streams, pairs, strict=True):
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        assert isinstance(transport, asyncio.WriteTransport)
        transports.append(transport)
        wire = chunked(frames) if chunk_coded else None
        played.append(pacer.play(transport, frames, Schedule(timing, 1.0), start, wire))
    assert all(await asyncio.gather(*played))
    for transport in transports:
        transport.close()  # after what it still buffers
    received = []
    for _, theirs in pairs:
        with theirs:
            theirs.setblocking(False)
            got = b""
            while data := await loop.sock_recv(theirs, 65536):
                got += data
            received.append(got)
    return received


frame_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=12)


@st.composite
def paced_streams(draw: st.DrawFn) -> tuple[list[bytes], Timing, bool]:
    frames = draw(frame_lists)
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0005, 0.001]), min_size=len(frames),
                         max_size=len(frames)))  # fmt: skip
    offsets = tuple(sum(gaps[: number + 1]) for number in range(len(frames)))
    return frames, Timing(0.0, offsets), draw(st.booleans())


@settings(max_examples=25, deadline=None)
@given(st.lists(paced_streams(), min_size=1, max_size=4))
def test_any_timings_send_every_stream_whole_and_in_order(
    streams: list[tuple[list[bytes], Timing, bool]],
) -> None:
    pacer = Pacer()
    received = asyncio.run(play_all(streams, pacer))
    for (frames, _, chunk_coded), got in zip(streams, received, strict=True):
        assert got == (chunked(frames) if chunk_coded else b"".join(frames))
    assert pacer.streams == 0
    assert pacer.lateness().events == sum(len(frames) for frames, _, _ in streams)


def test_lateness_is_counted_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    """A loop too busy to keep the pace: the events leave late, and the pacer says so."""
    caplog.set_level(logging.WARNING, logger="tapedeck")
    frames = [b"one", b"two", b"three", b"four"]
    timing = Timing(0.0, (0.001, 0.002, 0.003, 0.004))  # 1 ms gaps

    async def busy() -> list[bytes]:
        asyncio.get_running_loop().call_soon(time.sleep, 0.03)  # the loop blocked 30 ms
        return await play_all([(frames, timing, True)], pacer)

    pacer = Pacer(window=0.0)  # every wake-up closes a window
    assert asyncio.run(busy()) == [chunked(frames)]
    lateness = pacer.lateness()
    assert lateness.events == 4 and lateness.late >= 1
    assert lateness.worst >= 0.02  # blocked 30 ms; the last event was due 4 ms in
    assert pacer.last_window is not None and pacer.last_window.late >= 1
    assert "paced streams ran late" in caplog.text and "CPU-bound" in caplog.text


def test_an_unhurried_pacer_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tapedeck")
    pacer = Pacer(window=0.0)
    frames = [b"a", b"b", b"c"]
    # 100 ms gaps: late means more than 10 ms late, which a test machine rarely is.
    asyncio.run(play_all([(frames, Timing(0.0, (0.05, 0.15, 0.25)), False)], pacer))
    assert pacer.lateness().late == 0
    assert "ran late" not in caplog.text


def test_lateness_is_reported_at_most_once_a_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tapedeck")
    frames = [b"one", b"two"]
    timing = Timing(0.0, (0.001, 0.002))

    async def busy_twice() -> None:
        for _ in range(2):
            asyncio.get_running_loop().call_soon(time.sleep, 0.01)
            await play_all([(frames, timing, True)], pacer)

    pacer = Pacer()  # a 10 s window: neither late burst closes it
    asyncio.run(busy_twice())
    assert pacer.lateness().late >= 2
    assert pacer.last_window is None
    assert "ran late" not in caplog.text
