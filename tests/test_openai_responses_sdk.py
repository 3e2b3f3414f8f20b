"""The real openai SDK's Responses client, sync and async, against the bundled cassettes
(``tapedeck serve``-style serving) and against synthesized answers: raw event iteration,
the ``responses.stream()`` helper's final response, non-stream ``output_text`` and usage,
errors, Azure's path, and the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say), and usage numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import yaml

from mockserver.cli import bundled_cassettes
from mockserver.dialects.contract import Recipe
from mockserver.dialects.openai import recipes_responses as openai_responses
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT

RECIPES = openai_responses.RECIPES
STREAMS = [r for r in RECIPES if r.body.get("stream") and r.script.status < 400]


def recipe(name: str) -> Recipe:
    return next(r for r in RECIPES if r.file == f"openai_responses/{name}.yaml")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture
def synthesizing(server: BackgroundServer) -> Iterator[BackgroundServer]:
    server.state.player.synthesize = True
    yield server
    server.state.player.synthesize = False
    server.state.scripts.clear()


@pytest.fixture
def client() -> Iterator[Callable[[BackgroundServer], openai.OpenAI]]:
    """Makes SDK clients for a server, retries off, and closes them after the test."""
    made: list[openai.OpenAI] = []

    def connect(server: BackgroundServer) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0))
        return made[-1]

    yield connect
    for sdk in made:
        sdk.close()


def recorded_final(recipe: Recipe) -> dict[str, Any]:
    """The final response object (the terminal event's, or the body), read from the
    cassette's bytes."""
    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    if not recipe.body.get("stream"):
        whole: dict[str, Any] = json.loads(body)
        return whole
    events = [json.loads(e.data) for e in sse.decode(body) if e.data]
    final: dict[str, Any] = events[-1]["response"]
    return final


def expected(script: Script) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """(reasoning summary, message text, [(tool name, arguments)]) a script asks for."""
    text = script.text
    summary = None
    if text is not None and text.startswith("<think>"):
        summary, _, text = text.removeprefix("<think>").partition("</think>")
    return summary, text or None, [(c.name, c.arguments) for c in script.tool_calls]


def assemble(events: list[Any]) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """Reasoning summary, text and calls rebuilt from the SDK's event objects."""
    summary = text = None
    calls: dict[int, list[str]] = {}
    for event in events:
        if event.type == "response.reasoning_summary_text.delta":
            summary = (summary or "") + event.delta
        elif event.type == "response.output_text.delta":
            text = (text or "") + event.delta
        elif event.type == "response.output_item.added" and event.item.type == "function_call":
            calls[event.output_index] = [event.item.name, ""]
        elif event.type == "response.function_call_arguments.delta":
            calls[event.output_index][1] += event.delta
    return summary, text, [(name, args) for name, args in calls.values()]


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_sync_client_iterates_every_bundled_stream(
    client: Callable[[BackgroundServer], openai.OpenAI], server: BackgroundServer, recipe: Recipe
) -> None:
    events = list(client(server).responses.create(**recipe.body))
    assert assemble(events) == expected(recipe.script)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = recorded_final(recipe)
    assert events[0].type == "response.created"
    assert events[-1].type == f"response.{final['status']}"
    assert events[-1].response.usage.model_dump(exclude_none=True) == final["usage"]


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_async_client_iterates_every_bundled_stream(
    server: BackgroundServer, recipe: Recipe
) -> None:
    async def run() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0) as c:
            stream = await c.responses.create(**recipe.body)
            return [event async for event in stream]

    events = asyncio.run(run())  # base URL without /v1: the short route serves it too
    assert assemble(events) == expected(recipe.script)


@pytest.mark.parametrize("name", ["stream-text", "stream-tool-calls", "stream-reasoning"])
def test_stream_helper_gets_the_final_response(
    client: Callable[[BackgroundServer], openai.OpenAI], server: BackgroundServer, name: str
) -> None:
    made = recipe(name)
    body = {k: v for k, v in made.body.items() if k != "stream"}
    with client(server).responses.stream(**body) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    summary, text, calls = expected(made.script)
    assert final.output_text == (text or "") == "".join(deltas)
    assert final.status == "completed"
    assert [(o.name, o.arguments) for o in final.output if o.type == "function_call"] == calls
    if name == "stream-tool-calls":  # strict tools: the helper parses the arguments too
        parsed = [o.parsed_arguments for o in final.output if o.type == "function_call"]
        assert parsed == [json.loads(arguments) for _, arguments in calls]
    summaries = [s.text for o in final.output if o.type == "reasoning" for s in o.summary]
    assert summaries == ([summary] if summary else [])
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == recorded_final(made)["usage"]


def test_an_incomplete_answer_says_why(
    client: Callable[[BackgroundServer], openai.OpenAI], server: BackgroundServer
) -> None:
    made = recipe("stream-incomplete")
    events = list(client(server).responses.create(**made.body))
    end = events[-1]
    assert end.type == "response.incomplete"
    assert end.response.incomplete_details is not None
    assert end.response.incomplete_details.reason == "max_output_tokens"
    assert end.response.usage is not None
    assert end.response.usage.output_tokens == made.body["max_output_tokens"]
    assert end.response.output_text == made.script.text


def test_non_streaming_answer(
    client: Callable[[BackgroundServer], openai.OpenAI], server: BackgroundServer
) -> None:
    made = recipe("nonstream")
    reply = client(server).responses.create(**made.body)
    assert reply.output_text == made.script.text
    assert (reply.status, reply.object, reply.instructions) == (
        "completed",
        "response",
        made.body["instructions"],
    )
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert reply.usage.model_dump(exclude_none=True) == recorded_final(made)["usage"]


def test_recorded_429_raises_rate_limit_error(
    client: Callable[[BackgroundServer], openai.OpenAI], server: BackgroundServer
) -> None:
    made = recipe("error-429")
    with pytest.raises(openai.RateLimitError) as raised:
        client(server).responses.create(**made.body)
    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "20"
    assert raised.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in raised.value.message


def test_a_miss_raises_bad_request_without_retrying(server: BackgroundServer) -> None:
    before = len(server.state.player.requests)
    with (
        openai.OpenAI(base_url=server.url + "/v1", api_key="k") as sdk,  # default retries on
        pytest.raises(openai.BadRequestError) as raised,
    ):
        sdk.responses.create(model="gpt-4.1-mini", input="unrecorded")
    assert "Nearest recorded requests" in raised.value.message
    assert raised.value.response.text.startswith('{\n  "error": {\n')
    assert len(server.state.player.requests) == before + 1  # x-should-retry: false honoured


# --- synthesized answers -----------------------------------------------------------------

SCRIPT = Script(
    text="<think>The user wants both.</think>Checking the weather and the time.",
    tool_calls=(ToolCall("get_weather", '{"city":"Oslo"}'), ToolCall("get_time", "{}")),
    chunk_size=5,
    seed=9,
)


def test_synthesized_stream_through_the_stream_helper(
    client: Callable[[BackgroundServer], openai.OpenAI], synthesizing: BackgroundServer
) -> None:
    synthesizing.state.scripts.append(SCRIPT)
    with client(synthesizing).responses.stream(model="o4-mini", input="Weather in Oslo?") as s:
        events = list(s)
        final = s.get_final_response()
    summary, text, calls = expected(SCRIPT)
    assert assemble(events) == (summary, text, calls)
    assert final.output_text == text
    kinds = ["reasoning", "message", "function_call", "function_call"]
    assert [o.type for o in final.output] == kinds
    assert [(o.name, o.arguments) for o in final.output if o.type == "function_call"] == calls
    assert final.output[0].summary[0].text == summary  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.output_tokens_details is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 4  # 20 characters / 5
    assert final.usage.output_tokens == 4 + 7 + 3 + 1  # reasoning, text, both arguments


def test_synthesized_non_stream_answer(
    client: Callable[[BackgroundServer], openai.OpenAI], synthesizing: BackgroundServer
) -> None:
    synthesizing.state.scripts.append(Script(text="Hello!", prompt_tokens=12, seed=2))
    reply = client(synthesizing).responses.create(model="gpt-4.1", input="Hi", temperature=0)
    assert reply.output_text == "Hello!" and reply.temperature == 0
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 2)


def test_a_synthesized_failure_is_an_event_not_an_exception(
    client: Callable[[BackgroundServer], openai.OpenAI],
    synthesizing: BackgroundServer,
) -> None:
    script = Script(text="Half", finish_reason="failed", error_message="Model crashed.")
    synthesizing.state.scripts.append(script)
    events = list(client(synthesizing).responses.create(model="m", input="x", stream=True))
    end = events[-1]
    assert end.type == "response.failed" and end.response.error is not None
    assert (end.response.error.code, end.response.error.message) == (
        "server_error",
        "Model crashed.",
    )


def test_a_synthesized_error_status_raises(
    client: Callable[[BackgroundServer], openai.OpenAI], synthesizing: BackgroundServer
) -> None:
    synthesizing.state.scripts.append(Script(status=401, error_message="Incorrect API key."))
    with pytest.raises(openai.AuthenticationError) as raised:
        client(synthesizing).responses.create(model="m", input="x")
    assert raised.value.code == "invalid_api_key"


def test_azure_client_reaches_the_responses_route(synthesizing: BackgroundServer) -> None:
    synthesizing.state.scripts.append(Script(text="From Azure.", seed=4))
    with openai.AzureOpenAI(
        azure_endpoint=synthesizing.url,
        azure_deployment="my-gpt",
        api_version="2025-04-01-preview",
        api_key="k",
        max_retries=0,
    ) as azure:
        reply = azure.responses.create(model="my-gpt", input="Hi")
    assert reply.output_text == "From Azure."
    request = synthesizing.state.player.requests[-1]
    assert request.path == "/openai/responses"
    assert request.query_value("api-version") == "2025-04-01-preview"


@pytest.mark.tapedeck("openai_responses/stream-text.yaml")
def test_through_the_fixture(tapedeck: Any) -> None:
    made = recipe("stream-text")
    with openai.OpenAI(max_retries=0) as sdk:  # OPENAI_BASE_URL, OPENAI_API_KEY: the fixture's
        events = list(sdk.responses.create(**made.body))
    assert assemble(events) == expected(made.script)
    assert [r.path for r in tapedeck.requests] == ["/v1/responses"]
