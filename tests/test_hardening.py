"""Bad input never gets a 500: JSON nested too deep, a Content-Encoding that lies or that
the server cannot decode, a decompression bomb, HTTP broken before any route is known.
Each is answered in the shape of the dialect the request line names (Tapedeck's own shape
where none applies), with one line in the log and no traceback; the server goes on."""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.app import ServerState
from mockserver.dialects import RECIPES, ROUTER
from mockserver.index import Library
from mockserver.intake import nesting_depth
from mockserver.model import Exchange, Request, Response
from mockserver.player import Player
from mockserver.server_limits import DEFAULT_MAX_DEPTH, MAX_DEPTH_CEILING, ServerLimits
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.error_shapes import OWN_SKELETON, check_error, exchange, skeleton

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
ANSWER = b'{"id":"c1","object":"chat.completion","choices":[]}'
LIBRARY = Library(
    [
        Exchange(
            Request("POST", CHAT, body=json.dumps(HELLO).encode(), json=HELLO),
            Response(200, (("content-type", "application/json"),), ANSWER, "OK"),
            "hello.yaml#0",
        )
    ]
)


def _one_path_per_dialect() -> dict[str, str]:
    paths: dict[str, str] = {}
    for recipe in RECIPES:
        match = ROUTER.resolve(recipe.method, unquote(urlsplit(recipe.path).path))
        assert match is not None, recipe.path
        paths.setdefault(match.dialect.name, recipe.path)
    return paths


PATHS = _one_path_per_dialect()


def replaying() -> ServerState:
    return ServerState(Player(LIBRARY, allow_repeats=True))


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(replaying()) as running:
        yield running


def assert_shaped(reply: rawhttp.RawResponse, target: str, method: str = "POST") -> None:
    problem = check_error(reply, method, target)
    assert problem is None, problem


def message_of(reply: rawhttp.RawResponse) -> str:
    """The error message, wherever the dialect's shape keeps it."""
    return json.dumps(reply.json())


# --- JSON nesting -----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", sorted(PATHS))
def test_deep_json_is_a_400_in_the_dialect_s_shape_logged_in_one_line(
    server: BackgroundServer, dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = PATHS[dialect]
    caplog.set_level(logging.INFO)
    reply = rawhttp.request(server.url, target, b"[" * 500 + b"]" * 500)
    assert reply.status == 400
    assert_shaped(reply, target)
    message = message_of(reply)
    assert "500 levels deep" in message and f"at most {DEFAULT_MAX_DEPTH}" in message
    assert "--max-json-depth" in message
    records = [r for r in caplog.records if "500 levels" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert all(r.exc_info is None for r in caplog.records)
    assert sum(len(r.getMessage()) for r in caplog.records) < 2000  # was ~90 KB a request
    assert rawhttp.request(server.url, CHAT, HELLO).status == 200


def test_deep_json_inside_an_object_and_inside_strings(server: BackgroundServer) -> None:
    deep = b'{"model": "m", "messages": [{"content": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    reply = rawhttp.request(server.url, CHAT, deep)
    assert reply.status == 400 and "5003 levels deep" in message_of(reply)
    # Brackets inside strings are text, not nesting: this is a plain miss.
    text = {**HELLO, "messages": [{"role": "user", "content": "[" * 5000}]}
    reply = rawhttp.request(server.url, CHAT, text)
    assert reply.status == 400 and "no recording" in message_of(reply)


def test_the_nesting_limit_is_configurable_and_named() -> None:
    with BackgroundServer(replaying(), server_limits=ServerLimits(max_json_depth=4)) as running:
        # metadata does not take part in matching: 4 levels deep, read and answered
        four = {**HELLO, "metadata": {"a": {"b": {"c": 1}}}}
        assert rawhttp.request(running.url, CHAT, four).status == 200
        deeper = {**HELLO, "metadata": {"a": {"b": {"c": [1]}}}}
        reply = rawhttp.request(running.url, CHAT, deeper)
        assert reply.status == 400
        assert "5 levels deep" in message_of(reply) and "at most 4" in message_of(reply)


def test_limits_refuse_values_that_cannot_work() -> None:
    with pytest.raises(ValueError, match=f"max_json_depth wants 1 to {MAX_DEPTH_CEILING}"):
        ServerLimits(max_json_depth=MAX_DEPTH_CEILING + 1)
    with pytest.raises(ValueError, match="read_timeout wants seconds above 0"):
        ServerLimits(read_timeout=0)
    with pytest.raises(ValueError, match="max_connections wants 1 or more"):
        ServerLimits(max_connections=0)


def _depth(value: object) -> int:
    """The reference: nesting of a parsed value, walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            stack.extend(
                (inner, level) for inner in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ ab\n,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text('[]{}"\\a'), inner, max_size=3)
    ),
    max_leaves=30,
)


@given(JSON, st.booleans(), st.sampled_from([None, 2]))
def test_nesting_depth_reads_json_text_as_the_parser_does(
    value: object, ascii_only: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert nesting_depth(text) == _depth(value)


def test_nesting_depth_is_linear_on_hostile_text() -> None:
    # A quote then a million escaped quotes, never closed: a backtracking regex would
    # take hours here (quadratic); the scan must take well under a second.
    started = time.perf_counter()
    assert nesting_depth(b'"' + b'\\"' * 1_000_000 + b"[[[") == 0
    assert nesting_depth(b"[" * 1_000_000) == 1_000_000
    assert time.perf_counter() - started < 2.0


# --- Content-Encoding -------------------------------------------------------------------


def _send(url: str, body: bytes, coding: str, target: str = CHAT) -> rawhttp.RawResponse:
    return rawhttp.request(url, target, body, headers={"Content-Encoding": coding})


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("dialect", sorted(PATHS))
def test_a_body_that_does_not_decode_is_a_400_naming_the_coding(
    server: BackgroundServer, dialect: str, coding: str
) -> None:
    target = PATHS[dialect]
    reply = _send(server.url, b'{"model": "m"}', coding, target)
    assert reply.status == 400
    assert_shaped(reply, target)
    assert f"Content-Encoding '{coding}'" in message_of(reply)
    assert rawhttp.request(server.url, CHAT, HELLO).status == 200


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),  # RFC 9110's deflate: zlib-wrapped
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw, as some clients send
        ("identity", lambda data: data),
    ],
)
def test_an_encoded_body_is_decoded_and_matched(
    server: BackgroundServer, coding: str, encode: object
) -> None:
    assert callable(encode)
    reply = _send(server.url, encode(json.dumps(HELLO).encode()), coding)
    assert (reply.status, reply.body) == (200, ANSWER)


@pytest.mark.parametrize("coding", ["x-gzip", "compress", "zork", "gzip, gzip", "gzip, identity"])
def test_a_coding_not_decoded_is_a_415_listing_those_that_are(
    server: BackgroundServer, coding: str
) -> None:
    reply = _send(server.url, gzip.compress(json.dumps(HELLO).encode()), coding)
    assert reply.status == 415
    assert_shaped(reply, CHAT)
    assert "gzip, deflate" in message_of(reply) and "identity" in message_of(reply)


@pytest.mark.parametrize(("coding", "module"), [("br", "brotli"), ("zstd", "backports.zstd")])
def test_br_and_zstd_are_decoded_when_installed_else_a_415(
    server: BackgroundServer, coding: str, module: str
) -> None:
    installed = importlib.util.find_spec(module.split(".")[0]) is not None
    if coding == "zstd":
        installed = installed and importlib.util.find_spec(module) is not None
    if installed:
        codec = importlib.import_module(module)
        reply = _send(server.url, codec.compress(json.dumps(HELLO).encode()), coding)
        assert (reply.status, reply.body) == (200, ANSWER)
    else:
        # aiohttp refuses it while parsing the head, before any route: still the dialect's
        # shape (the request line names it), and a 415.
        reply = _send(server.url, b"\x00\x01", coding)
        assert reply.status == 415
        assert_shaped(reply, CHAT)
        assert "gzip, deflate" in message_of(reply)


def test_a_decompression_bomb_stops_at_the_body_limit() -> None:
    bomb = gzip.compress(b" " * (256 * 1024 * 1024), compresslevel=9)  # 256 MB as ~250 KB
    assert len(bomb) < 1024 * 1024
    with BackgroundServer(replaying(), server_limits=ServerLimits(max_body=1024 * 1024)) as running:
        tracemalloc.start()
        try:
            started = time.perf_counter()
            reply = _send(running.url, bomb, "gzip")
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert reply.status == 413
        assert_shaped(reply, CHAT)
        message = message_of(reply)
        assert "1048576 bytes" in message and "after Content-Encoding" in message
        assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB held to refuse a bomb"
        assert elapsed < 5
        assert rawhttp.request(running.url, CHAT, HELLO).status == 200


# --- HTTP broken before routing ---------------------------------------------------------

HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
BROKEN = {
    "header without colon": HEAD + b"Bad Header\r\n\r\n",
    "bad header name": HEAD + b"Ba(d: y\r\n\r\n",
    "nul in a header": HEAD + b"X-A: a\x00b\r\n\r\n",
    "header over 8 KB": HEAD + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
    "too many headers": HEAD + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
    "bad content-length": HEAD + b"Content-Length: abc\r\n\r\n{}",
    "two content-lengths": HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "length and chunked": HEAD
    + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "chunk without crlf": HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    "unknown transfer coding": HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
    "bad version": b"POST /v1/messages HTTP/9.9\r\nHost: x\r\n\r\n",
    "lf line ends": b"POST /v1/messages HTTP/1.1\nHost: x\n\n",
}
UNROUTED = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "bad method": (b"G@T /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "tls on the http port": (bytes.fromhex("16030102000100"), 400),
    "url over 8 KB": (b"POST /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    "asterisk": (b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_http_with_a_known_route_gets_that_dialect_s_shape(
    server: BackgroundServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (reply,) = exchange(server.url, BROKEN[case])
    assert reply.status == 400
    assert_shaped(reply, "/v1/messages")
    assert "could not read this HTTP request" in message_of(reply)
    assert all(r.exc_info is None for r in caplog.records)
    assert rawhttp.request(server.url, CHAT, HELLO).status == 200


@pytest.mark.parametrize("case", sorted(UNROUTED))
def test_broken_http_without_a_route_gets_tapedeck_s_own_shape(
    server: BackgroundServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data, status = UNROUTED[case]
    (reply,) = exchange(server.url, data)
    assert reply.status == status
    assert skeleton(reply.json()) == OWN_SKELETON
    assert reply.header("content-type") == "application/json; charset=utf-8"
    assert all(r.exc_info is None for r in caplog.records)


def test_a_bad_chunk_after_the_head_was_handled_is_a_400_in_the_dialect_s_shape(
    server: BackgroundServer,
) -> None:
    # Expect: 100-continue makes the server take the head in on its own and say so before
    # the client sends the broken chunk: the error then comes while the body is read.
    head = HEAD + b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"2\r\n{}\r\nzz\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    reply = rawhttp.parse(received)
    assert reply.status == 400
    assert_shaped(reply, "/v1/messages")
    assert "could not be read as its headers frame it" in message_of(reply)
