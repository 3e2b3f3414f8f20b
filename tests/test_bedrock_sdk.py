"""The real boto3 bedrock-runtime client against the bundled Bedrock cassettes (served as
``tapedeck serve`` does) and against synthesis: converse, converse_stream,
invoke_model and invoke_model_with_response_stream, SigV4-signed as in production.

Expected values come from the recipes (what each answer was scripted to say) and usage
numbers from the recorded bytes, never from the server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from mockserver.cassettes import load
from mockserver.cli import bundled_cassettes
from mockserver.dialects.bedrock.dialect import DIALECT, split_thinking
from mockserver.dialects.bedrock.recipes import RECIPES
from mockserver.dialects.contract import Recipe
from mockserver.framing.aws_eventstream import decode, encode
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response, Script, ToolCall
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT

NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True  # as `tapedeck serve` does by default
        yield running


@pytest.fixture
def synthesizing(server: BackgroundServer) -> Iterator[BackgroundServer]:
    server.state.player.synthesize = True
    try:
        yield server
    finally:
        server.state.player.synthesize = False
        server.state.scripts.clear()


OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """boto3 keeps connections pooled; close them, or a garbage-collected socket warns."""
    yield
    while OPEN:
        OPEN.pop().close()


def client(url: str | None, config: Config = NO_RETRIES) -> Any:
    """A bedrock-runtime client at ``url`` with dummy keys (None: from the environment)."""
    keys: dict[str, Any] = (
        {}
        if url is None
        else {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
        }
    )
    made = boto3.session.Session().client("bedrock-runtime", config=config, **keys)
    OPEN.append(made)
    return made


def recipe(file: str) -> Recipe:
    return next(r for r in RECIPES if r.file == f"bedrock/{file}")


def model_id(recipe: Recipe) -> str:
    return unquote(recipe.path.split("/")[2])


def recorded(recipe: Recipe) -> bytes:
    (exchange,) = load(ROOT / "cassettes" / recipe.file)
    return exchange.response.body


def assemble(events: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """What a boto3 user rebuilds from converse_stream events."""
    out: dict[str, Any] = {"text": "", "reasoning": "", "tools": {}, "kinds": []}
    for item in events:
        ((kind, value),) = item.items()
        out["kinds"].append(kind)
        if kind == "contentBlockStart":
            tool = value["start"]["toolUse"]
            out["tools"][value["contentBlockIndex"]] = [tool["name"], ""]
        elif kind == "contentBlockDelta":
            delta = value["delta"]
            out["text"] += delta.get("text", "")
            out["reasoning"] += delta.get("reasoningContent", {}).get("text", "")
            if "toolUse" in delta:
                out["tools"][value["contentBlockIndex"]][1] += delta["toolUse"]["input"]
        elif kind == "messageStop":
            out["stop"] = value["stopReason"]
        elif kind == "metadata":
            out["usage"] = value["usage"]
    return out


def expect_script(script: Script, got: dict[str, Any]) -> None:
    reasoning, text = split_thinking(script.text)
    assert got["text"] == (text or "") and got["reasoning"] == (reasoning or "")
    assert [(name, json.loads(args)) for name, args in got["tools"].values()] == [
        (call.name, json.loads(call.arguments)) for call in script.tool_calls
    ]


@pytest.mark.parametrize("file", ["converse-stream.yaml", "converse-stream-tool-use.yaml"])
def test_converse_stream_replays_every_bundled_stream(server: BackgroundServer, file: str) -> None:
    r = recipe(file)
    reply = client(server.url).converse_stream(modelId=model_id(r), **r.body)
    assert reply["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    got = assemble(reply["stream"])
    expect_script(r.script, got)
    assert got["stop"] == ("tool_use" if r.script.tool_calls else "end_turn")
    metadata = json.loads(decode(recorded(r))[-1].data or "")
    assert got["usage"] == metadata["usage"]
    assert got["kinds"][0] == "messageStart" and got["kinds"][-2:] == ["messageStop", "metadata"]


@pytest.mark.parametrize("file", ["converse.yaml", "converse-tool-use.yaml"])
def test_converse_replays_every_bundled_answer(server: BackgroundServer, file: str) -> None:
    r = recipe(file)
    reply = client(server.url).converse(modelId=model_id(r), **r.body)
    body = json.loads(recorded(r))
    assert reply["output"] == body["output"]
    assert (reply["stopReason"], reply["usage"]) == (body["stopReason"], body["usage"])
    content = reply["output"]["message"]["content"]
    assert [b["text"] for b in content if "text" in b] == ([r.script.text] if r.script.text else [])
    assert [(b["toolUse"]["name"], b["toolUse"]["input"]) for b in content if "toolUse" in b] == [
        (c.name, json.loads(c.arguments)) for c in r.script.tool_calls
    ]


def test_invoke_model_returns_the_recorded_message(server: BackgroundServer) -> None:
    r = recipe("invoke.yaml")
    reply = client(server.url).invoke_model(modelId=model_id(r), body=json.dumps(r.body))
    message = json.loads(reply["body"].read())
    assert message == json.loads(recorded(r))
    assert message["content"] == [{"type": "text", "text": r.script.text}]
    assert reply["contentType"] == "application/json"
    headers = reply["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-output-token-count"] == str(message["usage"]["output_tokens"])


def test_invoke_model_with_response_stream_yields_anthropic_events(
    server: BackgroundServer,
) -> None:
    r = recipe("invoke-with-response-stream.yaml")
    reply = client(server.url).invoke_model_with_response_stream(
        modelId=model_id(r), body=json.dumps(r.body)
    )
    assert reply["contentType"] == "application/json"
    events = [json.loads(item["chunk"]["bytes"]) for item in reply["body"]]
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == r.script.text
    last = json.loads(base64.b64decode(json.loads(decode(recorded(r))[-1].data or "")["bytes"]))
    assert events[-1] == last and "amazon-bedrock-invocationMetrics" in last


def test_a_recorded_throttling_error_raises_throttling_exception(server: BackgroundServer) -> None:
    r = recipe("error-throttling.yaml")
    with pytest.raises(ClientError) as raised:
        client(server.url).converse_stream(modelId=model_id(r), **r.body)
    failure = raised.value.response
    assert failure["Error"] == {"Code": "ThrottlingException", "Message": r.script.error_message}
    assert failure["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert type(raised.value).__name__ == "ThrottlingException"  # boto3's modeled class


def test_a_miss_is_a_validation_exception_without_retrying(server: BackgroundServer) -> None:
    before = len(server.state.player.requests)
    retrying = client(server.url, Config(retries={"mode": "standard", "total_max_attempts": 3}))
    with pytest.raises(ClientError) as raised:
        retrying.converse(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0",
            messages=[{"role": "user", "content": [{"text": "unrecorded"}]}],
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "Nearest recorded requests" in raised.value.response["Error"]["Message"]
    assert len(server.state.player.requests) == before + 1  # a 400 is never retried


# --- synthesis --------------------------------------------------------------------------

SYNTH_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}]}


@pytest.mark.parametrize(
    "script",
    [
        Script(text="Synthesized, streamed, and reassembled by boto3.", chunk_size=5, seed=11),
        Script(
            text="<think>The user wants weather.</think>Checking.",
            tool_calls=(
                ToolCall("get_weather", '{"city": "Paris"}'),
                ToolCall("get_time", '{"zone": "Europe/Paris"}'),
            ),
            chunk_size=3,
            seed=12,
        ),
    ],
    ids=["text", "thinking-and-two-tools"],
)
def test_converse_stream_from_synthesis(synthesizing: BackgroundServer, script: Script) -> None:
    synthesizing.state.scripts.append(script)
    reply = client(synthesizing.url).converse_stream(modelId=SYNTH_MODEL, **ask("synth stream"))
    got = assemble(reply["stream"])
    expect_script(script, got)
    assert got["stop"] == ("tool_use" if script.tool_calls else "end_turn")
    usage = got["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0


def test_converse_from_synthesis(synthesizing: BackgroundServer) -> None:
    script = Script(
        text="<think>Short.</think>Done.",
        tool_calls=(ToolCall("lookup", '{"q": "x"}'),),
        finish_reason="length",
        prompt_tokens=42,
        seed=13,
    )
    synthesizing.state.scripts.append(script)
    reply = client(synthesizing.url).converse(modelId=SYNTH_MODEL, **ask("synth converse"))
    reasoning, text, tool = reply["output"]["message"]["content"]
    assert reasoning["reasoningContent"]["reasoningText"]["text"] == "Short."
    assert reasoning["reasoningContent"]["reasoningText"]["signature"]
    assert text == {"text": "Done."}
    assert (tool["toolUse"]["name"], tool["toolUse"]["input"]) == ("lookup", {"q": "x"})
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["inputTokens"] == 42


def test_invoke_model_from_synthesis(synthesizing: BackgroundServer) -> None:
    synthesizing.state.scripts.append(Script(text="Bonjour !", prompt_tokens=7, seed=14))
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, **ask("synth invoke")}
    reply = client(synthesizing.url).invoke_model(modelId=SYNTH_MODEL, body=json.dumps(body))
    message = json.loads(reply["body"].read())
    assert message["content"] == [{"type": "text", "text": "Bonjour !"}]
    assert message["usage"]["input_tokens"] == 7 and message["stop_reason"] == "end_turn"


def test_invoke_model_with_response_stream_from_synthesis(
    synthesizing: BackgroundServer,
) -> None:
    script = Script(tool_calls=(ToolCall("get_weather", '{"city": "Oslo"}'),), chunk_size=4)
    synthesizing.state.scripts.append(script)
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, **ask("synth iwrs")}
    reply = client(synthesizing.url).invoke_model_with_response_stream(
        modelId=SYNTH_MODEL, body=json.dumps(body)
    )
    events = [json.loads(item["chunk"]["bytes"]) for item in reply["body"]]
    arguments = "".join(
        e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"
    )
    assert json.loads(arguments) == {"city": "Oslo"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_a_scripted_error_from_synthesis(synthesizing: BackgroundServer) -> None:
    synthesizing.state.scripts.append(Script(status=403, error_message="Not allowed."))
    with pytest.raises(ClientError) as raised:
        client(synthesizing.url).converse(modelId=SYNTH_MODEL, **ask("synth error"))
    assert raised.value.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": "Not allowed.",
    }


def test_a_replayed_mid_stream_exception_raises_in_boto3() -> None:
    # A stream that a throttlingException frame ends: check() finds it legal, and boto3
    # raises it while iterating, after the events before it.
    def frame(kind: str, name: str, payload: dict[str, Any]) -> bytes:
        pairs = [(f":{kind}-type", name), (":content-type", "application/json")]
        return encode([*pairs, (":message-type", kind)], json.dumps(payload).encode())

    body = b"".join(
        [
            frame("event", "messageStart", {"p": "ab", "role": "assistant"}),
            frame("event", "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            frame("exception", "throttlingException", {"message": "Slow down."}),
        ]
    )
    path = f"/model/{SYNTH_MODEL}/converse-stream"
    request = Request("POST", path, body=json.dumps(ask("x")).encode(), json=ask("x"))
    headers = (("Content-Type", "application/vnd.amazon.eventstream"),)
    exchange = Exchange(request, Response(200, headers, body, "OK"), "hand-made")
    assert DIALECT.check(request, decode(body)) == []
    with BackgroundServer(Library([exchange])) as running:
        reply = client(running.url).converse_stream(modelId=SYNTH_MODEL, **ask("x"))
        seen = []
        with pytest.raises(EventStreamError) as raised:
            for item in reply["stream"]:
                seen.append(next(iter(item)))
        reply["stream"].close()  # boto3 leaves the raising stream's connection open
    assert seen == ["messageStart", "contentBlockDelta"]
    assert raised.value.response["Error"] == {
        "Code": "throttlingException",
        "Message": "Slow down.",
    }


# --- through the environment and the pytest fixture -----------------------------------


def test_the_dialect_environment_points_boto3_at_the_server(
    server: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DIALECT.environment:
        monkeypatch.setenv(name, value.replace("{url}", server.url))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    r = recipe("converse.yaml")
    bedrock = client(None)
    assert bedrock.meta.endpoint_url == server.url
    reply = bedrock.converse(modelId=model_id(r), **r.body)
    assert reply["output"]["message"]["content"] == [{"text": r.script.text}]


@pytest.mark.tapedeck("bedrock/converse-stream.yaml")
def test_through_the_fixture(tapedeck: Any) -> None:
    r = recipe("converse-stream.yaml")
    bedrock = client(None)
    got = assemble(bedrock.converse_stream(modelId=model_id(r), **r.body)["stream"])
    expect_script(r.script, got)
    assert [q.path for q in tapedeck.requests] == [f"/model/{model_id(r)}/converse-stream"]
