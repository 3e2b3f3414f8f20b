"""Faults through the real SDKs (openai, anthropic, google-genai, ollama, cohere, boto3)
against a synthesizing server: a retried 429 succeeds, a reset is a connection error, and
what each SDK makes of a stream that just ends (the table in README 'Faults').

openai, anthropic and google-genai ask with the ``x-tapedeck-fault`` header, as a user
would; the others with the server's queue (what ``tapedeck.fault`` fills)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import boto3
import cohere
import ollama
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types

from mockserver.faults import HEADER, Faults, parse
from mockserver.server_thread import BackgroundServer

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_faults(server: BackgroundServer) -> None:
    server.state.faults = Faults()


def _openai(url: str, fault: str) -> list[Any]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, extra_headers={HEADER: fault}
    )
    return [c.choices[0].delta.content for c in stream if c.choices]


def _anthropic(url: str, fault: str) -> list[Any]:
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    stream = client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=20, messages=HI, stream=True,
        extra_headers={HEADER: fault},
    )  # fmt: skip
    return [event.type for event in stream]


def _genai(url: str, fault: str) -> list[Any]:
    options = types.HttpOptions(
        base_url=url, headers={HEADER: fault}, retry_options=types.HttpRetryOptions(attempts=1)
    )
    client = genai.Client(api_key="k", http_options=options)
    return [
        c.text
        for c in client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi")
    ]


def _ollama(url: str, fault: str) -> list[Any]:
    with ollama.Client(host=url) as client:
        return [p.message.content for p in client.chat(model="llama3.2", messages=HI, stream=True)]


def _cohere(url: str, fault: str) -> list[Any]:
    with cohere.ClientV2(api_key="k", base_url=url, max_retries=0) as client:
        return [event.type for event in client.chat_stream(model="command-r", messages=HI)]


def _boto3(url: str, fault: str) -> list[Any]:
    client = boto3.session.Session().client(
        "bedrock-runtime", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    try:
        answer = client.converse_stream(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0",
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
        )
        return [next(iter(event)) for event in answer["stream"]]
    finally:
        client.close()


BY_HEADER = {"openai": _openai, "anthropic": _anthropic, "google-genai": _genai}
BY_QUEUE = {"ollama": _ollama, "cohere": _cohere, "boto3": _boto3}
SDKS: dict[str, Callable[[str, str], list[Any]]] = {**BY_HEADER, **BY_QUEUE}


def run(server: BackgroundServer, sdk: str, fault: str) -> list[Any]:
    if sdk in BY_QUEUE:
        server.state.faults.queue(parse(fault))
    return SDKS[sdk](server.url, fault)


def test_openai_retries_two_429s_honouring_retry_after(server: BackgroundServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=2)
    started = time.monotonic()
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        extra_headers={HEADER: "status:code=429,retry_after=1,times=2"},
    )
    took = time.monotonic() - started
    assert reply.choices[0].message.content
    assert took >= 2.0, f"two Retry-After: 1 waits, yet the answer came after {took:.2f}s"
    faults = [r.fault for r in server.state.player.requests[-3:]]
    assert faults == ["status:code=429,retry_after=1,times=2"] * 2 + [""]


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_reset_is_a_connection_error(server: BackgroundServer, sdk: str) -> None:
    with pytest.raises(Exception) as raised:
        run(server, sdk, "reset:after=3")
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None and len(chain) < 8:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, ConnectionResetError) for e in chain), chain


# What each SDK does with a stream that just ends after 3 events (no terminator, no
# finish, no usage): all of them return what came, without an error.
TRUNCATED = {
    "openai": ["", "This", " is "],
    "anthropic": ["message_start", "content_block_start"],  # the third event, a ping, is dropped
    "google-genai": ["This", " is ", "a sy"],
    "ollama": ["This", " is ", "a sy"],
    "cohere": ["message-start", "content-start", "content-delta"],
    "boto3": ["messageStart", "contentBlockDelta", "contentBlockDelta"],
}


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_truncated_stream_ends_quietly_in_every_sdk(server: BackgroundServer, sdk: str) -> None:
    assert run(server, sdk, "truncate:after=3") == TRUNCATED[sdk]


def test_anthropics_stream_helper_gives_a_message_without_a_stop_reason(
    server: BackgroundServer,
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=20, messages=HI,
        extra_headers={HEADER: "truncate:after=3"},
    ) as stream:  # fmt: skip
        assert stream.get_final_message().stop_reason is None
