"""The client side of a conformance run: what the client sends the proxy, and what it got
back, event by event with arrival times (``Downstream``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from mockserver.conformance.scenarios import Scenario
from mockserver.dialects import dialect
from mockserver.errors import ConformanceError
from mockserver.model import Event, Headers, Request


@dataclass
class Downstream:
    """What the client got from the proxy: the events and the time each one arrived."""

    request: Request
    status: int = 0
    headers: Headers = ()
    body: bytes = b""
    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    broken: str | None = None
    """Why the stream ended badly (connection reset, timeout...), or None."""
    timed_out: bool = False
    """The client gave up at its own timeout (the proxy neither answered nor closed)."""


def endpoint(proxy_url: str, name: str) -> str:
    """The URL the client posts to: the proxy's root plus the dialect's route (without a
    doubled ``/v1`` when the root already ends with it)."""
    root = proxy_url.rstrip("/")
    path = next(r.pattern for r in dialect(name).routes if "{" not in r.pattern)
    if root.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return root + path


async def fetch(
    session: aiohttp.ClientSession, url: str, scenario: Scenario, model: str, api_key: str
) -> Downstream:
    body = scenario.body(model)
    protocol = dialect(scenario.dialect).conformance
    assert protocol is not None  # scenarios exist only for protocols that have one
    headers = {"content-type": "application/json", **protocol.client_headers(api_key)}
    sent = Request("POST", url, headers=tuple(headers.items()), json=body)
    down = Downstream(sent)
    try:
        async with session.post(url, json=body, headers=headers) as response:
            down.status, down.headers = response.status, tuple(response.headers.items())
            if response.status != 200:
                down.body = await response.read()
                return down
            decoder = dialect(scenario.dialect).framing.decoder()
            async for piece in response.content.iter_any():
                now = time.monotonic()
                down.body += piece
                for event in decoder.feed(piece):
                    down.events.append(event)
                    down.times.append(now)
            for event in decoder.close():
                down.events.append(event)
                down.times.append(time.monotonic())
    except aiohttp.ClientConnectorError as exc:
        raise ConformanceError(
            f"cannot connect to the proxy at {url}: {exc.os_error or exc}. Is it running, "
            "and is --proxy its root URL (such as http://127.0.0.1:4000)?"
        ) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        down.broken = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        down.timed_out = isinstance(exc, asyncio.TimeoutError)
    return down
