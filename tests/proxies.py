"""Small proxies for the conformance tests: an aiohttp app on 127.0.0.1 that forwards to
the upstream port and streams the answer back event by event, faithfully or with exactly
one defect (the kinds real gateways have: see reference/peers.md, "Most common bugs").

Under an upstream fault the faithful proxy passes the breakage on (a reset or its own read
timeout aborts the client's connection; a 429 goes through with its retry-after); the
defective ones: ``invent-done`` ends a broken stream with a finish and ``[DONE]``,
``swallow-429`` answers a 200 empty stream for an upstream error, ``retry-now`` retries a
429 at once, ``hang-on-stall`` keeps its client waiting once its read timed out."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from mockserver.framing import sse

Edit = Callable[[bytes], list[bytes]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _chunk(frame: bytes) -> dict[str, Any] | None:
    data = sse.parse(frame).data
    if data is None or not data.startswith("{"):
        return None
    value = json.loads(data)
    return value if isinstance(value, dict) else None


def _data(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def _is_usage(chunk: dict[str, Any] | None) -> bool:
    return chunk is not None and chunk.get("choices") == [] and chunk.get("usage") is not None


def defect(name: str) -> Edit:
    """A fresh per-request editor: one event in, the events to send out."""
    held: list[bytes] = []
    done: list[bool] = []
    last: list[dict[str, Any]] = []

    def edit(frame: bytes) -> list[bytes]:
        chunk = _chunk(frame)
        if chunk is not None and "choices" in chunk:
            last[:] = [chunk]
        if name == "drop-usage" and _is_usage(chunk):
            return []
        if name == "usage-choices" and chunk is not None and _is_usage(chunk):
            return [_data({**chunk, "choices": [{"index": 0, "delta": {}}]})]
        if name == "strip-done" and frame.startswith(b"data: [DONE]"):
            return []
        if name == "drop-usage-null" and chunk is not None and chunk.get("usage", 0) is None:
            return [_data({k: v for k, v in chunk.items() if k != "usage"})]
        if name == "corrupt-args" and b'"arguments":' in frame:
            assert chunk is not None
            for call in chunk["choices"][0]["delta"]["tool_calls"]:
                call["function"]["arguments"] = call["function"]["arguments"].replace("a", "o")
            return [_data(chunk)]
        if name == "recount-usage" and chunk is not None and _is_usage(chunk):
            usage = chunk["usage"]
            usage.update(
                completion_tokens=usage["completion_tokens"] + 1,
                total_tokens=usage["total_tokens"] + 1,
            )
            return [_data(chunk)]
        if name == "rewrite-model" and chunk is not None and "model" in chunk:
            return [_data({**chunk, "model": "proxy-" + chunk["model"]})]
        if name == "swallow-error" and chunk is not None and "error" in chunk:
            head = {k: v for k, v in last[0].items() if k != "choices"}
            finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            return [_data({**head, "choices": [finish]}), b"data: [DONE]\n\n"]
        if name == "reorder":
            # Hold the first text event of choice 0; if the next one is text of choice 0
            # too, send the two swapped. Once per stream.
            text = (
                chunk is not None
                and bool(chunk.get("choices"))
                and bool(chunk["choices"][0].get("delta", {}).get("content"))
            )
            ours = text and chunk is not None and chunk["choices"][0]["index"] == 0
            if held:
                return [frame, held.pop()] if ours else [held.pop(), frame]
            if ours and not done:
                done.append(True)
                held.append(frame)
                return []
        return [frame]

    return edit


class ToyProxy:
    """``with ToyProxy(upstream_port, "drop-usage") as proxy: proxy.url``."""

    def __init__(
        self,
        upstream_port: int,
        name: str = "faithful",
        status: int = 0,
        read_timeout: float | None = None,
    ) -> None:
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.name, self.status, self.read_timeout = name, status, read_timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> ToyProxy:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.closing = asyncio.Event()
        limits = aiohttp.ClientTimeout(total=None, sock_read=self.read_timeout)
        self.session = aiohttp.ClientSession(auto_decompress=False, timeout=limits)
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        self.closing.set()
        await self.session.close()
        assert self.runner is not None
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.status:
            message = {"error": {"message": f"toy proxy says {self.status}", "code": self.status}}
            return web.json_response(message, status=self.status)
        body = await request.read()
        headers = {"content-type": "application/json"}
        url = self.upstream + request.path_qs
        async with self.session.post(url, data=body, headers=headers) as answer:
            if answer.status == 429 and self.name == "retry-now":
                await answer.read()
                return await self._forward(request, url, body, headers)
            return await self._pass(request, answer)

    async def _forward(
        self, request: web.Request, url: str, body: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        async with self.session.post(url, data=body, headers=headers) as answer:
            return await self._pass(request, answer)

    async def _pass(
        self, request: web.Request, answer: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        if answer.status >= 400 and self.name == "swallow-429":
            await answer.read()
            out = web.StreamResponse(status=200)
            out.content_type = "text/event-stream"
            await out.prepare(request)
            await out.write(b"data: [DONE]\n\n")
            await out.write_eof()
            return out
        out = web.StreamResponse(status=answer.status)
        out.content_type = answer.content_type
        if "retry-after" in answer.headers:
            out.headers["retry-after"] = answer.headers["retry-after"]
        await out.prepare(request)
        if self.name == "buffer" or answer.status != 200:
            await out.write(await answer.read())
            await out.write_eof()
            return out
        decoder, edit, ended = sse.Decoder(), defect(self.name), False
        try:
            async for piece in answer.content.iter_any():
                if self.name == "decode-per-chunk":  # the naive way: breaks characters
                    piece = piece.decode("utf-8", "replace").encode()
                for event in decoder.feed(piece):
                    ended = ended or event.raw.startswith(b"data: [DONE]")
                    for frame in edit(event.raw):
                        await out.write(frame)
            for event in decoder.close():
                for frame in edit(event.raw):
                    await out.write(frame)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            if self.name == "hang-on-stall":
                await self.closing.wait()  # the client waits until it gives up
                return out
            if self.name != "invent-done":
                assert request.transport is not None
                request.transport.abort()  # the upstream's breakage, passed on
                return out
        if self.name == "invent-done" and not ended:
            finish = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            await out.write(_data({**finish, "choices": [choice]}) + b"data: [DONE]\n\n")
        await out.write_eof()
        return out
