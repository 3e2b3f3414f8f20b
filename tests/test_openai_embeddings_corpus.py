"""The openai_embeddings dialect against every corpus recording it serves.

Embeddings are never streamed, so each verdict is "nothing to judge" (check() returns []
and lint skips them); what the recordings pin down instead is the wire format the
synthesizer must copy: 2-space-indented JSON, base64 little-endian float32 unit vectors
of 1536 floats for text-embedding-3-small and ada-002, usage with prompt and total
tokens, and OpenAI's 404 for an unknown model.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from functools import cache
from pathlib import Path

import pytest

from mockserver.cassettes import load
from mockserver.dialects.openai.embeddings import check, error, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Script
from mockserver.validation import lint_exchange
from tests.conftest import corpus_files, corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()

# (file, interaction) -> (status, vector length or None): all verdicts are "no violation".
RECORDINGS: dict[tuple[str, int], tuple[int, int | None]] = {
    ("openai/embeddings-gzip.yaml", 0): (200, 1536),  # text-embedding-3-small, gzip body
    ("azure/embeddings.yaml", 0): (200, 1536),  # ada-002 deployment, 2023 API
    ("openai/error-404-embeddings.yaml", 0): (404, None),  # model_not_found
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def test_the_table_covers_every_recording_this_dialect_serves() -> None:
    served = {
        (Path(entry.source.split("#")[0]).relative_to(ROOT).as_posix(), index)
        for path in corpus_files()
        for index, entry in enumerate(Library(load(path)).entries)
        if entry.dialect.name == "openai_embeddings"
    }
    assert served == set(RECORDINGS)


def vectors(body: bytes) -> list[list[float]]:
    out = []
    for item in json.loads(body)["data"]:
        raw = base64.b64decode(item["embedding"])
        out.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    return out


@pytest.mark.parametrize(("name", "index"), sorted(RECORDINGS))
def test_verdict_and_what_the_recording_holds(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    status, length = RECORDINGS[(name, index)]
    assert exchange.response.status == status
    assert lint_exchange(exchange) == []
    assert check(exchange.request, SSE.events(exchange.response.body)) == []
    assert exchange.request.json["encoding_format"] == "base64"  # what the SDK sends
    if length is not None:
        (vec,) = vectors(exchange.response.body)
        assert len(vec) == length
        assert math.isclose(math.fsum(x * x for x in vec), 1.0, rel_tol=1e-6)


def test_synthesized_body_is_laid_out_exactly_like_openais() -> None:
    (real,) = exchanges("openai/embeddings-gzip.yaml")
    usage = json.loads(real.response.body)["usage"]
    ours = synthesize(real.request, Script(seed=3))
    assert json.loads(ours.body)["usage"] == usage  # "hello" is 1 token by our count too

    def masked(body: bytes) -> str:
        return re.sub(r'"embedding": "[A-Za-z0-9+/=]+"', '"embedding": "..."', body.decode())

    assert masked(ours.body) == masked(real.response.body)
    (vec,) = vectors(ours.body)
    assert len(vec) == 1536 and math.isclose(math.fsum(x * x for x in vec), 1.0, rel_tol=1e-5)


def test_synthesized_azure_answer_has_the_recorded_shape_and_token_count() -> None:
    (real,) = exchanges("azure/embeddings.yaml")
    recorded = json.loads(real.response.body)
    ours = json.loads(synthesize(real.request, Script()).body)
    assert ours["usage"] == recorded["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert list(ours) == list(recorded)
    assert list(ours["data"][0]) == list(recorded["data"][0])
    assert len(vectors(json.dumps(ours).encode())[0]) == 1536


def test_error_matches_the_recorded_404() -> None:
    (real,) = exchanges("openai/error-404-embeddings.yaml")
    recorded = json.loads(real.response.body)
    ours = error(404, recorded["error"]["message"], recorded["error"]["type"])
    assert json.loads(ours.body) == recorded
    assert (ours.status, ours.reason) == (404, real.response.reason)


def test_recorded_azure_identity_drops_user_and_keeps_deployment_and_version() -> None:
    (exchange,) = exchanges("azure/embeddings.yaml")
    fields = dict(identity(exchange.request))
    assert "user" not in fields
    assert fields["encoding_format"] == '"base64"'
    assert fields["azure.deployment"] == '"test-openai"'
    assert fields["azure.api-version"] == '"2023-07-01-preview"'
