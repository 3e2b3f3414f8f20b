"""What an error answer must look like, for the hardening and fuzz tests: the shape of the
dialect the request's route belongs to (its ``error`` is each dialect's tested contract),
or, where no route applies, Tapedeck's own documented shape (README, "No match")."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

from mockserver.dialects import ROUTER, Dialect
from tests import rawhttp

OWN_SKELETON = frozenset(
    {("error", "dict"), ("error.message", "str"), ("error.type", "str"), ("error.code", "str")}
)
"""The documented shape where no dialect applies: {"error": {"message", "type", "code"}}."""
KINDS = ("invalid_request_error", "api_error", "server_error")


def skeleton(value: Any, path: str = "") -> frozenset[tuple[str, str]]:
    """(path, JSON type) of every value below the top: what stays when the words change."""
    found: set[tuple[str, str]] = set()
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                at = f"{where}.{key}" if where else str(key)
                found.add((at, "null" if inner is None else type(inner).__name__))
                stack.append((at, inner))
        elif isinstance(item, list):
            stack.extend((f"{where}[]", inner) for inner in item)
    return frozenset(found)


def dialect_skeletons(dialect: Dialect, status: int) -> set[frozenset[tuple[str, str]]]:
    kinds = (*KINDS, dialect.default_error_kind)
    return {skeleton(json.loads(dialect.error(status, "m", kind).body)) for kind in kinds}


def check_error(reply: rawhttp.RawResponse, method: str, target: str) -> str | None:
    """Why ``reply`` is not an error in the shape its route calls for (None: it is)."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        return f"{reply.status} with a body that is not JSON: {reply.body[:200]!r}"
    path = unquote(target.partition("?")[0].partition("#")[0])  # not urlsplit: "//x" is a path
    match = ROUTER.resolve(method, path) if path.startswith("/") else None
    if match is None:
        if skeleton(body) != OWN_SKELETON:
            return f"{reply.status}, not Tapedeck's own shape: {reply.body[:300]!r}"
        return None
    dialect = match.dialect
    if skeleton(body) not in dialect_skeletons(dialect, reply.status):
        return f"{reply.status}, not {dialect.name}'s error shape: {reply.body[:300]!r}"
    expected = {k.lower() for k, _ in dialect.error(reply.status, "m", KINDS[0]).headers}
    missing = expected - {k.lower() for k, _ in reply.headers} - {"content-length"}
    if missing:
        return f"{reply.status} from {dialect.name} without its headers {sorted(missing)}"
    return None


def exchange(url: str, data: bytes, timeout: float = 10.0) -> list[rawhttp.RawResponse]:
    """Send raw bytes, read until the server closes, parse every answer in what came."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        # The server may answer and close before taking it all: read the answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with our bytes unread: what came before the reset still counts
    return answers(received)


def answers(raw: bytes) -> list[rawhttp.RawResponse]:
    """Every HTTP answer in a byte stream (bodies framed by Content-Length or chunked)."""
    found = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"an answer cut off in its head: {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")[1:]
        fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
        status = int(head.split(b" ", 2)[1])
        if 100 <= status < 200:  # an interim answer (100 Continue): a head alone
            end = 0
        elif fields.get("transfer-encoding") == "chunked":
            end = 0
            while True:
                size_line, _, _ = rest[end:].partition(b"\r\n")
                size = int(size_line, 16)
                end += len(size_line) + 2 + size + 2
                if size == 0:
                    break
        else:
            end = int(fields.get("content-length", len(rest)))
        found.append(rawhttp.parse(head + sep + rest[:end]))
        raw = rest[end:]
    return found
