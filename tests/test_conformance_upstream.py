"""The conformance upstream delivers what its scenarios promise: paced events, events cut
inside a character, a mid-stream error, and nothing for requests without a scenario tag."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from mockserver.conformance.scenarios import Scenario, catalogue
from mockserver.conformance.upstream import Upstream


async def post(url: str, body: dict[str, Any]) -> tuple[int, list[tuple[float, bytes]]]:
    """The status and every HTTP chunk with its arrival time."""
    chunks: list[tuple[float, bytes]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body) as response,
    ):
        async for data, _ in response.content.iter_chunks():
            chunks.append((time.monotonic(), data))
        return response.status, chunks


def serve(scenarios: list[Scenario], *bodies: dict[str, Any]) -> tuple[Upstream, list[Any]]:
    upstream = Upstream(scenarios)

    async def run() -> list[Any]:
        url = await upstream.start("127.0.0.1", 0)
        try:
            return [await post(url, body) for body in bodies]
        finally:
            await upstream.stop()

    return upstream, asyncio.run(run())


def test_events_are_paced_cut_inside_characters_and_cut_by_an_error() -> None:
    named = {
        s.name: s for s in catalogue("openai_chat", ["slow", "unicode-split", "midstream-error"])
    }
    slow, split, broken = named["slow"], named["unicode-split"], named["midstream-error"]
    upstream, results = serve([slow, split, broken], *(s.body("m") for s in (slow, split, broken)))
    (slow_status, slow_chunks), (_, split_chunks), (_, broken_chunks) = results
    assert slow_status == 200
    (sent,) = upstream.answers(slow)
    # Absolute deadlines: the last event leaves (events - 1) gaps after the first.
    assert sent.times[-1] - sent.times[0] >= 0.95 * slow.gap * (len(sent.times) - 1)
    assert slow_chunks[-1][0] - slow_chunks[0][0] >= 0.9 * slow.gap * (len(sent.times) - 1)
    # Every event of unicode-split leaves in two HTTP chunks, the cut inside a character.
    body = b"".join(data for _, data in split_chunks)
    assert body == upstream.answers(split)[0].body
    undecodable = 0
    for _, data in split_chunks:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= len(upstream.answers(split)[0].frames)
    # midstream-error: 8 events, then the error chunk, and no [DONE].
    frames = upstream.answers(broken)[0].frames
    assert len(frames) == 9 and b"[DONE]" not in b"".join(frames)
    assert json.loads(frames[-1].removeprefix(b"data: "))["error"]["type"] == "server_error"
    assert b"".join(data for _, data in broken_chunks) == b"".join(frames)


def test_a_request_without_a_scenario_tag_is_refused_and_noted() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True}
    upstream, [(status, chunks)] = serve(catalogue("openai_chat", ["text"]), body)
    assert status == 400
    message = json.loads(b"".join(data for _, data in chunks))["error"]["message"]
    assert "found no scenario tag ([tapedeck NAME NONCE])" in message
    assert [r.json for r in upstream.stray] == [body]


def test_the_upstream_answers_what_the_proxy_forwarded() -> None:
    # A proxy that adds include_usage upstream gets the usage chunk it asked for.
    (scenario,) = catalogue("openai_chat", ["text"])
    forwarded = {**scenario.body("m"), "stream_options": {"include_usage": True}}
    upstream, [(status, chunks)] = serve([scenario], forwarded)
    assert status == 200 and b'"choices":[],"usage":{' in b"".join(d for _, d in chunks)
    assert upstream.answers(scenario)[0].request.json == forwarded
