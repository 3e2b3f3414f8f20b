"""OpenAI Embeddings (``POST /v1/embeddings``), on OpenAI, Azure and compatible servers.

Never streamed, so there is no stream to judge: ``check`` has no rules and returns no
violation for any events (the dialect contract hands it events, never a JSON body).
The synthesizer is the useful part: deterministic unit vectors, in floats or in the
base64 little-endian float32 that the openai SDK asks for by default and decodes locally
(wire-formats.md §4; corpus: openai/embeddings-gzip, azure/embeddings).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit import limits, wire
from mockserver.dialects._kit.rules import RuleTable
from mockserver.dialects.openai import common
from mockserver.dialects.openai.recipes_embeddings import RECIPES
from mockserver.model import Event, Identity, Request, Response, Script, Violation, canonical_json

VOLATILE_FIELDS: dict[str, str] = {
    "user": "an end-user tag for abuse monitoring; the vectors do not depend on it",
}
DEFAULTS: dict[str, Any] = {"encoding_format": "float"}
"""The API's default format, spelled out, asks for the same answer as leaving it out (the
openai SDK itself always sends ``base64`` unless told otherwise)."""

RULES = RuleTable()
"""No stream, no stream rules."""

MODEL_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_DIMENSIONS = 1536
"""The length of a vector for a model not in MODEL_DIMENSIONS, unless ``dimensions`` says."""

INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def is_stream(request: Request) -> bool:
    return False


def identity(request: Request) -> Identity:
    """Every body field but VOLATILE_FIELDS (``encoding_format: "float"`` equals none), plus
    Azure's deployment and api-version. ``base64`` and ``float`` answers differ in bytes,
    so the format takes part."""
    return common.body_identity(request, VOLATILE_FIELDS, DEFAULTS)


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Embeddings are never streamed: no rule applies to any events, so always []."""
    return []


error = common.error


# --- synthesize -------------------------------------------------------------------------


def inputs(value: Any) -> list[Any] | None:
    """The inputs of a request: a string or one list of token ids is one input; a list of
    strings or of token lists is several; None when ``input`` has none of these shapes."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(type(t) is int for t in value):
        return [value]
    if all(isinstance(item, str) for item in value) or all(
        isinstance(item, list) and item and all(type(t) is int for t in item) for item in value
    ):
        return list(value)
    return None


def vector(seed: int, model: str, item: Any, dimensions: int | None = None) -> array[float]:
    """The float32 unit vector for ``item``: Gaussian draws seeded by a digest of the seed,
    the model and the input, so equal inputs embed equally. ``dimensions`` shortens the
    model's native vector and renormalizes it, as OpenAI's text-embedding-3 models do."""
    native = MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    key = f"{seed}\0{model}\0{canonical_json(item)}".encode("utf-8", "surrogatepass")
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest(), "big"))
    draws = [rng.gauss(0.0, 1.0) for _ in range(max(native, dimensions or 0))]
    draws = draws[: dimensions or native]
    norm = math.sqrt(math.fsum(x * x for x in draws)) or 1.0
    return array("f", (x / norm for x in draws))


def encode(values: array[float]) -> str:
    """Little-endian float32 bytes, base64-encoded: what ``encoding_format: base64`` gets."""
    if sys.byteorder == "big":
        values = array("f", values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _numbers(request: Request, _: Script) -> int | None:
    """How many numbers the answer holds: a vector per input, each as long as asked."""
    items = inputs(limits.body_field(request, "input"))
    if items is None:
        return None
    model = limits.body_field(request, "model")
    native = MODEL_DIMENSIONS.get(model if isinstance(model, str) else "", DEFAULT_DIMENSIONS)
    asked = limits.count(limits.body_field(request, "dimensions"))
    return len(items) * (asked if asked is not None and asked >= 1 else native)


def _inputs(request: Request, _: Script) -> int | None:
    items = inputs(limits.body_field(request, "input"))
    return None if items is None else len(items)


LIMITS = (
    limits.Size("inputs", "len(input)", _inputs),
    limits.Size("dimensions", "dimensions", limits.number("dimensions")),
    limits.Size("values", "len(input) x dimensions", _numbers),
)
"""What sizes a synthesized answer (checked before synthesis: ``_kit/limits.py``)."""


def synthesize(request: Request, script: Script) -> Response:
    """OpenAI's answer: one vector per input (see ``vector``; ``script.seed`` picks the
    family of vectors), floats or base64 per ``encoding_format``, in OpenAI's
    2-space-indented layout. prompt_tokens = total_tokens is the script's, else token ids
    plus words and punctuation of the texts. The script's text and tool calls are unused.
    A malformed ``input`` gets OpenAI's 400."""
    if script.status >= 400:
        return common.scripted_error(script)
    body = request.json if isinstance(request.json, dict) else {}
    items = inputs(body.get("input"))
    if items is None:
        return wire.with_headers(error(400, INVALID_INPUT, "invalid_request_error"), script.headers)
    model = body["model"] if isinstance(body.get("model"), str) else "text-embedding-3-small"
    asked = body.get("dimensions")
    dimensions = asked if type(asked) is int and asked >= 1 else None
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        values = vector(script.seed, model, item, dimensions)
        embedding: Any = encode(values) if as_base64 else values.tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = script.prompt_tokens
    if tokens is None:
        tokens = max(1, common.estimate_tokens(items))
    whole = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    payload = (json.dumps(whole, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    base = common.success_headers("application/json", random.Random(script.seed), tokens)
    headers = (base[0], ("openai-model", model), *base[1:])  # OpenAI names the model
    return wire.with_headers(Response(200, headers, payload, "OK"), script.headers)


DIALECT = common.dialect(
    "openai_embeddings",
    common.routes("embeddings", "embeddings"),
    is_stream=is_stream,
    identity=identity,
    check=check,
    synthesize=synthesize,
    rules=RULES,
    recipes=RECIPES,
    limits=LIMITS,
)
