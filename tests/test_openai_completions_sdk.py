"""The real openai SDK's legacy ``client.completions`` against Tapedeck: the bundled
cassettes (sync and async, stream and not, include_usage, several prompts times n, echo
with logprobs, a recorded 401), synthesized answers, the environment variables, and the
prefix route next to chat's. Expected values come from the recipes and the recorded
bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from mockserver.cli import bundled_cassettes
from mockserver.dialects.contract import Recipe
from mockserver.dialects.openai import recipes_completions as recipes
from mockserver.dialects.openai.completions import DIALECT, prompts
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Script
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT

STREAMS = [r for r in recipes.RECIPES if r.body.get("stream") and r.script.status < 400]


def recipe(name: str) -> Recipe:
    return next(r for r in recipes.RECIPES if r.file.endswith("/" + name))


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does
        yield running


@pytest.fixture(scope="module")
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as running:
        yield running


def client(server: BackgroundServer, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + base, api_key="k", max_retries=0)


def recorded_chunks(r: Recipe) -> list[dict[str, Any]]:
    import yaml

    text = (ROOT / "cassettes" / r.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    return [json.loads(e.data) for e in sse.decode(body) if e.data and e.data != "[DONE]"]


def assemble(chunks: list[Any]) -> tuple[dict[int, str], dict[int, str | None]]:
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    for chunk in chunks:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            finishes[c.index] = c.finish_reason or finishes.get(c.index)
    return texts, finishes


def expect(r: Recipe, chunks: list[Any]) -> None:
    texts, finishes = assemble(chunks)
    count = len(prompts(r.body["prompt"])) * r.body.get("n", 1)
    assert texts == dict.fromkeys(range(count), r.script.text)
    assert finishes == dict.fromkeys(range(count), r.script.finish_reason or "stop")
    assert all(chunk.object == "text_completion" for chunk in chunks)
    if r.body.get("stream_options", {}).get("include_usage"):
        assert chunks[-1].choices == []
        assert chunks[-1].usage.model_dump(exclude_none=True) == recorded_chunks(r)[-1]["usage"]
        assert all(chunk.usage is None for chunk in chunks[:-1])
    else:
        assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.parametrize("r", STREAMS, ids=lambda r: r.file)
def test_sync_client_streams_every_bundled_cassette(server: BackgroundServer, r: Recipe) -> None:
    with client(server) as c:
        chunks = list(c.completions.create(**r.body))
    expect(r, chunks)


def test_async_client_streams_without_v1_in_the_base_url(server: BackgroundServer) -> None:
    r = recipe("stream-two-prompts-n2.yaml")

    async def run() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0) as c:
            stream = await c.completions.create(**r.body)
            return [chunk async for chunk in stream]

    expect(r, asyncio.run(run()))


def test_non_streaming_answer(server: BackgroundServer) -> None:
    r = recipe("nonstream.yaml")
    with client(server) as c:
        reply = c.completions.create(**r.body)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert [c.text for c in reply.choices] == [r.script.text]
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].logprobs is None
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_echo_and_logprobs(server: BackgroundServer) -> None:
    r = recipe("nonstream-echo-logprobs.yaml")
    with client(server) as c:
        (only,) = c.completions.create(**r.body).choices
    assert only.text == r.body["prompt"] + r.script.text
    assert only.finish_reason == "length"
    logprobs = only.logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert "".join(logprobs.tokens) == only.text
    assert logprobs.token_logprobs is not None and logprobs.token_logprobs[0] is None
    offsets = [sum(map(len, logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
    assert logprobs.text_offset == offsets


def test_recorded_401_on_a_stream_request(server: BackgroundServer) -> None:
    r = recipe("error-401-stream.yaml")
    with client(server) as c, pytest.raises(openai.AuthenticationError) as raised:
        c.completions.create(**r.body)
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in raised.value.message


def test_a_miss_raises_bad_request_without_retrying(server: BackgroundServer) -> None:
    before = len(server.state.player.requests)
    with (
        openai.OpenAI(base_url=server.url + "/v1", api_key="k") as c,  # default retries on
        pytest.raises(openai.BadRequestError) as raised,
    ):
        c.completions.create(model="gpt-3.5-turbo-instruct", prompt="unrecorded")
    assert "Nearest recorded requests" in raised.value.message
    assert len(server.state.player.requests) == before + 1


# --- synthesized answers ---------------------------------------------------------------


def test_synthesized_stream_with_usage(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    synth.state.scripts.append(Script(text="Roses are red,\nviolets are blue.", chunk_size=5))
    with client(synth) as c:
        stream = c.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt=["A poem:", "Another:"],
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    texts, finishes = assemble(chunks)
    assert texts == dict.fromkeys(range(4), "Roses are red,\nviolets are blue.")
    assert set(finishes.values()) == {"stop"}
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 4 * 7
    assert usage.prompt_tokens == 5  # "A poem:" and "Another:": three words, two colons


def test_synthesized_non_stream_and_scripted_errors(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    synth.state.scripts.extend(
        [
            Script(text="4", finish_reason="length", prompt_tokens=3),
            Script(status=429, error_message="Slow down.", headers=(("retry-after", "0"),)),
        ]
    )
    with client(synth) as c:
        reply = c.completions.create(model="m", prompt=[1, 2, 3], max_tokens=1)
        with pytest.raises(openai.RateLimitError) as raised:
            c.completions.create(model="m", prompt="again")
    assert [(x.text, x.finish_reason) for x in reply.choices] == [("4", "length")]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (3, 4)
    assert raised.value.status_code == 429 and "Slow down." in raised.value.message


def test_the_environment_points_the_sdk_at_the_server(
    synth: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DIALECT.environment:
        monkeypatch.setenv(name, value.replace("{url}", synth.url))
    synth.state.scripts.clear()
    synth.state.scripts.append(Script(text="from the environment"))
    with openai.OpenAI(max_retries=0) as c:
        reply = c.completions.create(model="m", prompt="hi")
    assert reply.choices[0].text == "from the environment"
    assert synth.state.player.synthesized[-1].path == "/v1/completions"


def test_a_prefixed_base_url_routes_completions_and_chat_apart(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    with client(synth, "/api/v1") as c:
        completion = c.completions.create(model="m", prompt="hi")
        chat = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.object == "text_completion"
    assert chat.object == "chat.completion"
    paths = [r.path for r in synth.state.player.synthesized[-2:]]
    assert paths == ["/api/v1/completions", "/api/v1/chat/completions"]
