"""The real openai SDK, sync and async, against the bundled cassettes: through
``tapedeck serve``-style serving (BackgroundServer) and through the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say), and usage numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from mockserver.cli import bundled_cassettes
from mockserver.dialects import RECIPES as BUNDLED
from mockserver.dialects.contract import Recipe
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT

STREAMS = [
    r
    for r in BUNDLED
    if r.file.startswith("openai_chat/")
    and r.body.get("stream")
    and r.script.status < 400
    and r.path == "/v1/chat/completions"  # the Azure one: AzureOpenAI, in test_usability.py
]


@pytest.fixture
def make_client() -> Iterator[Callable[..., openai.OpenAI]]:
    """OpenAI clients closed after the test (an open one warns, and warnings are errors)."""
    clients: list[openai.OpenAI] = []

    def make(**kwargs: Any) -> openai.OpenAI:
        clients.append(openai.OpenAI(**kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


def recorded_usage(recipe: Recipe) -> dict[str, Any] | None:
    """The usage object of the recorded stream's last chunk, read from the cassette bytes."""
    import yaml

    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    data = [e.data for e in sse.decode(body) if e.data and e.data != "[DONE]"]
    usage: dict[str, Any] | None = json.loads(data[-1]).get("usage")
    return usage


def assemble(chunks: list[Any]) -> tuple[dict[int, str], dict[int, dict[int, list[str]]]]:
    """Text and tool calls per choice, rebuilt from SDK chunk objects."""
    texts: dict[int, str] = {}
    tools: dict[int, dict[int, list[str]]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                slot = tools.setdefault(choice.index, {}).setdefault(call.index, ["", ""])
                slot[0] += call.function.name or ""
                slot[1] += call.function.arguments or ""
    return texts, tools


def expect(recipe: Recipe, texts: dict[int, str], tools: dict[int, dict[int, list[str]]]) -> None:
    choices = recipe.body.get("n", 1)
    assert sorted(texts) == list(range(choices))
    for index in range(choices):
        if recipe.script.tool_calls:
            calls = tools[index]
            assert [calls[i] for i in sorted(calls)] == [
                [call.name, call.arguments] for call in recipe.script.tool_calls
            ]
        else:
            assert texts[index] == recipe.script.text


def check_usage(recipe: Recipe, chunks: list[Any]) -> None:
    if recipe.body.get("stream_options", {}).get("include_usage"):
        last = chunks[-1]
        assert last.choices == []
        assert last.usage.model_dump(exclude_none=True) == recorded_usage(recipe)
        assert all(chunk.usage is None for chunk in chunks[:-1])
    else:
        assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_sync_client_streams_every_bundled_cassette(
    server: BackgroundServer, recipe: Recipe, make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(base_url=server.url + "/v1", api_key="k", max_retries=0)
    chunks = list(client.chat.completions.create(**recipe.body))
    expect(recipe, *assemble(chunks))
    check_usage(recipe, chunks)


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_async_client_streams_every_bundled_cassette(
    server: BackgroundServer, recipe: Recipe
) -> None:
    async def run() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0) as client:
            stream = await client.chat.completions.create(**recipe.body)
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())  # base URL without /v1: the short route serves it too
    expect(recipe, *assemble(chunks))
    check_usage(recipe, chunks)


def test_stream_helper_gets_the_final_completion(
    server: BackgroundServer, make_client: Callable[..., openai.OpenAI]
) -> None:
    recipe = next(r for r in STREAMS if r.script.tool_calls)
    client = make_client(base_url=server.url + "/v1", api_key="k", max_retries=0)
    body = {k: v for k, v in recipe.body.items() if k != "stream"}
    with client.chat.completions.stream(**body) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (call.name, json.loads(call.arguments)) for call in recipe.script.tool_calls
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == recorded_usage(recipe)


def test_non_streaming_answer(
    server: BackgroundServer, make_client: Callable[..., openai.OpenAI]
) -> None:
    recipe = next(r for r in BUNDLED if r.file == "openai_chat/nonstream.yaml")
    client = make_client(base_url=server.url + "/v1", api_key="k", max_retries=0)
    reply = client.chat.completions.create(**recipe.body)
    assert reply.choices[0].message.content == recipe.script.text
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_recorded_429_raises_rate_limit_error(
    server: BackgroundServer, make_client: Callable[..., openai.OpenAI]
) -> None:
    recipe = next(r for r in BUNDLED if r.file == "openai_chat/error-429.yaml")
    client = make_client(base_url=server.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(**recipe.body)
    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "20"
    assert "Rate limit reached" in raised.value.message


def test_a_miss_raises_bad_request_without_retrying(
    server: BackgroundServer, make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(base_url=server.url + "/v1", api_key="k")  # default retries on
    before = len(server.state.player.requests)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "unrecorded"}]
        )
    assert "Nearest recorded requests" in raised.value.message
    assert len(server.state.player.requests) == before + 1  # x-should-retry: false honoured


@pytest.mark.tapedeck("openai_chat/stream-include-usage.yaml")
def test_through_the_fixture(tapedeck: Any, make_client: Callable[..., openai.OpenAI]) -> None:
    recipe = next(r for r in BUNDLED if r.file.endswith("stream-include-usage.yaml"))
    client = make_client(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY from the fixture
    chunks = list(client.chat.completions.create(**recipe.body))
    expect(recipe, *assemble(chunks))
    check_usage(recipe, chunks)
    assert [r.path for r in tapedeck.requests] == ["/v1/chat/completions"]
