"""Azure OpenAI through the real ``openai.AzureOpenAI`` client: chat completions, legacy
completions and embeddings, replayed from the corpus's real Azure recordings (deployment
in the path, ``?api-version=`` in the query, the ``api-key`` header) and synthesized;
plus the newer ``/openai/v1/...`` form through the plain client."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from functools import cache
from typing import Any

import openai
import pytest

from mockserver.cassettes import load
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Script, header
from mockserver.server_thread import BackgroundServer
from tests.conftest import corpus_root

FILES = (
    "azure/legacy-completions.yaml",
    "azure/embeddings.yaml",
    "azure/chat-stream-include-usage-prompt-filter.yaml",
)


@cache
def recorded(name: str) -> Exchange:
    (exchange,) = load(corpus_root() / name)
    return exchange


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    library = Library([recorded(name) for name in FILES])
    assert len(library.entries) == len(FILES)
    with BackgroundServer(library) as running:
        running.state.player.allow_repeats = True
        yield running


@pytest.fixture(scope="module")
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as running:
        yield running


def azure(server: BackgroundServer, version: str, **options: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=server.url,
        api_version=version,
        api_key="azure-key",
        max_retries=0,
        **options,
    )


@pytest.mark.corpus
def test_recorded_legacy_completion(server: BackgroundServer) -> None:
    exchange = recorded("azure/legacy-completions.yaml")
    body = exchange.request.json
    with azure(server, "2023-07-01-preview", azure_deployment="test-openai") as client:
        reply = client.completions.create(**body)
    answer = json.loads(exchange.response.body)
    assert reply.choices[0].text == answer["choices"][0]["text"]
    assert reply.usage is not None and reply.usage.model_dump(exclude_none=True) == answer["usage"]
    sent = server.state.player.requests[-1]
    assert sent.path == "/openai/deployments/test-openai/completions"
    assert sent.query == (("api-version", "2023-07-01-preview"),)
    assert header(sent.headers, "api-key") == "azure-key"
    assert header(sent.headers, "authorization") is None


@pytest.mark.corpus
def test_recorded_embedding_decoded_by_the_sdk(server: BackgroundServer) -> None:
    exchange = recorded("azure/embeddings.yaml")
    body = {k: v for k, v in exchange.request.json.items() if k != "encoding_format"}
    with azure(server, "2023-07-01-preview", azure_deployment="test-openai") as client:
        reply = client.embeddings.create(**body)  # the SDK adds base64 itself
    raw = base64.b64decode(json.loads(exchange.response.body)["data"][0]["embedding"])
    assert reply.data[0].embedding == list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert reply.model == "ada" and reply.usage.total_tokens == 2
    assert header(server.state.player.requests[-1].headers, "api-key") == "azure-key"


@pytest.mark.corpus
def test_recorded_chat_stream_with_the_prompt_filter_chunk(server: BackgroundServer) -> None:
    exchange = recorded("azure/chat-stream-include-usage-prompt-filter.yaml")
    chunks_sent = [json.loads(e.data or "") for e in SSE.events(exchange.response.body)[:-1]]
    want_text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks_sent[1:-1])
    with azure(server, "2024-12-01-preview") as client:  # the model names the deployment
        chunks = list(client.chat.completions.create(**exchange.request.json))
        with client.chat.completions.stream(
            **{k: v for k, v in exchange.request.json.items() if k != "stream"}
        ) as stream:
            final = stream.get_final_completion()
    first = chunks[0]
    assert first.choices == [] and first.usage is None and first.id == ""
    assert first.model_extra is not None and "prompt_filter_results" in first.model_extra
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want_text and text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks_sent[-1]["usage"]["total_tokens"]
    # The stream helper skips the prompt-filter chunk (its object is "") and still assembles.
    assert final.choices[0].message.content == want_text
    assert final.choices[0].finish_reason == "stop"
    assert server.state.player.requests[-1].path == (
        "/openai/deployments/gpt-5.2_2025-12-11/chat/completions"
    )


@pytest.mark.corpus
def test_another_api_version_is_a_miss(server: BackgroundServer) -> None:
    body = recorded("azure/legacy-completions.yaml").request.json
    with (
        azure(server, "2024-10-21", azure_deployment="test-openai") as client,
        pytest.raises(openai.BadRequestError) as raised,
    ):
        client.completions.create(**body)
    assert "azure.api-version" in raised.value.message


def test_synthesized_answers_on_every_azure_route(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    synth.state.scripts.extend([Script(text="Hello from Azure"), Script(text="Hi"), Script()])
    with azure(synth, "2024-10-21", azure_deployment="my-deployment") as client:
        stream = client.completions.create(model="x", prompt="Say hi", stream=True)
        completion = "".join(c.choices[0].text for c in stream if c.choices)
        chat = client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "Say hi"}]
        )
        vector = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert completion == "Hello from Azure"
    assert chat.choices[0].message.content == "Hi"
    assert len(vector.data[0].embedding) == 1536
    sent = synth.state.player.synthesized[-3:]
    assert [r.path for r in sent] == [
        f"/openai/deployments/my-deployment/{endpoint}"
        for endpoint in ("completions", "chat/completions", "embeddings")
    ]
    assert all(r.query_value("api-version") == "2024-10-21" for r in sent)
    assert all(header(r.headers, "api-key") == "azure-key" for r in sent)


def test_the_v1_form_through_the_plain_client(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    synth.state.scripts.extend([Script(text="v1 completion"), Script(seed=4)])
    base = synth.url + "/openai/v1"
    with openai.OpenAI(base_url=base, api_key="azure-key", max_retries=0) as client:
        completion = client.completions.create(model="gpt-35-turbo-instruct", prompt="x")
        vector = client.embeddings.create(model="text-embedding-3-large", input="x")
    assert completion.choices[0].text == "v1 completion"
    assert len(vector.data[0].embedding) == 3072
    paths = [r.path for r in synth.state.player.synthesized[-2:]]
    assert paths == ["/openai/v1/completions", "/openai/v1/embeddings"]
