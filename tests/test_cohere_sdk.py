"""The real cohere SDK (``ClientV2``, ``AsyncClientV2``) against the bundled cassettes
(``tapedeck serve``-style, BackgroundServer) and against the synthesizer; plus the
environment it reads and the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say) and usage numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cohere
import pytest
import yaml

from mockserver.cli import bundled_cassettes
from mockserver.dialects.cohere.recipes import RECIPES
from mockserver.dialects.contract import Recipe
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT


def recipe(name: str) -> Recipe:
    return next(r for r in RECIPES if r.file == f"cohere/{name}.yaml")


def asked(recipe: Recipe) -> dict[str, Any]:
    """The recipe's request as SDK keyword arguments (the SDK sets ``stream`` itself)."""
    return {k: v for k, v in recipe.body.items() if k != "stream"}


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture(scope="module")
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library(()), synthesize=True) as running:
        yield running


@contextmanager
def client(server: BackgroundServer, **options: Any) -> Iterator[cohere.ClientV2]:
    """A client that closes its connections (unclosed sockets fail the run)."""
    with cohere.ClientV2(
        **{"api_key": "k", "base_url": server.url, "max_retries": 0, **options}
    ) as sdk:
        yield sdk


def recorded(recipe: Recipe) -> list[dict[str, Any]]:
    """The recorded events' JSON (or the body, as one item), read from the cassette."""
    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    if not recipe.body.get("stream"):
        return [json.loads(body)]
    return [json.loads(e.data) for e in sse.decode(body) if e.data and e.data != "[DONE]"]


def billed(recipe: Recipe) -> dict[str, int]:
    last = recorded(recipe)[-1]
    usage = last["delta"]["usage"] if recipe.body.get("stream") else last["usage"]
    found: dict[str, int] = usage["billed_units"]
    return found


def assemble(events: list[Any]) -> tuple[str, str, list[tuple[str, Any]], Any]:
    """(text, tool plan, [(tool name, arguments)], the message-end delta) rebuilt by hand
    from the SDK's typed events."""
    text, plan, calls, end = "", "", [], None
    for event in events:
        if event.type == "content-delta":
            text += event.delta.message.content.text
        elif event.type == "tool-plan-delta":
            plan += event.delta.message.tool_plan
        elif event.type == "tool-call-start":
            function = event.delta.message.tool_calls.function
            calls.append([function.name, function.arguments or ""])
        elif event.type == "tool-call-delta":
            calls[event.index][1] += event.delta.message.tool_calls.function.arguments
        elif event.type == "message-end":
            end = event.delta
    return text, plan, [(name, json.loads(arguments)) for name, arguments in calls], end


def scripted_calls(script: Script) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in script.tool_calls]


def test_a_streamed_text_answer(server: BackgroundServer) -> None:
    text = recipe("stream-text")
    with client(server) as sdk:
        events = list(sdk.chat_stream(**asked(text)))
    assert [events[0].type, events[-1].type] == ["message-start", "message-end"]
    said, plan, calls, end = assemble(events)
    assert (said, plan, calls) == (text.script.text, "", [])
    assert end.finish_reason == "COMPLETE"
    assert end.usage.billed_units.input_tokens == billed(text)["input_tokens"]
    assert end.usage.billed_units.output_tokens == billed(text)["output_tokens"]


def test_a_streamed_tool_turn_plans_then_calls(server: BackgroundServer) -> None:
    tools = recipe("stream-tool-calls")
    with client(server) as sdk:
        events = list(sdk.chat_stream(**asked(tools)))
    said, plan, calls, end = assemble(events)
    assert (said, plan) == ("", tools.script.text)
    assert calls == scripted_calls(tools.script)
    assert end.finish_reason == "TOOL_CALL"
    ids = [e.delta.message.tool_calls.id for e in events if e.type == "tool-call-start"]
    assert [i.rsplit("_", 1)[0] for i in ids] == ["get_time", "get_weather"]


def test_a_non_streamed_answer(server: BackgroundServer) -> None:
    plain = recipe("nonstream")
    with client(server) as sdk:
        reply = sdk.chat(**asked(plain))
    assert [(c.type, c.text) for c in reply.message.content or []] == [("text", plain.script.text)]
    assert reply.finish_reason == "COMPLETE" and reply.message.tool_calls is None
    assert reply.id == recorded(plain)[0]["id"]
    assert reply.usage is not None and reply.usage.billed_units is not None
    assert reply.usage.billed_units.output_tokens == billed(plain)["output_tokens"]


def test_a_non_streamed_tool_call(server: BackgroundServer) -> None:
    tools = recipe("nonstream-tool-calls")
    with client(server) as sdk:
        reply = sdk.chat(**asked(tools))
    assert reply.finish_reason == "TOOL_CALL" and reply.message.content is None
    assert reply.message.tool_plan == tools.script.text
    calls = [
        (c.function.name, json.loads(c.function.arguments or ""))
        for c in reply.message.tool_calls or []
        if c.function is not None
    ]
    assert calls == scripted_calls(tools.script)


def test_the_async_client_streams(server: BackgroundServer) -> None:
    tools = recipe("stream-tool-calls")

    async def run() -> list[Any]:
        aclient = cohere.AsyncClientV2(api_key="k", base_url=server.url, max_retries=0)
        async with aclient:
            return [event async for event in aclient.chat_stream(**asked(tools))]

    assert assemble(asyncio.run(run()))[2] == scripted_calls(tools.script)


def test_a_recorded_429_raises_too_many_requests(server: BackgroundServer) -> None:
    limited = recipe("error-429-rate-limited")
    before = len(server.state.player.requests)
    with client(server) as sdk, pytest.raises(cohere.TooManyRequestsError) as raised:
        next(iter(sdk.chat_stream(**asked(limited))))
    assert raised.value.status_code == 429
    assert raised.value.body == {
        "id": recorded_error_id(limited),
        "message": limited.script.error_message,
    }
    assert len(server.state.player.requests) == before + 1


def recorded_error_id(recipe: Recipe) -> str:
    text = (ROOT / "cassettes" / recipe.file).read_text()
    found: str = json.loads(yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"])[
        "id"
    ]
    return found


def test_a_recorded_in_band_error_ends_the_stream_with_error(server: BackgroundServer) -> None:
    midstream = recipe("stream-midstream-error")
    with client(server) as sdk:
        events = list(sdk.chat_stream(**asked(midstream)))
    said, _, _, end = assemble(events)
    assert end.finish_reason == "ERROR" and end.error == midstream.script.error_message
    assert midstream.script.text is not None and midstream.script.text.startswith(said)
    assert 0 < len(said) < len(midstream.script.text)
    assert "content-end" not in [e.type for e in events]


def test_a_miss_raises_bad_request_without_retrying(server: BackgroundServer) -> None:
    before = len(server.state.player.requests)
    with client(server, max_retries=None) as sdk, pytest.raises(cohere.BadRequestError) as raised:
        sdk.chat(  # the SDK's default retries
            model="command-a-03-2025", messages=[{"role": "user", "content": "unrecorded"}]
        )
    body = raised.value.body
    assert isinstance(body, dict) and set(body) == {"id", "message"}
    assert "Nearest recorded requests" in body["message"]
    assert len(server.state.player.requests) == before + 1


# --- synthesized answers ---------------------------------------------------------------

ASK = {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Oslo weather?"}]}


def test_a_synthesized_tool_turn_streamed_and_not(synth: BackgroundServer) -> None:
    call = ToolCall("get_weather", '{"location": "Oslo", "days": [1, 2]}')
    script = Script(text="Checking.", tool_calls=(call,), chunk_size=3)
    synth.state.scripts.extend([script, script])
    with client(synth) as sdk:
        _, plan, calls, end = assemble(list(sdk.chat_stream(**ASK)))
        reply = sdk.chat(**ASK)
    assert (plan, calls, end.finish_reason) == ("Checking.", scripted_calls(script), "TOOL_CALL")
    pieces = ["Checking.", call.arguments]  # cut every 3 characters
    assert end.usage.billed_units.output_tokens == sum(-(-len(p) // 3) for p in pieces)
    assert reply.message.tool_plan == "Checking." and reply.message.tool_calls is not None
    assert reply.message.tool_calls[0].id.startswith("get_weather_")


def test_a_synthesized_error_status_raises_the_sdks_error(synth: BackgroundServer) -> None:
    synth.state.scripts.append(Script(status=503, error_message="Try later."))
    with client(synth) as sdk, pytest.raises(cohere.ServiceUnavailableError) as raised:
        sdk.chat(**ASK)
    assert raised.value.body["message"] == "Try later."  # type: ignore[index]


# --- the environment and the fixture ---------------------------------------------------

PROBE = """
import os, cohere
with cohere.ClientV2(max_retries=0) as sdk:  # CO_API_URL and CO_API_KEY
    answer = sdk.chat(**{ask!r})
os.environ["CO_API_URL"] = "http://changed.invalid"
print(answer.message.content[0].text)
with cohere.ClientV2() as later:  # CO_API_URL was read once, at import
    print(later._client_wrapper.get_base_url())
"""


def test_the_sdk_reads_the_environment_when_it_is_first_imported(server: BackgroundServer) -> None:
    plain = recipe("nonstream")
    env = {**os.environ, "CO_API_URL": server.url, "CO_API_KEY": "from-env"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(ask=asked(plain))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [plain.script.text, server.url]
    assert ("Authorization", "Bearer from-env") in server.state.player.requests[-1].headers


@pytest.mark.tapedeck("cohere/stream-text.yaml")
def test_through_the_fixture(tapedeck: Any) -> None:
    text = recipe("stream-text")
    # CO_API_KEY from the fixture; the URL passed, since the SDK read CO_API_URL at import.
    with cohere.ClientV2(base_url=tapedeck.base_url("cohere"), max_retries=0) as sdk:
        assert assemble(list(sdk.chat_stream(**asked(text))))[0] == text.script.text
    assert [r.path for r in tapedeck.requests] == ["/v2/chat"]
