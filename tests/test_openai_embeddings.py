"""The openai_embeddings dialect: never a stream (so no rules), vectors that are unit-length,
deterministic per seed and input, the same in base64 (little-endian float32) and in
floats, sized per model or by ``dimensions``; the request identity; OpenAI's errors."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, resolve
from mockserver.dialects.openai.embeddings import (
    DEFAULT_DIMENSIONS,
    DIALECT,
    INVALID_INPUT,
    MODEL_DIMENSIONS,
    RULES,
    VOLATILE_FIELDS,
    check,
    encode,
    error,
    identity,
    inputs,
    is_stream,
    synthesize,
    vector,
)
from mockserver.framing.sse import SSE
from mockserver.model import Event, Request, Script, header

SMALL = "text-embedding-3-small"


def request(body: Any, path: str = "/v1/embeddings", query: Any = ()) -> Request:
    return Request("POST", path, tuple(query), body=json.dumps(body).encode(), json=body)


def answer(body: dict[str, Any], script: Script | None = None) -> dict[str, Any]:
    response = synthesize(request(body), script or Script())
    assert response.status == 200, response.body
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed


def floats(embedding: Any) -> list[float]:
    """A vector as the openai SDK reads it: base64 is little-endian float32."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert isinstance(embedding, list)
    return embedding


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# --- check: nothing to judge -------------------------------------------------------------

event_lists = st.lists(
    st.builds(Event, data=st.none() | st.text(max_size=20), event=st.none() | st.text(max_size=5)),
    max_size=6,
)


@given(event_lists, st.sampled_from([None, {"model": SMALL, "input": "x"}, {"stream": True}]))
def test_check_has_no_rules_and_returns_nothing_for_any_events(
    events: list[Event], body: dict[str, Any] | None
) -> None:
    assert check(None if body is None else request(body), events) == []
    assert RULES == {}


def test_never_a_stream_even_when_asked() -> None:
    assert not is_stream(request({"model": SMALL, "input": "x", "stream": True}))
    response = synthesize(request({"model": SMALL, "input": "x", "stream": True}), Script())
    assert header(response.headers, "content-type") == "application/json"


# --- synthesize ------------------------------------------------------------------------

texts = st.text(max_size=20)
input_values = st.one_of(
    texts,
    st.lists(texts, min_size=1, max_size=3),
    st.lists(st.integers(0, 100_000), min_size=1, max_size=5),
    st.lists(st.lists(st.integers(0, 100_000), min_size=1, max_size=4), min_size=1, max_size=3),
)


@given(input_values, st.integers(0, 2**32), st.none() | st.integers(1, 64))
def test_base64_and_float_answers_hold_the_same_float32_unit_vectors(
    value: Any, seed: int, dimensions: int | None
) -> None:
    body: dict[str, Any] = {"model": SMALL, "input": value}
    if dimensions is not None:
        body["dimensions"] = dimensions
    as_floats = answer({**body, "encoding_format": "float"}, Script(seed=seed))
    as_base64 = answer({**body, "encoding_format": "base64"}, Script(seed=seed))
    items = inputs(value)
    assert items is not None
    assert [d["index"] for d in as_floats["data"]] == list(range(len(items)))
    for plain, packed in zip(as_floats["data"], as_base64["data"], strict=True):
        assert plain["object"] == packed["object"] == "embedding"
        assert isinstance(plain["embedding"], list) and isinstance(packed["embedding"], str)
        vec = floats(plain["embedding"])
        assert vec == floats(packed["embedding"])  # exactly: floats are float32 values
        assert vec == as_float32(vec)
        assert len(vec) == (dimensions or 1536)
        assert math.isclose(math.fsum(x * x for x in vec), 1.0, rel_tol=1e-5)
    assert as_floats["usage"] == as_base64["usage"]
    assert as_floats["usage"]["prompt_tokens"] == as_floats["usage"]["total_tokens"] >= 1


@pytest.mark.parametrize(
    ("model", "length"),
    [(SMALL, 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)],
)
def test_vector_length_per_model(model: str, length: int) -> None:
    assert MODEL_DIMENSIONS[model] == length
    (item,) = answer({"model": model, "input": "hi", "encoding_format": "float"})["data"]
    assert len(item["embedding"]) == length


def test_an_unknown_model_gets_the_default_length() -> None:
    (item,) = answer({"model": "nomic-embed-text", "input": "hi", "encoding_format": "float"})[
        "data"
    ]
    assert len(item["embedding"]) == DEFAULT_DIMENSIONS == 1536


def test_dimensions_shorten_the_native_vector_and_renormalize_it() -> None:
    full = list(vector(7, "text-embedding-3-large", "hi"))
    short = list(vector(7, "text-embedding-3-large", "hi", 256))
    norm = math.sqrt(math.fsum(x * x for x in full[:256]))
    assert len(full) == 3072 and len(short) == 256
    assert all(
        math.isclose(s, f / norm, rel_tol=1e-5, abs_tol=1e-9)
        for s, f in zip(short, full[:256], strict=True)
    )
    assert len(vector(7, SMALL, "hi", 2000)) == 2000  # longer than native: honoured too


def test_vectors_depend_on_seed_model_and_input_only() -> None:
    batch = answer({"model": SMALL, "input": ["a", "b", "a"], "encoding_format": "float"})["data"]
    alone = answer({"model": SMALL, "input": "a", "encoding_format": "float"})["data"][0]
    assert batch[0]["embedding"] == batch[2]["embedding"] == alone["embedding"]
    assert batch[0]["embedding"] != batch[1]["embedding"]
    assert list(vector(1, SMALL, "a")) != list(vector(2, SMALL, "a"))
    assert list(vector(1, SMALL, "a")) != list(vector(1, "text-embedding-ada-002", "a"))
    assert list(vector(1, SMALL, [1, 2])) != list(vector(1, SMALL, "[1,2]"))


def test_encode_is_little_endian_float32() -> None:
    values = vector(0, SMALL, "x", 3)
    assert base64.b64decode(encode(values)) == struct.pack("<3f", *values)


def test_the_body_is_laid_out_like_openais() -> None:
    response = synthesize(request({"model": SMALL, "input": "hi", "dimensions": 2}), Script())
    text = response.body.decode()
    assert text.startswith(
        '{\n  "object": "list",\n  "data": [\n    {\n      "object": "embedding",'
    )
    assert text.endswith(
        '  "model": "text-embedding-3-small",\n'
        '  "usage": {\n    "prompt_tokens": 1,\n    "total_tokens": 1\n  }\n}\n'
    )
    assert response.headers[:2] == (("content-type", "application/json"), ("openai-model", SMALL))
    assert header(response.headers, "openai-version") == "2020-10-01"


@pytest.mark.parametrize(
    ("value", "tokens"),
    [("hello", 1), ("Hello world", 2), ("Hello, world!", 4), (["a b", "c"], 3), ([[1, 2], [3]], 3)],
)
def test_usage_counts_words_punctuation_and_token_ids(value: Any, tokens: int) -> None:
    assert answer({"model": SMALL, "input": value})["usage"] == {
        "prompt_tokens": tokens,
        "total_tokens": tokens,
    }
    assert (
        answer({"model": SMALL, "input": value}, Script(prompt_tokens=9))["usage"]["total_tokens"]
        == 9
    )


@pytest.mark.parametrize("value", [None, [], 3, [["a"]], [1, "a"], [[]], {"text": "x"}, [True]])
def test_a_malformed_input_gets_openais_400(value: Any) -> None:
    assert inputs(value) is None
    response = synthesize(
        request({"model": SMALL, "input": value}), Script(headers=(("x-a", "1"),))
    )
    assert response.status == 400
    assert json.loads(response.body)["error"]["message"] == INVALID_INPUT
    assert header(response.headers, "x-a") == "1"


def test_a_scripted_error() -> None:
    script = Script(status=404, error_message="The model `x` does not exist.", seed=1)
    response = synthesize(request({"model": "x", "input": "hi"}), script)
    assert (response.status, response.reason) == (404, "Not Found")
    assert json.loads(response.body)["error"]["code"] == "model_not_found"
    assert (
        error(404, "The model `x` does not exist.", "invalid_request_error").body == response.body
    )


# --- identity, routes ------------------------------------------------------------------


def test_identity_and_encoding_format() -> None:
    base = {"model": SMALL, "input": ["a", "b"]}
    assert identity(request(base)) == identity(request({**base, "encoding_format": "float"}))
    assert identity(request(base)) == identity(request({"input": ["a", "b"], "model": SMALL}))
    different = [
        {**base, "encoding_format": "base64"},
        {**base, "dimensions": 256},
        {**base, "input": ["b", "a"]},
        {**base, "input": "a"},
        {**base, "model": "text-embedding-3-large"},
    ]
    assert len({identity(request(b)) for b in [base, *different]}) == 1 + len(different)


@pytest.mark.parametrize("field", sorted(VOLATILE_FIELDS))
def test_volatile_fields_are_ignored(field: str) -> None:
    base = {"model": SMALL, "input": "a"}
    assert identity(request({**base, field: "someone"})) == identity(request(base))


def test_azure_deployment_and_api_version_take_part_in_identity() -> None:
    body = {"model": "ada", "input": "a"}
    path = "/openai/deployments/emb/embeddings"
    one = identity(request(body, path, [("api-version", "2024-02-01")]))
    assert ("azure.api-version", '"2024-02-01"') in one
    assert one != identity(request(body, path, [("api-version", "2024-10-21")]))
    assert one != identity(
        request(body, path.replace("emb", "other"), [("api-version", "2024-02-01")])
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/embeddings",
        "/embeddings",
        "//openai/deployments/test-openai/embeddings",
        "/openai/v1/embeddings",
        "/api/v1/embeddings",
    ],
)
def test_routes(path: str) -> None:
    match = resolve("POST", path)
    assert match is not None and match.dialect is DIALECT and match.route.endpoint == "embeddings"


def test_the_dialect_is_registered() -> None:
    assert DIALECTS["openai_embeddings"] is DIALECT
    assert (DIALECT.framing, DIALECT.base_path) == (SSE, "/v1")
    assert dict(DIALECT.environment) == {
        "OPENAI_BASE_URL": "{url}/v1",
        "OPENAI_API_KEY": "tapedeck-test-key",
    }
