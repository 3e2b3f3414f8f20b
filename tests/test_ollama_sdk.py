"""The real ollama SDK (ollama-python), sync and async, against the bundled cassettes, the
synthesizer, the corpus and the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say) and eval counts from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import ollama
import pytest

from mockserver.cli import bundled_cassettes
from mockserver.dialects import sdk_environment
from mockserver.dialects.contract import Recipe
from mockserver.dialects.ollama.dialect import MODELS, thinking_and_content, vector
from mockserver.dialects.ollama.recipes import RECIPES
from mockserver.framing.ndjson import NDJSON
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response, Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT, corpus_root

ANSWERS = [r for r in RECIPES if r.script.status < 400 and r.path in ("/api/chat", "/api/generate")]
CHATS = [r for r in ANSWERS if r.path == "/api/chat"]
SDK_FIELDS = ("model", "messages", "tools", "stream", "think", "options", "prompt")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as running:
        yield running


def recorded_last(recipe: Recipe) -> dict[str, Any]:
    """The last line (or the whole body) of the recorded answer, read from the cassette."""
    import yaml

    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    last: dict[str, Any] = json.loads(NDJSON.events(body)[-1].data)
    return last


def call(client: Any, recipe: Recipe) -> Any:
    kwargs = {k: v for k, v in recipe.body.items() if k in SDK_FIELDS}
    return client.chat(**kwargs) if recipe.path == "/api/chat" else client.generate(**kwargs)


def assemble(parts: list[Any]) -> dict[str, Any]:
    """What a program builds from the SDK's objects: text, thinking, tool calls, the end."""
    text, thinking, calls = "", "", []
    for part in parts:
        holder = part.message if isinstance(part, ollama.ChatResponse) else part
        text += (holder.content if hasattr(holder, "content") else holder.response) or ""
        thinking += holder.thinking or ""
        calls += getattr(holder, "tool_calls", None) or []
    last = parts[-1]
    return {
        "text": text,
        "thinking": thinking,
        "calls": [(c.function.name, dict(c.function.arguments)) for c in calls],
        "done": (last.done, last.done_reason),
        "counts": (last.prompt_eval_count, last.eval_count),
    }


def expect(recipe: Recipe, got: dict[str, Any]) -> None:
    thinking, text = thinking_and_content(recipe.script.text or "", recipe.body.get("think"))
    assert (got["text"], got["thinking"]) == (text, thinking)
    assert got["calls"] == [(c.name, json.loads(c.arguments)) for c in recipe.script.tool_calls]
    assert got["done"] == (True, "stop")
    last = recorded_last(recipe)
    assert got["counts"] == (last["prompt_eval_count"], last["eval_count"])


@pytest.mark.parametrize("recipe", ANSWERS, ids=lambda r: r.file)
def test_sync_client_reads_every_bundled_answer(server: BackgroundServer, recipe: Recipe) -> None:
    with ollama.Client(host=server.url) as client:
        answer = call(client, recipe)
        parts = list(answer) if recipe.body["stream"] else [answer]
    if recipe.body["stream"]:
        assert len(parts) > 1 and all(not p.done for p in parts[:-1])
    expect(recipe, assemble(parts))


@pytest.mark.parametrize("recipe", ANSWERS, ids=lambda r: r.file)
def test_async_client_reads_every_bundled_answer(server: BackgroundServer, recipe: Recipe) -> None:
    async def run() -> list[Any]:
        async with ollama.AsyncClient(host=server.url) as client:
            answer = await call(client, recipe)
            return [p async for p in answer] if recipe.body["stream"] else [answer]

    expect(recipe, assemble(asyncio.run(run())))


def test_embed_and_the_model_list(server: BackgroundServer) -> None:
    recipe = next(r for r in RECIPES if r.path == "/api/embed")
    with ollama.Client(host=server.url) as client:
        answer = client.embed(**recipe.body)
        listed = client.list()
    assert [list(e) for e in answer.embeddings] == [
        vector(recipe.script.seed, text, 8) for text in recipe.body["input"]
    ]
    assert answer.prompt_eval_count and answer.total_duration and answer.load_duration
    assert [m.model for m in listed.models] == [name for name, *_ in MODELS]
    assert listed.models[0].details is not None and listed.models[0].details.format == "gguf"
    assert listed.models[0].modified_at is not None


def test_recorded_404_raises_response_error(server: BackgroundServer) -> None:
    recipe = next(r for r in RECIPES if r.script.status == 404)
    with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as raised:
        list(client.chat(**{k: v for k, v in recipe.body.items() if k in SDK_FIELDS}))
    assert raised.value.status_code == 404
    assert raised.value.error == "model 'nonexistent-model:latest' not found"


def test_a_miss_raises_a_400_naming_the_nearest_recording(server: BackgroundServer) -> None:
    with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "unrecorded"}])
    assert raised.value.status_code == 400
    assert "Nearest recorded requests" in raised.value.error


def test_ollama_host_from_the_environment(
    server: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sdk_environment(server.url).items():
        monkeypatch.setenv(name, value)
    recipe = next(r for r in CHATS if r.file.endswith("chat-nonstream.yaml"))
    with ollama.Client() as client:  # no host: OLLAMA_HOST
        reply = call(client, recipe)
    assert reply.message.content == recipe.script.text


# --- synthesis -------------------------------------------------------------------------


def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers.

    Args:
      a: The first number
      b: The second number
    """
    return a + b


def test_synthesized_tool_calls_through_function_calling(synth: BackgroundServer) -> None:
    script = Script(
        text="<think>Use the tool.</think>",
        tool_calls=(ToolCall("add_two_numbers", '{"a": 2, "b": 3}'),),
        seed=11,
    )
    synth.state.scripts.append(script)
    with ollama.Client(host=synth.url) as client:
        parts = list(
            client.chat(
                model="qwen3",
                messages=[{"role": "user", "content": "What is 2 + 3?"}],
                tools=[add_two_numbers],
                stream=True,
            )
        )
    got = assemble(parts)
    assert got["thinking"] == "Use the tool." and got["text"] == ""
    assert got["calls"] == [("add_two_numbers", {"a": 2, "b": 3})]
    (request,) = synth.state.player.synthesized
    assert request.json["tools"][0]["function"]["name"] == "add_two_numbers"
    (tool_call,) = next(p for p in parts if p.message.tool_calls).message.tool_calls
    assert add_two_numbers(**tool_call.function.arguments) == 5


def test_synthesized_answers_when_no_script_is_queued(synth: BackgroundServer) -> None:
    with ollama.Client(host=synth.url) as client:
        hi = [{"role": "user", "content": "hi"}]
        reply = client.chat(model="llama3.2", messages=hi, think=True)
        streamed = list(client.generate(model="llama3.2", prompt="hi", stream=True))
        legacy = client.embeddings(model="nomic-embed-text", prompt="hello")
        listed = client.list()
    assert reply.message.content == "This is a synthesized reply from Tapedeck."
    assert reply.message.thinking and reply.done_reason == "stop" and reply.eval_count
    assert "".join(p.response or "" for p in streamed) == reply.message.content
    assert streamed[-1].context and streamed[-1].total_duration
    assert len(legacy.embedding) == 768
    assert [m.model for m in listed.models] == [name for name, *_ in MODELS]


def test_synthesized_async_stream_and_error(synth: BackgroundServer) -> None:
    synth.state.scripts.extend(
        [Script(text="One, two, three.", chunk_size=5, prompt_tokens=9, finish_reason="length")]
    )
    synth.state.scripts.append(
        Script(status=500, error_message="llama runner process has terminated")
    )

    async def run() -> tuple[list[Any], ollama.ResponseError]:
        messages = [{"role": "user", "content": "Count."}]
        async with ollama.AsyncClient(host=synth.url) as client:
            stream = await client.chat(model="m", messages=messages, stream=True)
            parts = [p async for p in stream]
            try:
                await client.chat(model="m", messages=messages)
            except ollama.ResponseError as exc:
                return parts, exc
        raise AssertionError("expected a ResponseError")

    parts, failure = asyncio.run(run())
    assert [p.message.content for p in parts] == ["One, ", "two, ", "three", ".", ""]
    assert (parts[-1].done_reason, parts[-1].prompt_eval_count, parts[-1].eval_count) == (
        "length",
        9,
        4,
    )
    assert failure.status_code == 500 and failure.error == "llama runner process has terminated"


def test_a_mid_stream_error_line_raises_after_the_lines_before_it() -> None:
    body = (
        b'{"model":"m","created_at":"2025-01-01T00:00:00Z",'
        b'"message":{"role":"assistant","content":"Hi"},"done":false}\n'
        b'{"error":"an error was encountered while running the model"}\n'
    )
    request = Request("POST", "/api/chat", json={"model": "m", "messages": []})
    response = Response(200, (("content-type", "application/x-ndjson"),), body, "OK")
    with (
        BackgroundServer(Library([Exchange(request, response)])) as running,
        ollama.Client(host=running.url) as client,
    ):
        stream = client.chat(model="m", messages=[], stream=True)
        first = next(stream)
        assert first.message.content == "Hi"
        with pytest.raises(ollama.ResponseError) as raised:
            next(stream)
    assert raised.value.status_code == -1
    assert raised.value.error == "an error was encountered while running the model"


# --- the corpus and the fixture ----------------------------------------------------------


@pytest.mark.corpus
def test_todays_client_replays_recordings_made_by_older_clients() -> None:
    library = Library.from_paths(sorted((corpus_root() / "ollama").glob("native-*.yaml")))
    with BackgroundServer(library) as running, ollama.Client(host=running.url) as client:
        joke = [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}]
        parts = list(client.chat(model="llama3", messages=joke, stream=True))
        whole = client.generate(model="llama3", prompt=joke[0]["content"])
        with pytest.raises(ollama.ResponseError) as raised:
            client.chat(
                model="nonexistent-model:latest",
                messages=[{"role": "user", "content": "Why is the sky blue?"}],
            )
        assert running.state.player.misses == []
    assert len(parts) == 50 and "".join(p.message.content for p in parts).startswith("Why did")
    assert (parts[-1].prompt_eval_count, parts[-1].eval_count) == (17, 50)
    assert whole.response.startswith("A niche topic!") and whole.context
    assert raised.value.status_code == 404


@pytest.mark.tapedeck("ollama/chat-stream.yaml")
def test_through_the_fixture(tapedeck: Any) -> None:
    recipe = next(r for r in RECIPES if r.file == "ollama/chat-stream.yaml")
    with ollama.Client() as client:  # OLLAMA_HOST from the fixture
        parts = list(call(client, recipe))
    expect(recipe, assemble(parts))
    assert [r.path for r in tapedeck.requests] == ["/api/chat"]
