"""The real openai SDK's ``client.embeddings`` against Tapedeck. The SDK sends
``encoding_format: "base64"`` unless told otherwise and decodes little-endian float32
itself, so the vectors it returns must equal, exactly, the floats of an explicit
``encoding_format="float"`` answer: both from the bundled cassettes (base64.yaml and
float.yaml share a seed) and from synthesis."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import Iterator

import openai
import pytest

from mockserver.cli import bundled_cassettes
from mockserver.dialects.contract import Recipe
from mockserver.dialects.openai import recipes_embeddings as recipes
from mockserver.index import Library
from mockserver.model import Script
from mockserver.server_thread import BackgroundServer
from tests.conftest import ROOT


def recipe(name: str) -> Recipe:
    return next(r for r in recipes.RECIPES if r.file.endswith("/" + name))


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as running:
        running.state.player.allow_repeats = True
        yield running


@pytest.fixture(scope="module")
def synth() -> Iterator[BackgroundServer]:
    with BackgroundServer(synthesize=True) as running:
        yield running


def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)


def recorded_vectors(r: Recipe) -> list[list[float]]:
    """The vectors in a bundled cassette, decoded here from its bytes."""
    import yaml

    text = (ROOT / "cassettes" / r.file).read_text()
    body = json.loads(yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"])
    out = []
    for item in body["data"]:
        raw = base64.b64decode(item["embedding"])
        out.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    return out


def unit(vector: list[float]) -> bool:
    return math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)


def test_the_sdks_default_base64_and_explicit_floats_give_the_same_vector(
    server: BackgroundServer,
) -> None:
    r = recipe("base64.yaml")
    with client(server) as c:
        default = c.embeddings.create(model=r.body["model"], input=r.body["input"])
        assert server.state.player.requests[-1].json["encoding_format"] == "base64"
        as_floats = c.embeddings.create(
            model=r.body["model"], input=r.body["input"], encoding_format="float"
        )
        assert server.state.player.requests[-1].json["encoding_format"] == "float"
    (vector,) = [d.embedding for d in default.data]
    assert vector == as_floats.data[0].embedding == recorded_vectors(r)[0]
    assert len(vector) == 1536 and unit(vector)
    assert default.model == "text-embedding-3-small" and default.object == "list"
    assert default.usage.prompt_tokens == default.usage.total_tokens == 10


def test_explicit_base64_is_left_encoded_by_the_sdk(server: BackgroundServer) -> None:
    r = recipe("base64.yaml")
    with client(server) as c:
        reply = c.embeddings.create(**r.body)
    encoded = reply.data[0].embedding
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == recorded_vectors(r)[0]


def test_batch_with_dimensions(server: BackgroundServer) -> None:
    r = recipe("batch-dimensions.yaml")
    with client(server) as c:
        reply = c.embeddings.create(model=r.body["model"], input=r.body["input"], dimensions=256)
    vectors = [d.embedding for d in reply.data]
    assert [d.index for d in reply.data] == [0, 1]
    assert vectors == recorded_vectors(r)
    assert all(len(v) == 256 and unit(v) for v in vectors) and vectors[0] != vectors[1]


def test_token_id_inputs_async(server: BackgroundServer) -> None:
    r = recipe("token-ids.yaml")

    async def run() -> openai.types.CreateEmbeddingResponse:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0) as c:
            return await c.embeddings.create(model=r.body["model"], input=r.body["input"])

    reply = asyncio.run(run())
    assert [d.embedding for d in reply.data] == recorded_vectors(r)
    assert reply.usage.prompt_tokens == 3  # three token ids


def test_recorded_404(server: BackgroundServer) -> None:
    r = recipe("error-404.yaml")
    with client(server) as c, pytest.raises(openai.NotFoundError) as raised:
        c.embeddings.create(model="nonexistent", input=["Hello, world!"])
    assert raised.value.code == "model_not_found"
    assert raised.value.message.endswith(r.script.error_message)


def test_synthesized_vectors_agree_across_encodings_and_honour_dimensions(
    synth: BackgroundServer,
) -> None:
    synth.state.scripts.clear()
    synth.state.scripts.extend([Script(seed=9), Script(seed=9), Script(seed=10)])
    texts = ["first text", "second text"]
    with client(synth) as c:
        default = c.embeddings.create(model="text-embedding-3-large", input=texts, dimensions=64)
        floats = c.embeddings.create(
            model="text-embedding-3-large", input=texts, dimensions=64, encoding_format="float"
        )
        other_seed = c.embeddings.create(model="text-embedding-3-large", input=texts, dimensions=64)
    got = [d.embedding for d in default.data]
    assert got == [d.embedding for d in floats.data]
    assert all(len(v) == 64 and unit(v) for v in got)
    assert got != [d.embedding for d in other_seed.data]


def test_synthesized_default_length_per_model(synth: BackgroundServer) -> None:
    synth.state.scripts.clear()
    with client(synth) as c:
        lengths = [
            len(c.embeddings.create(model=model, input="x").data[0].embedding)
            for model in ("text-embedding-3-small", "text-embedding-3-large", "my-local-model")
        ]
    assert lengths == [1536, 3072, 1536]
