"""The server on a real loopback socket: exact bytes, one chunk per event, and bad input
answered in the provider's shape while the server keeps serving."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator

import pytest

from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from tests import rawhttp

CHAT = "/v1/chat/completions"
STREAM_BODY = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"Hi \xf0\x9f\x99\x82"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def chat(content: str, *, stream: bool = False, model: str = "gpt-4o-mini") -> dict[str, object]:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return body


def exchange(
    body: dict[str, object],
    response: bytes,
    *,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (),
    source: str = "test.yaml#0",
) -> Exchange:
    raw = json.dumps(body).encode()
    return Exchange(
        Request("POST", CHAT, body=raw, json=body, origin="https://api.openai.com"),
        Response(status, headers, response, "OK"),
        source=source,
    )


NONSTREAM_BODY = json.dumps(
    {"id": "c2", "object": "chat.completion", "choices": [{"message": {"content": "plain"}}]}
).encode()

EXCHANGES = (
    exchange(
        chat("stream please", stream=True),
        STREAM_BODY,
        # Stale framing headers, as recorded by many projects: they must not be echoed.
        headers=(
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Content-Length", "3"),
            ("Transfer-Encoding", "chunked"),
            ("x-request-id", "req_1"),
        ),
        source="a.yaml#0",
    ),
    exchange(
        chat("hello"),
        NONSTREAM_BODY,
        headers=(("content-type", "application/json"),),
        source="a.yaml#1",
    ),
    exchange(chat("twice"), b'{"n":1}', source="a.yaml#2"),
    exchange(chat("twice"), b'{"n":2}', source="a.yaml#3"),
    exchange(chat("no headers", stream=True), STREAM_BODY, source="b.yaml#0"),
)
LIBRARY = Library(EXCHANGES)


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library(EXCHANGES)) as running:
        running.state.use(Player(LIBRARY))
        yield running


def test_a_stream_replays_byte_exact_one_chunk_per_event(server: BackgroundServer) -> None:
    reply = rawhttp.request(server.url, CHAT, chat("stream please", stream=True))
    assert reply.status == 200
    assert reply.body == STREAM_BODY
    assert reply.chunks == list(sse.frames(STREAM_BODY))
    assert len(reply.chunks) == 5
    assert reply.header("content-type") == "text/event-stream; charset=utf-8"
    assert reply.header("x-request-id") == "req_1"
    assert reply.header("content-length") is None


def test_a_stream_recorded_without_headers_gets_the_protocol_content_type(
    server: BackgroundServer,
) -> None:
    reply = rawhttp.request(server.url, CHAT, chat("no headers", stream=True))
    assert reply.header("content-type") == "text/event-stream"
    assert reply.chunks == list(sse.frames(STREAM_BODY))


def test_http10_clients_get_the_plain_body(server: BackgroundServer) -> None:
    reply = rawhttp.request(
        server.url, CHAT, chat("stream please", stream=True), version="HTTP/1.0"
    )
    assert reply.status == 200
    assert reply.chunks is None
    assert reply.body == STREAM_BODY


def test_non_streaming_answer_is_exact_with_a_true_length(server: BackgroundServer) -> None:
    reply = rawhttp.request(server.url, CHAT, chat("hello"))
    assert reply.status == 200
    assert reply.body == NONSTREAM_BODY
    assert reply.header("content-length") == str(len(NONSTREAM_BODY))


def test_the_short_route_without_v1_is_the_same_endpoint(server: BackgroundServer) -> None:
    reply = rawhttp.request(server.url, "/chat/completions", chat("hello"))
    assert reply.body == NONSTREAM_BODY


def test_key_order_and_whitespace_do_not_matter(server: BackgroundServer) -> None:
    body = b'{ "messages" : [ { "content": "hello", "role": "user" } ], "model": "gpt-4o-mini" }'
    reply = rawhttp.request(server.url, CHAT, body)
    assert reply.body == NONSTREAM_BODY


def test_identical_requests_replay_in_recorded_order_then_miss(server: BackgroundServer) -> None:
    first = rawhttp.request(server.url, CHAT, chat("twice"))
    second = rawhttp.request(server.url, CHAT, chat("twice"))
    third = rawhttp.request(server.url, CHAT, chat("twice"))
    assert (first.body, second.body) == (b'{"n":1}', b'{"n":2}')
    assert third.status == 400
    assert third.header("x-should-retry") == "false"
    message = third.json()["error"]["message"]
    assert "a.yaml#2, a.yaml#3" in message and "already played" in message
    assert "allow_repeats" in message


def test_allow_repeats_answers_again_with_the_last(server: BackgroundServer) -> None:
    server.state.use(Player(LIBRARY, allow_repeats=True))
    bodies = [rawhttp.request(server.url, CHAT, chat("twice")).body for _ in range(3)]
    assert bodies == [b'{"n":1}', b'{"n":2}', b'{"n":2}']


def test_a_miss_names_the_nearest_recordings_and_what_differed(server: BackgroundServer) -> None:
    reply = rawhttp.request(server.url, CHAT, chat("helo"))
    assert reply.status == 400
    assert reply.header("x-should-retry") == "false"
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    message = error["message"]
    assert "POST /v1/chat/completions (model 'gpt-4o-mini')" in message
    nearest = message.split("Nearest recorded requests:")[1]
    # one differing field, and the most similar value ("hello" vs "helo"), ranks first;
    # a.yaml#0 differs in two fields (messages and stream) and is not among the three
    assert nearest.splitlines()[1] == "  a.yaml#1 differs in:"
    assert nearest.splitlines()[2] == (
        '    messages: recorded [{"content":"hello","role":"user"}], '
        'got [{"content":"helo","role":"user"}]'
    )
    assert "a.yaml#0" not in nearest
    assert "Way out" in message
    assert server.state.player.misses[0].explanation == message


def test_a_miss_with_nothing_recorded_for_the_endpoint(server: BackgroundServer) -> None:
    server.state.use(Player(Library(())))
    reply = rawhttp.request(server.url, CHAT, chat("hello"))
    assert reply.status == 400
    assert "hold no openai_chat chat.completions request" in reply.json()["error"]["message"]


def test_unknown_route_lists_the_routes_and_the_server_goes_on(server: BackgroundServer) -> None:
    reply = rawhttp.request(server.url, "/v2/nothing", chat("hello"))
    assert reply.status == 404
    message = reply.json()["error"]["message"]
    assert "POST /v1/chat/completions" in message and "POST /chat/completions" in message
    assert rawhttp.request(server.url, CHAT, chat("hello")).status == 200


@pytest.mark.parametrize(
    "body",
    [b'{"model": "gpt-4o-mini", "messages": [', b"\xff\xfe not json", b""],
    ids=["truncated-json", "not-utf8", "empty"],
)
def test_malformed_bodies_get_an_openai_400(server: BackgroundServer, body: bytes) -> None:
    reply = rawhttp.request(server.url, CHAT, body)
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "could not parse the JSON body" in error["message"]
    assert rawhttp.request(server.url, CHAT, chat("hello")).status == 200


def test_an_oversized_body_gets_a_413_and_the_server_goes_on() -> None:
    with BackgroundServer(LIBRARY, max_body=2048) as running:
        big = chat("x" * 4096)
        reply = rawhttp.request(running.url, CHAT, big)
        assert reply.status == 413
        assert "too large" in reply.json()["error"]["message"]
        assert rawhttp.request(running.url, CHAT, chat("hello")).status == 200


def test_a_client_that_hangs_up_does_not_stop_the_server(server: BackgroundServer) -> None:
    body = json.dumps(chat("stream please", stream=True)).encode()
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body[: len(body) // 2])  # hang up half-way through the request
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body)
        sock.recv(10)  # hang up after the first bytes of the answer
    assert rawhttp.request(server.url, CHAT, chat("hello")).status == 200


def test_a_gzip_recording_is_served_decoded() -> None:
    from mockserver import cassettes

    text = (
        'interactions:\n- request:\n    body: \'{"model": "m", "messages": []}\'\n'
        "    headers: {}\n    method: POST\n    uri: https://api.openai.com/v1/chat/completions\n"
        "  response:\n    body:\n      string: !!binary |\n        "
        + __import__("base64").b64encode(gzip.compress(NONSTREAM_BODY)).decode()
        + "\n    headers:\n      Content-Encoding: [gzip]\n      Content-Length: ['999']\n"
        "      Content-Type: [application/json]\n    status: {code: 200, message: OK}\nversion: 1\n"
    )
    with BackgroundServer(Library(cassettes.loads(text, "gz.yaml"))) as running:
        reply = rawhttp.request(running.url, CHAT, {"model": "m", "messages": []})
    assert reply.body == NONSTREAM_BODY
    assert reply.header("content-encoding") is None
    assert reply.header("content-length") == str(len(NONSTREAM_BODY))


def test_synthesize_answers_a_miss_with_a_valid_stream(server: BackgroundServer) -> None:
    from mockserver.validation import validate

    server.state.player.synthesize = True
    body = chat("anything at all", stream=True)
    body["stream_options"] = {"include_usage": True}
    reply = rawhttp.request(server.url, CHAT, body)
    assert reply.status == 200
    assert reply.chunks is not None and len(reply.chunks) > 3
    assert reply.chunks == list(sse.frames(reply.body))
    request = Request("POST", CHAT, json=body)
    assert validate("openai_chat", reply.body, request) == []
    assert server.state.player.misses == []  # synthesis was asked for: not a failure
    assert [r.json for r in server.state.player.synthesized] == [body]


class _BrokenPlayer(Player):
    """A player with a bug: what the server does when its own code fails."""

    def next(self, request: Request, match: object) -> object:  # type: ignore[override]
        raise RuntimeError("boom")


def test_a_bug_of_ours_is_a_provider_shaped_500_and_the_server_goes_on(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.state.use(_BrokenPlayer(LIBRARY))
    reply = rawhttp.request(server.url, CHAT, chat("hello"))
    assert reply.status == 500
    assert reply.header("x-should-retry") == "false"
    error = reply.json()["error"]
    assert error["type"] == "server_error"
    assert "RuntimeError: boom" in error["message"] and "bug in Tapedeck" in error["message"]
    assert "Traceback" not in reply.body.decode()
    server.state.use(Player(LIBRARY))
    assert rawhttp.request(server.url, CHAT, chat("hello")).status == 200
