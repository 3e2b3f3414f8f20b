"""The real anthropic SDK, sync and async, against the bundled cassettes (``tapedeck
serve``-style, BackgroundServer) and against the synthesizer; plus the pytest fixture.

Expected values come from the recipes the cassettes were made from (what the answer was
scripted to say) and usage numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from mockserver.cli import bundled_cassettes
from mockserver.dialects._kit.wire import DEFAULT_TEXT
from mockserver.dialects.anthropic.dialect import THINKING_TEXT
from mockserver.dialects.anthropic.recipes import RECIPES
from mockserver.dialects.contract import Recipe
from mockserver.framing import sse
from mockserver.index import Library
from mockserver.model import Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.conftest import ROOT

STREAMS = [r for r in RECIPES if r.body.get("stream") and not r.script.error_kind]
STREAMS = [r for r in STREAMS if r.script.status < 400]


def recipe(name: str) -> Recipe:
    return next(r for r in RECIPES if r.file == f"anthropic/{name}.yaml")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture(scope="module")
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library(()), synthesize=True) as running:
        yield running


def client(server: BackgroundServer, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0, **options)


def recorded(recipe: Recipe) -> list[dict[str, Any]]:
    """The recorded stream's events (or the body, as one item), read from the cassette."""
    import yaml

    text = (ROOT / "cassettes" / recipe.file).read_text()
    body = yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"].encode()
    if not recipe.body.get("stream"):
        return [json.loads(body)]
    return [json.loads(e.data) for e in sse.decode(body) if e.data]


def recorded_usage(recipe: Recipe) -> dict[str, Any]:
    events = recorded(recipe)
    if not recipe.body.get("stream"):
        usage: dict[str, Any] = events[0]["usage"]
        return usage
    return {**events[0]["message"]["usage"], **events[-2]["usage"]}


def content_of(message: Any) -> list[tuple[str, Any]]:
    """(type or tool name, text / thinking / input) for each block of an SDK message."""
    out: list[tuple[str, Any]] = []
    for block in message.content:
        if block.type == "tool_use":
            out.append((block.name, block.input))
        else:
            out.append((block.type, getattr(block, block.type)))
    return out


def scripted(recipe: Recipe) -> list[tuple[str, Any]]:
    script = recipe.script
    blocks: list[tuple[str, Any]] = []
    if recipe.body.get("thinking", {}).get("type") == "enabled":
        blocks.append(("thinking", THINKING_TEXT))
    if script.text is not None or not script.tool_calls:
        blocks.append(("text", DEFAULT_TEXT if script.text is None else script.text))
    return blocks + [(c.name, json.loads(c.arguments)) for c in script.tool_calls]


def assemble(events: list[Any]) -> tuple[list[tuple[str, Any]], str | None, int]:
    """Blocks, stop reason and output tokens rebuilt by hand from the SDK's raw events."""
    blocks: list[list[Any]] = []
    reason, output = None, -1
    for event in events:
        if event.type == "content_block_start":
            block = event.content_block
            key = block.name if block.type == "tool_use" else block.type
            blocks.append([key, ""])
        elif event.type == "content_block_delta":
            d = event.delta
            piece = {
                "text_delta": "text",
                "thinking_delta": "thinking",
                "input_json_delta": "partial_json",
            }.get(d.type)
            if piece:
                blocks[event.index][1] += getattr(d, piece)
        elif event.type == "message_delta":
            reason, output = event.delta.stop_reason, event.usage.output_tokens
    out = [(k, json.loads(v or "{}") if k not in ("text", "thinking") else v) for k, v in blocks]
    return out, reason, output


def stop_reason(recipe: Recipe) -> str:
    return "tool_use" if recipe.script.tool_calls else "end_turn"


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_sync_client_streams_every_bundled_cassette(
    server: BackgroundServer, recipe: Recipe
) -> None:
    events = list(client(server).messages.create(**recipe.body))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    blocks, reason, output = assemble(events)
    assert blocks == scripted(recipe)
    assert reason == stop_reason(recipe)
    assert output == recorded_usage(recipe)["output_tokens"]
    assert events[0].message.usage.input_tokens == recorded_usage(recipe)["input_tokens"]


@pytest.mark.parametrize("recipe", STREAMS, ids=lambda r: r.file)
def test_the_stream_helper_gets_the_final_message(server: BackgroundServer, recipe: Recipe) -> None:
    body = {k: v for k, v in recipe.body.items() if k != "stream"}
    with client(server).messages.stream(**body) as stream:
        texts = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert content_of(final) == scripted(recipe)
    assert texts == "".join(v for k, v in scripted(recipe) if k == "text")
    assert final.stop_reason == stop_reason(recipe)
    usage = final.usage.model_dump(exclude_none=True)
    assert {k: usage[k] for k in recorded_usage(recipe)} == recorded_usage(recipe)
    signed = [e["delta"] for e in recorded(recipe) if e.get("delta", {}).get("signature")]
    for block in final.content:
        if block.type == "thinking":
            assert [block.signature] == [d["signature"] for d in signed]
        if block.type == "tool_use":
            assert block.id.startswith("toolu_01")


def test_the_async_client_streams_with_the_helper(server: BackgroundServer) -> None:
    tools = recipe("stream-tool-use")

    async def run() -> Any:
        async with anthropic.AsyncAnthropic(
            base_url=server.url, api_key="k", max_retries=0
        ) as aclient:
            body = {k: v for k, v in tools.body.items() if k != "stream"}
            async with aclient.messages.stream(**body) as stream:
                return await stream.get_final_message()

    final = asyncio.run(run())
    assert content_of(final) == scripted(tools)
    assert final.stop_reason == "tool_use"


def test_a_non_streaming_answer(server: BackgroundServer) -> None:
    plain = recipe("nonstream")
    reply = client(server).messages.create(**plain.body)
    assert content_of(reply) == [("text", plain.script.text)]
    assert reply.stop_reason == "end_turn" and reply.id.startswith("msg_01")
    usage = reply.usage.model_dump(exclude_none=True)
    assert {k: usage[k] for k in recorded_usage(plain)} == recorded_usage(plain)


def test_the_beta_client_is_served_from_the_same_recording(server: BackgroundServer) -> None:
    text = recipe("stream-text")
    events = list(client(server).beta.messages.create(**text.body, betas=["files-api-2025-04-14"]))
    assert assemble(events)[0] == scripted(text)
    assert server.state.player.requests[-1].path == "/v1/messages"
    # Older SDKs' beta client adds ?beta=true (corpus: stream-minimal-padded-data).
    reply = rawhttp.request(server.url, "/v1/messages?beta=true", text.body)
    assert reply.status == 200 and reply.chunks is not None and len(reply.chunks) > 5
    assert server.state.player.requests[-1].query == (("beta", "true"),)


def test_count_tokens(server: BackgroundServer) -> None:
    counted = recipe("count-tokens")
    reply = client(server).messages.count_tokens(**counted.body)
    assert reply.input_tokens == recorded(counted)[0]["input_tokens"]
    beta = client(server).beta.messages.count_tokens(**counted.body)
    assert beta.input_tokens == reply.input_tokens


def test_a_recorded_529_raises_overloaded_error(server: BackgroundServer) -> None:
    overloaded = recipe("error-529-overloaded")
    with pytest.raises(anthropic.OverloadedError) as raised:
        client(server).messages.create(**overloaded.body)
    assert raised.value.status_code == 529
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": raised.value.request_id,
    }


def test_a_recorded_mid_stream_error_raises_after_the_first_events(
    server: BackgroundServer,
) -> None:
    midstream = recipe("stream-midstream-overloaded")
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in client(server).messages.create(**midstream.body):
            seen.append(event.type)
    assert seen[0] == "message_start" and "content_block_delta" in seen
    assert "message_stop" not in seen
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    body = {k: v for k, v in midstream.body.items() if k != "stream"}
    with pytest.raises(anthropic.APIStatusError), client(server).messages.stream(**body) as s:
        s.get_final_message()


def test_both_auth_styles_are_accepted(server: BackgroundServer) -> None:
    plain = recipe("nonstream")
    for headers in ({"x-api-key": "sk-ant-x"}, {"authorization": "Bearer sk-ant-x"}, {}):
        reply = rawhttp.request(server.url, "/v1/messages", plain.body, headers=headers)
        assert reply.status == 200, headers
        assert reply.json()["content"][0]["text"] == plain.script.text
    token = anthropic.Anthropic(base_url=server.url, auth_token="t", max_retries=0)
    assert token.messages.create(**plain.body).content[0].type == "text"


def test_a_miss_raises_bad_request_without_retrying(server: BackgroundServer) -> None:
    default_retries = anthropic.Anthropic(base_url=server.url, api_key="k")
    before = len(server.state.player.requests)
    with pytest.raises(anthropic.BadRequestError) as raised:
        default_retries.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=16,
            messages=[{"role": "user", "content": "unrecorded"}],
        )
    assert "Nearest recorded requests" in raised.value.message
    assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert len(server.state.player.requests) == before + 1  # x-should-retry: false honoured


# --- synthesized answers ---------------------------------------------------------------

ASK = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 512,
    "messages": [{"role": "user", "content": "Weather in Oslo?"}],
}


def test_a_synthesized_stream_with_thinking_and_tool_use(synth: BackgroundServer) -> None:
    call = ToolCall("get_weather", '{"city": "Oslo", "days": [1, 2]}')
    synth.state.scripts.append(Script(text="Checking.", tool_calls=(call,), chunk_size=3))
    body = {**ASK, "thinking": {"type": "enabled", "budget_tokens": 256}}
    with client(synth).messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert content_of(final) == [
        ("thinking", THINKING_TEXT),
        ("text", "Checking."),
        ("get_weather", {"city": "Oslo", "days": [1, 2]}),
    ]
    assert final.content[0].signature  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    pieces = [THINKING_TEXT, "Checking.", call.arguments]  # cut every 3 characters
    assert final.usage.output_tokens == sum(math.ceil(len(p) / 3) for p in pieces)


def test_a_synthesized_answer_counts_the_tokens_count_tokens_reports(
    synth: BackgroundServer,
) -> None:
    sdk = client(synth)
    synth.state.scripts.extend([Script(), Script(text="Fine.", seed=4)])
    counted = sdk.messages.count_tokens(model=ASK["model"], messages=ASK["messages"])
    reply = sdk.messages.create(**ASK)
    assert reply.usage.input_tokens == counted.input_tokens > 0
    assert content_of(reply) == [("text", "Fine.")]
    events = list(sdk.messages.create(**ASK, stream=True))  # no script left: the default
    assert assemble(events)[0] == [("text", DEFAULT_TEXT)]


def test_a_synthesized_mid_stream_overload_and_a_529(synth: BackgroundServer) -> None:
    sdk = client(synth)
    synth.state.scripts.append(Script(text="x" * 40, error_kind="overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as midstream:
        list(sdk.messages.create(**ASK, stream=True))
    assert midstream.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    synth.state.scripts.append(Script(status=529, error_message="Overloaded"))
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        sdk.messages.create(**ASK)
    assert overloaded.value.status_code == 529
    assert overloaded.value.response.headers["request-id"] == overloaded.value.request_id


@pytest.mark.tapedeck("anthropic/stream-text.yaml")
def test_through_the_fixture(tapedeck: Any) -> None:
    text = recipe("stream-text")
    sdk = anthropic.Anthropic(max_retries=0)  # ANTHROPIC_BASE_URL and _API_KEY from the fixture
    events = list(sdk.messages.create(**text.body))
    assert assemble(events)[0] == scripted(text)
    assert [r.path for r in tapedeck.requests] == ["/v1/messages"]
