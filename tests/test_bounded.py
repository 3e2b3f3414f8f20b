"""Bounded cost per request: a miss on a huge body is explained from bounded windows and
matched off the event loop, so other clients keep being answered; a long-running server
keeps nothing per request unless a request log asks (then the last N); the key cache holds
recordings' keys only, least recently used out first."""

from __future__ import annotations

import asyncio
import difflib
import gc
import io
import json
import random
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mockserver import cassettes, misses
from mockserver.app import ServerState
from mockserver.dialects import resolve
from mockserver.errors import NoMatchingExchange
from mockserver.index import KeyCache, Library
from mockserver.model import Exchange, Request, Response
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from mockserver.timing import Profile
from tests import rawhttp

CHAT = "/v1/chat/completions"
ANSWER = b'{"id":"c","object":"chat.completion","choices":[]}'


def chat(content: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def recorded(content: str, source: str) -> Exchange:
    body = chat(content)
    raw = json.dumps(body).encode()
    request = Request("POST", CHAT, body=raw, json=body)
    return Exchange(request, Response(200, (("content-type", "application/json"),), ANSWER), source)


def request_of(content: str) -> Request:
    body = chat(content)
    return Request("POST", CHAT, body=json.dumps(body).encode(), json=body)


def noise(size: int, seed: int = 1) -> str:
    return "".join(random.Random(seed).choices("abcdefgh ", k=size))


def changed_in_the_middle(text: str) -> str:
    middle = len(text) // 2
    return text[:middle] + "Z" + text[middle + 1 :]


# --- a miss on a huge body ---------------------------------------------------------------


def test_a_huge_miss_is_explained_from_bounded_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """difflib's time grows with the square of its input: it must never see the whole of a
    4 MB value, and the explanation must still name the recording and the field."""
    big = noise(4_000_000)
    library = Library([recorded(big, "big.yaml#0"), recorded("short", "small.yaml#0")])
    compared: list[int] = []

    class Counting(difflib.SequenceMatcher):  # type: ignore[type-arg]
        def __init__(self, junk: Any, a: str, b: str) -> None:
            compared.extend((len(a), len(b)))
            super().__init__(junk, a, b)

    monkeypatch.setattr(misses.difflib, "SequenceMatcher", Counting)
    request = request_of(changed_in_the_middle(big))
    with pytest.raises(NoMatchingExchange) as raised:
        Player(library).next(request, resolve("POST", CHAT))  # type: ignore[arg-type]
    assert compared and max(compared) <= 2_000
    explanation = str(raised.value)
    lines = explanation.splitlines()
    assert lines[1:3] == ["Nearest recorded requests:", "  big.yaml#0 differs in:"]
    assert lines[3].startswith("    messages: recorded ")


def test_a_huge_miss_leaves_other_clients_answered(tmp_path: Any) -> None:
    """A 4 MB request that misses, while another client sends small requests that hit:
    every small request is answered, none waits on the huge one (before: the comparison
    held the event loop for seconds, and every other client with it)."""
    big = noise(4_000_000)
    library = Library([recorded(big, "big.yaml#0"), recorded("small", "small.yaml#0")])
    player = Player(library, allow_repeats=True)
    huge = json.dumps(chat(changed_in_the_middle(big))).encode()

    async def run(url: str) -> tuple[int, str, list[float]]:
        latencies: list[float] = []
        async with aiohttp.ClientSession() as session:

            async def miss() -> tuple[int, str]:
                async with session.post(url + CHAT, data=io.BytesIO(huge)) as answer:
                    return answer.status, await answer.text()

            async def hits() -> None:
                while not missing.done():
                    started = time.perf_counter()
                    async with session.post(url + CHAT, json=chat("small")) as answer:
                        assert answer.status == 200 and await answer.read() == ANSWER
                    latencies.append(time.perf_counter() - started)

            missing = asyncio.ensure_future(miss())
            await hits()
            status, text = await missing
        return status, text, latencies

    with BackgroundServer(ServerState(player)) as server:
        status, text, latencies = asyncio.run(run(server.url))
    assert status == 400 and "big.yaml#0 differs in" in text
    assert latencies, "no small request was answered while the huge one was handled"
    # Measured, not slept: a blocked loop shows as one small request waiting for seconds.
    assert max(latencies) < 1.0, f"a small request waited {max(latencies):.2f} s"


# --- nothing kept per request -------------------------------------------------------------


def test_a_player_without_a_log_keeps_nothing_and_a_log_keeps_the_last_n() -> None:
    library = Library([recorded("hello", "chat.yaml#0")])
    match = resolve("POST", CHAT)
    assert match is not None
    for log in (0, 3):
        player = Player(library, log=log)
        for number in range(5):
            request = request_of(f"miss {number}")
            with pytest.raises(NoMatchingExchange) as raised:
                player.next(request, match)
            player.note_miss(request, str(raised.value))
        expected = [f"miss {n}" for n in range(5)][5 - log :] if log else []
        assert [r.json["messages"][0]["content"] for r in player.requests] == expected
        assert [m.request.json["messages"][0]["content"] for m in player.misses] == expected
    with pytest.raises(ValueError, match=r"Player\.log is a number of requests >= 0"):
        Player(library, log=-1)


def test_the_key_cache_keeps_recordings_keys_only() -> None:
    library = Library([recorded("hello", "chat.yaml#0")])
    match = resolve("POST", CHAT)
    assert match is not None
    for number in range(50):
        library.key(request_of(f"miss {number} " + "x" * 1000), match)
    assert len(library._keys) == 0  # what is retained is the point
    key = library.key(request_of("hello"), match)
    assert len(library._keys) == 1 and key is library.entries[0].key
    assert library.key(request_of("hello"), match) is library.entries[0].key


def test_the_key_cache_forgets_the_least_recently_used() -> None:
    library = Library([recorded(word, f"chat.yaml#{n}") for n, word in enumerate("abc")])
    keys = [entry.key for entry in library.entries]
    cache = KeyCache(size=2)
    cache.put(b"a", keys[0])
    cache.put(b"b", keys[1])
    assert cache.get(b"a") is keys[0]  # now the most recent
    cache.put(b"c", keys[2])
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (keys[0], None, keys[2])
    assert len(cache) == 2


@pytest.fixture
def serving() -> Iterator[tuple[BackgroundServer, Player]]:
    """A server as ``tapedeck serve`` builds it: no request log."""
    player = Player(Library([recorded("hello", "chat.yaml#0")]), log=0)
    with BackgroundServer(ServerState(player)) as server:
        yield server, player


@pytest.mark.parametrize("synthesize", [False, True], ids=["misses", "synthesized"])
def test_serve_retains_nothing_across_distinct_large_misses(
    serving: tuple[BackgroundServer, Player], synthesize: bool
) -> None:
    """200 distinct 100 KB requests that match nothing: what the process holds afterwards
    does not grow with them (before: every body, twice: the miss list and the key cache)."""
    server, player = serving
    player.synthesize = synthesize
    filler = noise(100_000)

    async def send(url: str, first: int, count: int) -> None:
        async with aiohttp.ClientSession() as session:
            for number in range(first, first + count):
                body = chat(f"{number} {filler}")
                async with session.post(url + CHAT, json=body) as answer:
                    assert answer.status == (200 if synthesize else 400)
                    await answer.read()

    tracemalloc.start()
    try:
        asyncio.run(send(server.url, 0, 20))  # warm-up: buffers, caches, the allocator
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(send(server.url, 20, 200))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert (player.requests, player.misses, player.synthesized) == ([], [], [])
    assert len(player.library._keys) == 0
    assert grown < 2_000_000, f"{grown / 1e6:.1f} MB retained by 200 misses of 100 KB"


async def hang_up(port: int, count: int) -> None:
    """Clients that ask for a paced stream, read its status line, and leave."""

    async def one(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = json.dumps({**chat(f"paced {number}"), "stream": True}).encode()
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
        writer.write(head.encode() + data)
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one(number) for number in range(count)))


async def handlers_done() -> None:
    """Every request handler on this loop has returned (each at its next pacing deadline,
    where writing to the closed connection fails)."""
    me = asyncio.current_task()
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not me), return_exceptions=True)


def test_paced_clients_that_leave_leave_nothing_behind() -> None:
    """Before: each connection's protocol (its buffers, its request) stayed listed as
    waiting for a next request after its client had gone, for as long as the server ran."""
    profile = Profile(ttft=0.05, tokens_per_second=20)  # a 12-event stream: about 0.6 s
    state = ServerState(Player(Library(()), synthesize=True, log=0), profile=profile)
    with BackgroundServer(state) as server:
        port = int(server.url.rsplit(":", 1)[1])
        asyncio.run(hang_up(port, 50))
        asyncio.run_coroutine_threadsafe(handlers_done(), server._loop).result(timeout=30)
        gc.collect()
        left = [o for o in gc.get_objects() if isinstance(o, web.RequestHandler)]
        assert left == [], f"{len(left)} connections outlived their clients"
        assert state.player.synthesized == []


def test_serve_with_a_request_log_prints_the_last_misses_when_it_stops(tmp_path: Any) -> None:
    cassette = tmp_path / "one.yaml"
    cassettes.dump([recorded("hello", "")], cassette)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "mockserver", "serve", "--cassettes", str(cassette),
        "--port", str(port), "--request-log", "2",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().startswith("Tapedeck serving 1 recorded")
            for word in ("first", "second", "third"):
                answer = rawhttp.request(f"http://127.0.0.1:{port}", CHAT, chat(word))
                assert answer.status == 400
        finally:
            server.send_signal(signal.SIGINT)  # how a user stops it: aiohttp exits cleanly
            out, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    told = out[out.index("The last 2 request(s) that matched no recording:") :]
    assert '"content":"second"' in told and '"content":"third"' in told
    assert '"content":"first"' not in told
