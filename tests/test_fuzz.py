"""Fuzzing the request path: thousands of requests, raw bytes on a socket, over methods,
known routes and junk paths, headers that lie (Content-Type, Content-Encoding,
Content-Length, chunked framing) and bodies of every kind (JSON deep, wide, broken,
too big; binary). Every answer must be below 500, and every error must come in the shape
of the dialect its route belongs to (Tapedeck's own shape where no route applies).

One real server per mode (replaying, synthesizing) serves the whole module; each request
is one connection (``Connection: close``), so a case costs a few milliseconds.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver.app import ServerState
from mockserver.cli import bundled_cassettes
from mockserver.dialects import RECIPES, ROUTER
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_limits import ServerLimits
from mockserver.server_thread import BackgroundServer
from tests.error_shapes import check_error, exchange

MAX_BODY = 64 * 1024
# ~2 ms a case: the default run stays well within 20 s; CI digs deeper.
EXAMPLES = 3000 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 2000


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[bool, BackgroundServer]]:
    # One recording per protocol: misses are explained against real neighbours, cheaply
    # (the explanation compares texts: a full library costs ~10 ms a miss).
    folders = sorted(path for path in bundled_cassettes().iterdir() if path.is_dir())
    library = Library.from_paths([sorted(folder.glob("*.yaml"))[0] for folder in folders])
    limits = ServerLimits(max_body=MAX_BODY)
    with (
        BackgroundServer(
            ServerState(Player(library, allow_repeats=True)), server_limits=limits
        ) as replaying,
        BackgroundServer(
            ServerState(Player(library, allow_repeats=True, synthesize=True)),
            server_limits=limits,
        ) as synthesizing,
    ):
        yield {False: replaying, True: synthesizing}


# --- what a request is made of ----------------------------------------------------------


# Cheap strategies: drawing text character by character costs milliseconds a case, so
# text comes from byte strings (latin-1) and from pieces picked whole.
def latin1(max_size: int) -> st.SearchStrategy[str]:
    return st.binary(max_size=max_size).map(lambda raw: raw.decode("latin-1"))


SEGMENTS = ["m", "gpt-4o-mini", "us.amazon.nova-micro-v1:0", "a.b", "x_y"]


def filled(pattern: str, segment: str, prefix: str) -> str:
    """A route pattern with each ``{name}`` as ``segment``, each ``{name*}`` as ``prefix``."""
    parts = pattern.replace("}", "{").split("{")
    return "".join(prefix if p.endswith("*") else segment if p.isidentifier() else p for p in parts)


KNOWN_PATHS = sorted(
    {
        filled(route.pattern, segment, prefix)
        for _, route in ROUTER.routes
        for segment in SEGMENTS
        for prefix in ("", "/api/v1", "/a/b/c")
    }
)
PIECES = ["v1", "v2", "api", "chat", "completions", "messages", "models", "a:b", ".", ""]
PIECES += ["..", "~x", "!$&'()*+,;=@", "openai", "deployments", "embed", "x" * 300]
JUNK_PATH = st.lists(st.sampled_from(PIECES), max_size=6).map(lambda p: "/" + "/".join(p))
QUERY = st.sampled_from(["", "?alt=sse", "?api-version=2024-10-21", "?a=1&a=2&b", "?x=%ff%00"])
PATH = st.one_of(st.sampled_from(KNOWN_PATHS), st.sampled_from(KNOWN_PATHS), JUNK_PATH)
TARGET = st.tuples(PATH, QUERY).map("".join)
METHOD = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"])

STRANGE = ["", "hello", "\u2603 \U0001f642", "\ud800", "\x00", '[{"', "a" * 5000]
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.sampled_from(STRANGE)
    | latin1(12)
)
KEYS = st.sampled_from(["model", "messages", "role", "content", "stream", "n", "input", "x", ""])
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=8,
)
RECIPE_BODIES = [recipe.body for recipe in RECIPES]


@st.composite
def mutated(draw: st.DrawFn, body: dict[str, Any]) -> Any:
    """A real request body with up to 3 fields dropped or replaced by any JSON."""
    body = dict(body)
    for key in draw(st.lists(st.sampled_from(sorted(body) or ["model"]), max_size=3)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(VALUE)
    return body


def mutated_recipe() -> st.SearchStrategy[Any]:
    return st.sampled_from(RECIPE_BODIES).flatmap(mutated)


def nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"


def wide(keys: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(keys)}


JSON_BODY = st.one_of(
    mutated_recipe(),
    mutated_recipe(),
    VALUE,
    st.integers(200, 3000).map(wide),
).map(lambda value: json.dumps(value).encode())
BODY = st.one_of(
    JSON_BODY,
    JSON_BODY,
    st.integers(100, 160).map(nested),  # around the nesting limit
    st.sampled_from([nested(1000), b"[" * 100_000]),
    JSON_BODY.map(lambda body: body[: len(body) // 2]),  # cut short
    st.binary(max_size=200),
    st.just(b""),
    st.integers(MAX_BODY - 10, MAX_BODY + 4000).map(lambda n: b'{"input": "' + b"x" * n + b'"}'),
)
ENCODE = {
    "": lambda body: body,
    "identity": lambda body: body,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
CODING = st.sampled_from(["", "", "", "gzip", "deflate", "identity", "br", "zstd", "x-zip"])
CONTENT_TYPE = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "multipart/x"]
)
HEADER_NAME = st.sampled_from(["x-api-key", "authorization", "x-a", "accept", "x-" + "n" * 50])
HEADER_VALUE = st.sampled_from(["", "x", "Bearer sk-test", "é", "a\x00b", "\x7f", "v" * 9000])


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(method, target, the bytes on the wire) of one request."""
    if draw(st.booleans()):  # anything anywhere
        method, target, body = draw(METHOD), draw(TARGET), draw(BODY)
    else:  # a real request, changed a little: what reaches matching and synthesis
        recipe = draw(st.sampled_from(RECIPES))
        method, target = recipe.method, recipe.path
        body = json.dumps(draw(mutated(recipe.body))).encode()
    coding = draw(CODING)
    honest = draw(st.booleans())  # encode as the header says, or lie
    if coding in ENCODE and honest:
        body = ENCODE[coding](body)
    head = [f"{method} {target} {draw(st.sampled_from(['HTTP/1.1'] * 5 + ['HTTP/1.0']))}"]
    head += ["Host: tapedeck", "Connection: close"]
    if content_type := draw(CONTENT_TYPE):
        head.append(f"Content-Type: {content_type}")
    if coding:
        head.append(f"Content-Encoding: {coding}")
    for name, value in draw(st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=3)):
        head.append(f"{name}: {value}")
    framing = draw(st.sampled_from(["length"] * 4 + ["none", "chunked", "bad-chunked", "lies"]))
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        pieces = [piece for piece in (body[:cut], body[cut:]) if piece]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    elif framing == "bad-chunked":
        head.append("Transfer-Encoding: chunked")
        body = draw(st.sampled_from([b"zz\r\n", b"2\r\nabcd\r\n", b"-1\r\n"])) + b"0\r\n\r\n"
    elif framing == "lies":
        lie = draw(st.sampled_from(["abc", "-1", f"{len(body)}, {len(body) + 1}", "1e3"]))
        head.append(f"Content-Length: {lie}")
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    return method, target, data


# --- the property -----------------------------------------------------------------------


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests(), synthesize=st.booleans())
def test_no_request_gets_a_500_or_an_answer_out_of_shape(
    servers: dict[bool, BackgroundServer], request: tuple[str, str, bytes], synthesize: bool
) -> None:
    method, target, data = request
    replies = [r for r in exchange(servers[synthesize].url, data) if r.status >= 200]
    assert len(replies) == 1, f"{len(replies)} answers to {data[:300]!r}"
    reply = replies[0]
    assert reply.status < 500, f"{reply.status} for {data[:300]!r}: {reply.body[:500]!r}"
    if reply.status >= 400 and method != "HEAD":
        problem = check_error(reply, method, target)
        assert problem is None, f"{problem} for {data[:300]!r}"
