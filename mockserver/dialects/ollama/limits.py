"""What sizes a synthesized Ollama answer, bounded before synthesis (``_kit/limits.py``):
the inputs of an embedding and their ``dimensions``, and the token ids of generate's
``context`` (the prompt's tokens, then one per generated piece).

Beside the dialect module: the synthesizer reads its inputs, vector length and token
estimate here, so what is checked is what is built.
"""

from __future__ import annotations

import math
from typing import Any

from mockserver.dialects._kit import limits
from mockserver.dialects.ollama.check import endpoint
from mockserver.model import Request, Script, canonical_json

DEFAULT_DIMENSIONS = 768
"""The length of a vector when ``dimensions`` is absent (or above 8192)."""


def tokens(value: Any) -> int:
    """About four characters per token, at least 1."""
    text = value if isinstance(value, str) else canonical_json(value)
    return max(1, math.ceil(len(text) / 4))


def dimensions(body: dict[str, Any]) -> int:
    asked = body.get("dimensions")
    return asked if type(asked) is int and 0 < asked <= 8192 else DEFAULT_DIMENSIONS


def inputs(body: dict[str, Any]) -> list[Any]:
    """What /api/embed embeds: one text, or a list of them."""
    given = body.get("input")
    return [given] if isinstance(given, str) and given else given if isinstance(given, list) else []


def _body(request: Request) -> dict[str, Any]:
    return request.json if isinstance(request.json, dict) else {}


def _inputs(request: Request, _: Script) -> int | None:
    return len(inputs(_body(request))) if endpoint(request) == "embed" else None


def _dimensions(request: Request, _: Script) -> int | None:
    embeds = endpoint(request) in ("embed", "embeddings")
    return limits.count(_body(request).get("dimensions")) if embeds else None


def _values(request: Request, _: Script) -> int | None:
    if endpoint(request) != "embed":
        return None
    return len(inputs(_body(request))) * dimensions(_body(request))


def _context(request: Request, script: Script) -> int | None:
    """Generate lists the prompt's tokens and one per piece generated (a thinking piece
    or two more, without a script's think tags: about)."""
    if endpoint(request) != "generate":
        return None
    prompt = script.prompt_tokens
    prompt = tokens(_body(request).get("prompt", "")) if prompt is None else prompt
    return prompt + limits.script_pieces(script)


def _generates(request: Request, _: Script) -> int | None:
    return 1 if endpoint(request) in ("chat", "generate") else None


LIMITS = (
    limits.Size("inputs", "len(input)", _inputs),
    limits.Size("dimensions", "dimensions", _dimensions),
    limits.Size("values", "len(input) x dimensions", _values),
    limits.Size("tokens", "context (prompt tokens + generated)", _context),
    *limits.script_sizes(_generates),
)
