"""Slow and idle clients cannot hold the server: a request head or body that trickles in
is answered 408 and closed after the read timeout, connections beyond the limit make room
or are refused (never accept()'s fds), and SIGTERM ends a loaded server promptly."""

from __future__ import annotations

import json
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest

from mockserver.app import ServerState
from mockserver.cli import bundled_cassettes, main
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response
from mockserver.player import Player
from mockserver.server_limits import ServerLimits
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.error_shapes import OWN_SKELETON, answers, check_error, skeleton

MESSAGES = "/v1/messages"
HELLO = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
ANSWER = b'{"type":"message","content":[]}'
LIBRARY = Library(
    [
        Exchange(
            Request("POST", MESSAGES, body=json.dumps(HELLO).encode(), json=HELLO),
            Response(200, (("content-type", "application/json"),), ANSWER, "OK"),
            "hi.yaml#0",
        )
    ]
)
READ_TIMEOUT = 0.5
WHOLE = (
    f"POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(json.dumps(HELLO))}\r\n\r\n{json.dumps(HELLO)}"
).encode()


def replaying() -> ServerState:
    return ServerState(Player(LIBRARY, allow_repeats=True))


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    limits = ServerLimits(read_timeout=READ_TIMEOUT, keepalive_timeout=30)
    with BackgroundServer(replaying(), server_limits=limits) as running:
        yield running


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def trickle(sock: socket.socket, data: bytes, within: float) -> tuple[bytes, float]:
    """Send ``data`` one byte every 0.1 s, reading meanwhile; what came back, and when
    the server closed (seconds), once it does or ``within`` has passed."""
    started = time.monotonic()
    received = b""
    for byte in [data[i : i + 1] for i in range(len(data))] + [b""] * int(within * 10):
        if byte:
            try:
                sock.sendall(byte)
            except (BrokenPipeError, ConnectionResetError):
                break
        if select.select([sock], [], [], 0.1)[0]:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        if time.monotonic() - started > within:
            break
    return received, time.monotonic() - started


def test_a_trickling_head_gets_a_408_in_the_dialect_s_shape_and_is_closed(
    server: BackgroundServer,
) -> None:
    with connect(server.url) as sock:
        sock.sendall(f"POST {MESSAGES} HTTP/1.1\r\n".encode())  # names the dialect
        received, closed_after = trickle(sock, f"Host: x\r\nX-Slow: {'a' * 100}".encode(), 5)
    assert READ_TIMEOUT * 0.9 < closed_after < READ_TIMEOUT + 1.5  # the trickle went on
    (reply,) = answers(received)
    assert reply.status == 408
    assert check_error(reply, "POST", MESSAGES) is None
    assert rawhttp.request(server.url, MESSAGES, HELLO).status == 200


def test_a_silent_connection_is_closed_without_an_answer(server: BackgroundServer) -> None:
    with connect(server.url) as sock:
        received, closed_after = trickle(sock, b"", within=5)
    assert received == b"" and closed_after < READ_TIMEOUT + 1.5


def test_a_trickling_body_gets_a_408_and_is_closed(server: BackgroundServer) -> None:
    head, _, body = WHOLE.partition(b"\r\n\r\n")
    with connect(server.url) as sock:
        sock.sendall(head + b"\r\n\r\n")
        received, closed_after = trickle(sock, body, within=5)
    assert closed_after < READ_TIMEOUT + 1.5 < len(body) * 0.1
    (reply,) = answers(received)
    assert reply.status == 408
    assert check_error(reply, "POST", MESSAGES) is None
    assert reply.header("x-should-retry") is None  # a retry, sent promptly, can work
    assert "--read-timeout" in reply.body.decode()


def test_a_kept_alive_connection_idles_quietly_then_times_its_next_head(
    server: BackgroundServer,
) -> None:
    with connect(server.url) as sock:
        sock.sendall(WHOLE)
        assert read_answer(sock).status == 200
        # Idle for longer than the read timeout: no stale answer comes, nothing closes.
        assert select.select([sock], [], [], READ_TIMEOUT * 3)[0] == []
        sock.sendall(WHOLE)
        assert read_answer(sock).status == 200
        # The next head trickles: its own deadline runs from its first byte.
        received, closed_after = trickle(sock, WHOLE[:40], within=5)
    assert answers(received)[0].status == 408
    assert closed_after < READ_TIMEOUT + 1.5


def test_the_keepalive_timeout_closes_an_idle_connection() -> None:
    limits = ServerLimits(keepalive_timeout=0.3)
    with (
        BackgroundServer(replaying(), server_limits=limits) as running,
        connect(running.url) as sock,
    ):
        sock.sendall(WHOLE)
        assert read_answer(sock).status == 200
        started = time.monotonic()
        assert select.select([sock], [], [], 5)[0]
        assert sock.recv(100) == b""  # closed, with no answer
        assert time.monotonic() - started < 2


def test_at_the_connection_limit_the_longest_idle_connection_makes_room() -> None:
    # The default read timeout (30 s): only making room can close a connection here.
    limits = ServerLimits(max_connections=4)
    with BackgroundServer(replaying(), server_limits=limits) as running, ExitStack() as stack:
        idle = [stack.enter_context(connect(running.url)) for _ in range(4)]
        reply = rawhttp.request(running.url, MESSAGES, HELLO)  # a fifth
        assert reply.status == 200
        assert idle[0].recv(100) == b""  # the oldest was closed, silently
        assert select.select(idle[1:], [], [], 0.2)[0] == []  # the others stay


def test_at_the_connection_limit_with_every_connection_busy_a_503() -> None:
    limits = ServerLimits(max_connections=4)
    with BackgroundServer(replaying(), server_limits=limits) as running, ExitStack() as stack:
        busy = []
        for _ in range(4):  # mid-request: each waits for 100-continue, then for its body
            busy.append(stack.enter_context(connect(running.url)))
            busy[-1].sendall(expecting(WHOLE))
            assert busy[-1].recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        reply = rawhttp.parse(_exchange_raw(running.url, WHOLE))
        assert reply.status == 503
        assert skeleton(reply.json()) == OWN_SKELETON
        assert "--max-connections" in reply.json()["error"]["message"]
        assert reply.header("x-should-retry") is None  # retrying shortly may work
        for sock in busy:  # each finishes its request and idles: room can be made again
            sock.sendall(WHOLE.partition(b"\r\n\r\n")[2])
            assert read_answer(sock).status == 200
        assert rawhttp.request(running.url, MESSAGES, HELLO).status == 200


def expecting(request: bytes) -> bytes:
    """The head of ``request`` asking for 100-continue: the server says when its handler
    has started, which tells the test that the request is in (no sleep)."""
    head = request.partition(b"\r\n\r\n")[0]
    return head + b"\r\nExpect: 100-continue\r\n\r\n"


def read_answer(sock: socket.socket) -> rawhttp.RawResponse:
    """One whole answer (framed by Content-Length) from a kept-alive connection."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
        head, sep, body = received.partition(b"\r\n\r\n")
        length = [
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ]
        if sep and length and len(body) >= int(length[0].split(b":")[1]):
            return answers(received)[0]


def _exchange_raw(url: str, data: bytes) -> bytes:
    with connect(url) as sock:
        sock.sendall(data)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# --- a real `tapedeck serve` ------------------------------------------------------------


@contextmanager
def serve(*options: str, nofile: int | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``tapedeck serve --port 0`` in a subprocess (optionally under an open-file limit);
    the process and its URL, read from the banner."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    command = [sys.executable, "-m", "mockserver", "serve", "--port", "0", *options]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Tapedeck serving"), banner + process.stderr.read()
        yield process, banner.rsplit(" at ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


CHAT = "/v1/chat/completions"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_slow_clients_past_the_open_file_limit_do_not_lock_out_requests() -> None:
    # 400 descriptors: before, 500 trickling connections ran accept() out of them and
    # every later request hung ("accept(): Too many open files").
    with serve("--synthesize", nofile=400) as (process, url), ExitStack() as stack:
        slow = [stack.enter_context(connect(url)) for _ in range(500)]
        for sock in slow:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        for _ in range(10):
            reply = rawhttp.request(url, CHAT, CHAT_BODY)
            assert reply.status == 200
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "Too many open files" not in process.stderr.read()  # type: ignore[union-attr]


def test_sigterm_ends_a_loaded_server_promptly_answering_those_mid_request() -> None:
    with serve("--synthesize") as (process, url), ExitStack() as stack:
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n".encode()
        mid_body = stack.enter_context(connect(url))
        mid_body.sendall(expecting(head))
        assert mid_body.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        mid_body.sendall(b'{"model": ')
        mid_head = stack.enter_context(connect(url))
        mid_head.sendall(head[:20])
        assert rawhttp.request(url, CHAT, CHAT_BODY).status == 200
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 3
        reply = rawhttp.parse(_read_all(mid_body))
        assert reply.status == 503
        assert check_error(reply, "POST", CHAT) is None
        assert "shutting down" in reply.body.decode()
        assert mid_head.recv(100) == b""


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--read-timeout", "0", "read_timeout wants seconds above 0"),
        ("--keepalive-timeout", "-1", "keepalive_timeout wants seconds above 0"),
        ("--max-connections", "0", "max_connections wants 1 or more"),
        ("--max-json-depth", "257", "max_json_depth wants 1 to 256"),
    ],
)
def test_serve_refuses_limits_that_cannot_work(
    option: str, value: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--cassettes", str(bundled_cassettes()), option, value]) == 2
    assert named in capsys.readouterr().err
