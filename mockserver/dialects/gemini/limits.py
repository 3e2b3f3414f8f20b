"""What sizes a synthesized Gemini answer, bounded before synthesis (``_kit/limits.py``):
the candidates asked (``generationConfig.candidateCount``), and for the embeddings the
requests, their ``outputDimensionality`` and the numbers of all the vectors.

Beside the dialect module: the synthesizer reads its candidates and vector sizes here, so
what is checked is what is built.
"""

from __future__ import annotations

from typing import Any

from mockserver.dialects._kit import limits
from mockserver.dialects.gemini import common
from mockserver.model import Request, Script

EMBEDDING_SIZE = 768
"""The length of a vector when the request asks for none (or for more than 3072)."""

ASIDES = ("countTokens", "embedContent", "batchEmbedContents")
"""The methods whose answer carries no text of the script."""


def candidates(request: Request, script: Script) -> int | None:
    """The candidates of a generation: the script's n, else candidateCount, else 1; None
    for the asides."""
    if common.target(request)[1] in ASIDES:
        return None
    asked = limits.count(common.field(request.json, "generationConfig", "candidateCount"))
    return script.n or (asked if asked is not None and asked >= 1 else 1)


def embedding_size(request: dict[str, Any]) -> int:
    """The length of one vector: ``outputDimensionality`` when it is 1 to 3072."""
    size = common.field(request, "outputDimensionality")
    return size if type(size) is int and 1 <= size <= 3072 else EMBEDDING_SIZE


def _asked_candidates(request: Request, _: Script) -> int | None:
    if common.target(request)[1] in ASIDES:
        return None
    return limits.count(common.field(request.json, "generationConfig", "candidateCount"))


def _embedded(request: Request) -> list[dict[str, Any]]:
    """The requests an embedding answer holds a vector for."""
    method, body = common.target(request)[1], request.json
    if not isinstance(body, dict):
        return []
    if method == "embedContent":
        return [body]
    asked = body.get("requests") if method == "batchEmbedContents" else None
    return [r for r in asked if isinstance(r, dict)] if isinstance(asked, list) else []


def _dimensions(request: Request, _: Script) -> int | None:
    asked = [limits.count(common.field(r, "outputDimensionality")) for r in _embedded(request)]
    return max((size for size in asked if size is not None), default=None)


LIMITS = (
    limits.Size("n", "generationConfig.candidateCount", _asked_candidates),
    limits.Size("inputs", "len(requests)", lambda r, _: len(_embedded(r)) or None),
    limits.Size("dimensions", "outputDimensionality", _dimensions),
    limits.Size(
        "values", "the vectors' lengths", lambda r, _: sum(map(embedding_size, _embedded(r)))
    ),
    *limits.script_sizes(candidates, uses_n=True),
)
