"""The real google-genai SDK, sync and async, API versions v1 and v1beta, against the
bundled Gemini cassettes and against synthesized answers, and through the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say) and usage numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from google import genai
from google.genai import errors, types

from mockserver.cli import bundled_cassettes
from mockserver.dialects import RECIPES as BUNDLED
from mockserver.dialects._kit.wire import split_thinking
from mockserver.dialects.contract import Recipe
from mockserver.dialects.gemini.dialect import DIALECT
from mockserver.dialects.gemini.recipes import MODEL
from mockserver.framing.json_array import JSON_ARRAY
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.conftest import ROOT

RECIPES = {r.file.removeprefix("gemini/"): r for r in BUNDLED if r.file.startswith("gemini/")}
VERSIONS = ["v1", "v1beta"]
NO_RETRY = types.HttpRetryOptions(attempts=1)
TOOLS = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name=name,
                description=description,
                parameters_json_schema={
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            )
            for name, description in (
                ("get_weather", "Current weather in a city."),
                ("get_time", "Local time in a city."),
            )
        ]
    )
]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture(scope="module")
def synth_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library(()), synthesize=True) as running:
        yield running


CLIENTS: dict[tuple[str, str], genai.Client] = {}


def client(url: str, version: str = "v1beta") -> genai.Client:
    """One client per server and version, kept alive: a genai.Client closes its HTTP
    session when it is garbage-collected, even while a stream it opened is being read."""
    if (url, version) not in CLIENTS:
        options = types.HttpOptions(base_url=url, api_version=version, retry_options=NO_RETRY)
        CLIENTS[(url, version)] = genai.Client(api_key="k", http_options=options)
    return CLIENTS[(url, version)]


def prompt(recipe: Recipe) -> str:
    text: str = recipe.body["contents"][0]["parts"][0]["text"]
    return text


def recorded_chunks(recipe: Recipe) -> list[dict[str, Any]]:
    """The chunks of the recorded stream, read from the cassette bytes."""
    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    framing = SSE if "alt=sse" in recipe.path else JSON_ARRAY
    return [json.loads(e.data) for e in framing.events(body) if e.data is not None]


def usage_of(response: types.GenerateContentResponse) -> dict[str, Any]:
    assert response.usage_metadata is not None
    return response.usage_metadata.model_dump(mode="json", by_alias=True, exclude_none=True)


def assemble(chunks: list[types.GenerateContentResponse]) -> tuple[str, str, list[Any]]:
    """(thought text, answer text, function calls) rebuilt from SDK chunk objects."""
    thought, answer, calls = "", "", []
    for chunk in chunks:
        assert chunk.candidates is not None
        content = chunk.candidates[0].content
        assert content is not None
        for part in content.parts or []:
            if part.function_call is not None:
                calls.append((part.function_call.name, part.function_call.args))
            elif part.thought:
                thought += part.text or ""
            else:
                answer += part.text or ""
    return thought, answer, calls


@pytest.mark.parametrize("version", VERSIONS)
def test_a_recorded_sse_stream(server: BackgroundServer, version: str) -> None:
    recipe = RECIPES["stream-sse.yaml"]
    chunks = list(
        client(server.url, version).models.generate_content_stream(
            model=MODEL, contents=prompt(recipe)
        )
    )
    assert "".join(c.text or "" for c in chunks) == recipe.script.text
    recorded = recorded_chunks(recipe)
    assert len(chunks) == len(recorded) > 1
    assert usage_of(chunks[-1]) == recorded[-1]["usageMetadata"]
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_thinking_parts(server: BackgroundServer, version: str) -> None:
    recipe = RECIPES["stream-sse-thinking.yaml"]
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    stream = client(server.url, version).models.generate_content_stream(
        model=MODEL, contents=prompt(recipe), config=config
    )
    chunks = list(stream)
    thought, answer, calls = assemble(chunks)
    assert (thought, answer) == split_thinking(recipe.script.text) and calls == []
    assert (
        usage_of(chunks[-1])["thoughtsTokenCount"]
        == recorded_chunks(recipe)[-1]["usageMetadata"]["thoughtsTokenCount"]
    )


def test_recorded_function_calls(server: BackgroundServer) -> None:
    recipe = RECIPES["stream-sse-tool-calls.yaml"]
    config = types.GenerateContentConfig(tools=TOOLS)
    chunks = list(
        client(server.url).models.generate_content_stream(
            model=MODEL, contents=prompt(recipe), config=config
        )
    )
    calls = [(c.name, c.args) for c in chunks[-1].function_calls or []]
    assert calls == [(c.name, json.loads(c.arguments)) for c in recipe.script.tool_calls]
    assert usage_of(chunks[-1]) == recorded_chunks(recipe)[-1]["usageMetadata"]


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_non_streaming_answer(server: BackgroundServer, version: str) -> None:
    recipe = RECIPES["nonstream.yaml"]
    reply = client(server.url, version).models.generate_content(
        model=MODEL, contents=prompt(recipe)
    )
    assert reply.text == recipe.script.text
    assert reply.candidates is not None
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    usage = usage_of(reply)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_recorded_token_count_and_embeddings(server: BackgroundServer) -> None:
    gemini = client(server.url)
    counted = gemini.models.count_tokens(model=MODEL, contents=prompt(RECIPES["count-tokens.yaml"]))
    assert counted.total_tokens == RECIPES["count-tokens.yaml"].script.prompt_tokens
    recipe = RECIPES["embeddings.yaml"]
    texts = [r["content"]["parts"][0]["text"] for r in recipe.body["requests"]]
    config = types.EmbedContentConfig(output_dimensionality=8)
    result = gemini.models.embed_content(
        model="gemini-embedding-001", contents=texts, config=config
    )
    recorded = recorded_json(recipe)["embeddings"]
    assert [e.values for e in result.embeddings or []] == [e["values"] for e in recorded]


def recorded_json(recipe: Recipe) -> Any:
    text = (ROOT / "cassettes" / recipe.file).read_text()
    return json.loads(yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"])


def test_recorded_429_raises_client_error(server: BackgroundServer) -> None:
    recipe = RECIPES["error-429.yaml"]
    with pytest.raises(errors.ClientError) as raised:
        list(
            client(server.url).models.generate_content_stream(model=MODEL, contents=prompt(recipe))
        )
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    assert raised.value.message == recipe.script.error_message


# google-genai's own aiohttp session subclass warns on import of its transport.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
def test_async_client_streams_a_recorded_cassette(server: BackgroundServer) -> None:
    recipe = RECIPES["stream-sse.yaml"]

    async def run() -> list[types.GenerateContentResponse]:
        stream = await client(server.url).aio.models.generate_content_stream(
            model=MODEL, contents=prompt(recipe)
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())  # aiohttp underneath, when importable
    assert "".join(c.text or "" for c in chunks) == recipe.script.text
    assert usage_of(chunks[-1]) == recorded_chunks(recipe)[-1]["usageMetadata"]


def test_the_json_array_cassette_is_served_one_element_per_chunk(server: BackgroundServer) -> None:
    recipe = RECIPES["stream-json-array.yaml"]
    reply = rawhttp.request(server.url, recipe.path, recipe.body)
    assert reply.status == 200 and reply.header("content-type") == "application/json; charset=UTF-8"
    assert reply.chunks is not None and reply.chunks == list(JSON_ARRAY.frames(reply.body))
    elements = json.loads(reply.body)
    assert len(reply.chunks) == len(elements) + 1  # each element, then the closing bracket
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements)
    assert text == recipe.script.text


def test_a_miss_raises_a_400_naming_the_nearest_recording(server: BackgroundServer) -> None:
    with pytest.raises(errors.ClientError) as raised:
        client(server.url).models.generate_content(model=MODEL, contents="unrecorded")
    assert raised.value.code == 400 and raised.value.status == "INVALID_ARGUMENT"
    assert "Nearest recorded requests" in (raised.value.message or "")


# --- synthesized answers ---------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_synthesized_stream_with_thoughts_text_and_calls(
    synth_server: BackgroundServer, version: str
) -> None:
    script = Script(
        text="<think>Two cities, two calls.</think>Let me check.",
        tool_calls=(
            ToolCall("get_weather", '{"city": "Oslo"}'),
            ToolCall("get_time", '{"city": "Rome"}'),
        ),
        finish_reason="length",
        prompt_tokens=42,
        chunk_size=5,
    )
    synth_server.state.scripts.append(script)
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    chunks = list(
        client(synth_server.url, version).models.generate_content_stream(
            model="gemini-2.5-pro", contents="Weather?", config=config
        )
    )
    thought, answer, calls = assemble(chunks)
    assert (thought, answer) == ("Two cities, two calls.", "Let me check.")
    assert calls == [("get_weather", {"city": "Oslo"}), ("get_time", {"city": "Rome"})]
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    usage = usage_of(chunks[-1])
    assert usage["promptTokenCount"] == 42 and usage["thoughtsTokenCount"] == 5
    assert usage["totalTokenCount"] == 42 + usage["candidatesTokenCount"] + 5
    assert chunks[-1].model_version == "gemini-2.5-pro"


def test_synthesized_non_streaming_candidates(synth_server: BackgroundServer) -> None:
    synth_server.state.scripts.append(Script(text="Bonjour.", seed=9))
    config = types.GenerateContentConfig(candidate_count=2)
    reply = client(synth_server.url, "v1").models.generate_content(
        model=MODEL, contents="Hi in French", config=config
    )
    assert reply.candidates is not None
    assert [c.content.parts[0].text for c in reply.candidates if c.content and c.content.parts] == [
        "Bonjour.",
        "Bonjour.",
    ]


def test_a_synthesized_error_raises_with_googles_status(synth_server: BackgroundServer) -> None:
    synth_server.state.scripts.append(Script(status=404, error_message="models/nope is not found."))
    with pytest.raises(errors.ClientError) as raised:
        list(client(synth_server.url).models.generate_content_stream(model="nope", contents="hi"))
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
    synth_server.state.scripts.append(Script(status=503, error_message="Overloaded."))
    with pytest.raises(errors.ServerError) as server_error:
        client(synth_server.url).models.generate_content(model=MODEL, contents="hi")
    assert server_error.value.status == "UNAVAILABLE"


# --- environment and the pytest fixture ------------------------------------------------


def test_the_dialects_environment_is_enough_for_the_sdk(
    server: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    for name, value in DIALECT.environment:
        monkeypatch.setenv(name, value.replace("{url}", server.url))
    gemini = genai.Client()  # kept in a name: a collected client closes its session
    reply = gemini.models.generate_content(model=MODEL, contents=prompt(RECIPES["nonstream.yaml"]))
    assert reply.text == RECIPES["nonstream.yaml"].script.text


@pytest.mark.tapedeck("gemini/stream-sse.yaml")
def test_through_the_fixture(tapedeck: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    recipe = RECIPES["stream-sse.yaml"]
    gemini = genai.Client()  # GOOGLE_GEMINI_BASE_URL and the key from the fixture
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents=prompt(recipe)))
    assert "".join(c.text or "" for c in chunks) == recipe.script.text
    assert [r.path for r in tapedeck.requests] == [f"/v1/models/{MODEL}:streamGenerateContent"]
