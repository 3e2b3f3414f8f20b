"""Minimal aiohttp servers that answer every POST with one prepared response: the floor
Tapedeck is measured against. They share no code with Tapedeck.

Modes (the same bytes on the wire; what differs is how they are written):

- ``per-event``: a stream written with one ``StreamResponse.write()`` per event, as a
  naive replay server does; each write is one HTTP chunk and one system call.
- ``single-write``: the whole pre-framed stream in one ``write()``: one HTTP chunk, one
  system call. The ceiling for aiohttp, and the target Tapedeck is held to (80%).
- ``json``: a non-streaming ``web.Response`` with the body and Content-Length.
- ``paced``: ``per-event`` at a pace, as a naive replay server paces: sleep until the
  headers are due (``--headers-at``), then before each event sleep until it is due
  (``--first-at``, then every ``--gap`` seconds: absolute deadlines computed on the fly).

They run the app the way ``tapedeck serve`` does (``web.run_app``, no access log), send
the same response headers, and read the request body as Tapedeck must, so the difference
measured is what Tapedeck does beyond answering.

Usage: ``python benchmarks/baseline_server.py --mode single-write --payload FILE --port N``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

MODES = ("per-event", "single-write", "json", "paced")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def write_payload(
    path: Path, status: int, headers: Sequence[tuple[str, str]], frames: Sequence[bytes]
) -> None:
    """The response a baseline sends: status, headers, and the body cut into events."""
    document = {
        "status": status,
        "headers": [list(pair) for pair in headers],
        "frames": [base64.b64encode(frame).decode("ascii") for frame in frames],
    }
    path.write_text(json.dumps(document))


def make_handler(
    mode: str, payload: Path, pace: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Handler:
    """``pace``: (headers at, first event at, gap) in seconds, for ``paced``."""
    document = json.loads(payload.read_text())
    status = int(document["status"])
    headers = [(str(name), str(value)) for name, value in document["headers"]]
    frames = tuple(base64.b64decode(frame) for frame in document["frames"])
    body = b"".join(frames)

    async def per_event(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        for frame in frames:
            await response.write(frame)
        await response.write_eof()
        return response

    async def paced(request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        await request.read()
        headers_at, first_at, gap = pace
        await asyncio.sleep(max(0.0, arrived + headers_at - loop.time()))
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        for number, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, arrived + first_at + number * gap - loop.time()))
            await response.write(frame)
        await response.write_eof()
        return response

    async def single_write(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def whole(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, headers=headers, body=body)

    handlers: dict[str, Handler] = {
        "per-event": per_event,
        "single-write": single_write,
        "json": whole,
        "paced": paced,
    }
    return handlers[mode]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A minimal aiohttp baseline server.")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--payload", type=Path, required=True, help="JSON from write_payload")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--headers-at", type=float, default=0.0, help="paced: seconds")
    parser.add_argument("--first-at", type=float, default=0.0, help="paced: seconds")
    parser.add_argument("--gap", type=float, default=0.02, help="paced: seconds between events")
    args = parser.parse_args(argv)
    app = web.Application()
    pace = (args.headers_at, args.first_at, args.gap)
    app.router.add_post("/v1/chat/completions", make_handler(args.mode, args.payload, pace))
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
