"""The openai_completions dialect against every corpus recording it serves.

Verdicts were written from reading the recordings: vLLM's legacy stream (``stop_reason``
next to ``finish_reason``, ``usage: null`` on every chunk though include_usage was not
asked, finish on the last text chunk) is a real server's stream and passes every rule.
The other two are not streams (a 401 to a ``stream: true`` request, answered in JSON, and
an Azure non-stream body), so the validator does not judge them: their checks are the
error body and the body shape. The synthesizer is held to the same recordings.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects.openai.completions import check, error, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.index import Library
from mockserver.model import Exchange, Request, Script
from mockserver.validation import lint_exchange
from tests.conftest import corpus_files, corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()

# (file, interaction) -> the rule ids the validator reports; None: not a stream, not judged.
VERDICTS: dict[tuple[str, int], set[str] | None] = {
    # vLLM 0.6 (opt-125m): a real server; its deviations from OpenAI are all legal.
    ("vllm/legacy-completions-stream.yaml", 0): set(),
    # OpenAI rejects the stream request before streaming: 401 JSON, application/json.
    ("openai/error-401-legacy-completions-stream.yaml", 0): None,
    # Azure 2023-07-01-preview, non-stream, prompt_filter_results + content_filter_results.
    ("azure/legacy-completions.yaml", 0): None,
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def test_the_table_covers_every_recording_this_dialect_serves() -> None:
    served = {
        (Path(entry.source.split("#")[0]).relative_to(ROOT).as_posix(), index)
        for path in corpus_files()
        for index, entry in enumerate(Library(load(path)).entries)
        if entry.dialect.name == "openai_completions"
    }
    assert served == set(VERDICTS)


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recording(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    violations = lint_exchange(exchange)
    expected = VERDICTS[(name, index)]
    if expected is None:
        assert exchange.response.status >= 400 or not exchange.request.json.get("stream")
        assert violations == []
        return
    assert {v.rule for v in violations} == expected, [str(v) for v in violations]
    direct = check(exchange.request, SSE.events(exchange.response.body))
    assert [str(v) for v in direct] == [str(v) for v in violations]
    assert check(None, SSE.events(exchange.response.body)) == []


def test_vllm_sends_usage_null_everywhere_and_finishes_on_the_last_text_chunk() -> None:
    (exchange,) = exchanges("vllm/legacy-completions-stream.yaml")
    chunks = [json.loads(e.data) for e in SSE.events(exchange.response.body) if e.data != "[DONE]"]
    assert "stream_options" not in exchange.request.json
    assert all(c["usage"] is None and c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["text"] == "metry"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)


def keys(value: Any) -> set[str]:
    return set(value) if isinstance(value, dict) else set()


def test_synthesized_chunks_have_the_keys_of_vllms_chunks() -> None:
    (real,) = exchanges("vllm/legacy-completions-stream.yaml")
    ours = synthesize(real.request, Script(text="Hello there", finish_reason="length"))
    assert check(real.request, SSE.events(ours.body)) == []
    real_chunk = json.loads(SSE.events(real.response.body)[0].data or "")
    our_chunk = json.loads(SSE.events(ours.body)[0].data or "")
    # vLLM adds usage: null without include_usage, and stop_reason: both legal extras.
    assert keys(our_chunk) == keys(real_chunk) - {"usage"}
    assert keys(our_chunk["choices"][0]) == keys(real_chunk["choices"][0]) - {"stop_reason"}
    assert our_chunk["model"] == real_chunk["model"] == "facebook/opt-125m"


def test_a_synthesized_body_has_the_shape_of_azures_minus_the_filter_results() -> None:
    (real,) = exchanges("azure/legacy-completions.yaml")
    recorded = json.loads(real.response.body)
    ours = json.loads(synthesize(real.request, Script(text="x")).body)
    assert keys(ours) == keys(recorded) - {"prompt_filter_results"}
    assert keys(ours["choices"][0]) == keys(recorded["choices"][0]) - {"content_filter_results"}
    assert keys(ours["usage"]) == keys(recorded["usage"])
    assert ours["object"] == recorded["object"] == "text_completion"
    assert ours["id"].startswith("cmpl-") and len(ours["id"]) == len(recorded["id"])


def test_error_reproduces_the_recorded_401_byte_for_byte() -> None:
    (real,) = exchanges("openai/error-401-legacy-completions-stream.yaml")
    recorded = json.loads(real.response.body)["error"]
    ours = error(401, recorded["message"], recorded["type"])
    assert ours.body == real.response.body
    assert (ours.status, ours.reason) == (real.response.status, real.response.reason)


def test_recorded_azure_identity_drops_user_and_keeps_deployment_and_version() -> None:
    (exchange,) = exchanges("azure/legacy-completions.yaml")
    request = exchange.request
    assert request.json["user"] == "ddtrace-test"
    fields = dict(identity(request))
    assert "user" not in fields and "n" not in fields  # volatile, and n: 1 is the default
    assert fields["azure.deployment"] == '"test-openai"'
    assert fields["azure.api-version"] == '"2023-07-01-preview"'
    clean = {k: v for k, v in request.json.items() if k != "user"}
    assert identity(Request("POST", request.path, request.query, json=clean)) == identity(request)
