"""A deliberately small HTTP/1.1 client on a raw socket, so tests see the exact bytes and
the exact chunks a server sends, with nothing decoded or re-buffered on the way."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    chunks: list[bytes] | None  # None when the body was not chunked
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
) -> RawResponse:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    parts = urlsplit(url)
    head = {"Host": parts.netloc, "Connection": "close", "Content-Type": "application/json"}
    head.update(headers or {})
    if body is not None:
        head["Content-Length"] = str(len(body))
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in head.items()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return parse(received)


def parse(raw: bytes) -> RawResponse:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, reason = ([*status_line.split(" ", 2), ""])[:3]
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    pairs = [(k, v) for k, v in headers]
    chunked = any(k.lower() == "transfer-encoding" and v == "chunked" for k, v in pairs)
    if not chunked:
        return RawResponse(int(status), reason, pairs, None, rest)
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        rest = rest[size + 2 :]
    return RawResponse(int(status), reason, pairs, chunks, b"".join(chunks))
