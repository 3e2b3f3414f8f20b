"""Every real-world cassette of the corpus loads, and each storage variant comes out right.

What each file holds is taken from the corpus MANIFEST.md table (status codes, number of
interactions, how the response body is stored), so these tests check the loader against
what the people who gathered the files wrote down, not against the loader itself.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mockserver.cassettes import dumps, load, loads
from mockserver.model import header
from tests.conftest import corpus_files, corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()
FILES = {path.relative_to(ROOT).as_posix(): path for path in corpus_files()}
HTTPX_LEGACY = {
    "azure/chat-nonstream.yaml": 200,
    "azure/embeddings.yaml": 200,
    "azure/legacy-completions.yaml": 200,
    "openai/error-chat-completion.yaml": 401,
}


def _manifest() -> dict[str, dict[str, str]]:
    columns = ["file", "provider", "api", "stream", "usage", "status", "n", "storage", "hdrs"]
    rows: dict[str, dict[str, str]] = {}
    if not (ROOT / "MANIFEST.md").is_file():
        return rows  # no corpus: every test here is skipped
    for line in (ROOT / "MANIFEST.md").read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            row = dict(zip(columns, cells, strict=False))
            rows[row["file"].strip("`")] = row
    return rows


MANIFEST = _manifest()


def _with(storage: str) -> list[str]:
    return sorted(name for name, row in MANIFEST.items() if storage in row["storage"])


@cache
def _raw(name: str) -> list[dict[str, Any]]:
    """The interactions as plain YAML data, to compare the loader's output against."""
    document = yaml.load(FILES[name].read_bytes(), Loader=yaml.CSafeLoader)
    interactions: list[dict[str, Any]] = document["interactions"]
    return interactions


def _raw_header(raw: dict[str, Any], name: str) -> list[Any]:
    headers = raw.get("headers") or {}
    return [v for key, values in headers.items() if key.lower() == name for v in values]


def test_the_manifest_describes_every_corpus_file() -> None:
    assert len(FILES) >= 100
    assert sorted(MANIFEST) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_corpus_file_loads(name: str) -> None:
    path = FILES[name]
    exchanges = load(path)
    row = MANIFEST[name]
    assert len(exchanges) == int(row["n"]) == len(_raw(name))
    assert {str(e.response.status) for e in exchanges} == set(row["status"].split(","))
    for index, exchange in enumerate(exchanges):
        assert exchange.source == f"{path}#{index}"
        assert isinstance(exchange.response.status, int)
        assert isinstance(exchange.response.body, bytes)
        assert isinstance(exchange.request.body, bytes)
        assert exchange.request.path.startswith("/")
        assert "#" not in exchange.request.path
        assert exchange.request.method == exchange.request.method.upper()
        assert header(exchange.response.headers, "content-encoding") is None


@pytest.mark.parametrize("name", sorted(FILES))
def test_corpus_file_survives_a_round_trip_through_dumps(name: str) -> None:
    exchanges = load(FILES[name])
    back = loads(dumps(exchanges), name)
    assert [e.response.body for e in back] == [e.response.body for e in exchanges]
    assert [e.request.body for e in back] == [e.request.body for e in exchanges]
    assert [e.request.query for e in back] == [e.request.query for e in exchanges]


def test_the_gzip_files_are_the_ones_the_manifest_names() -> None:
    recorded_gzip = sorted(
        name
        for name in FILES
        if any(_raw_header(raw["response"], "content-encoding") for raw in _raw(name))
    )
    assert recorded_gzip == _with("content-encoding:gzip")
    assert len(recorded_gzip) == 9


@pytest.mark.parametrize("name", _with("content-encoding:gzip"))
def test_gzip_bodies_come_out_decompressed(name: str) -> None:
    checked = 0
    for raw, exchange in zip(_raw(name), load(FILES[name]), strict=True):
        if _raw_header(raw["response"], "content-encoding") != ["gzip"]:
            continue
        stored = raw["response"]["body"]["string"]
        assert isinstance(stored, bytes) and stored[:2] == b"\x1f\x8b"
        body = exchange.response.body
        assert body == gzip.decompress(stored)
        assert body.startswith((b"{", b"[", b"data"))
        assert header(exchange.response.headers, "content-encoding") is None
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", _with("parsed_body"))
def test_parsed_body_files_give_the_json_of_the_mapping(name: str) -> None:
    checked = 0
    for raw, exchange in zip(_raw(name), load(FILES[name]), strict=True):
        if "parsed_body" in raw["response"]:
            parsed = raw["response"]["parsed_body"]
            assert exchange.response.body == json.dumps(parsed).encode()
            assert json.loads(exchange.response.body) == parsed
            checked += 1
        if "parsed_body" in raw["request"]:
            parsed = raw["request"]["parsed_body"]
            assert exchange.request.json == parsed
            assert json.loads(exchange.request.body) == parsed
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize(("name", "status"), sorted(HTTPX_LEGACY.items()))
def test_httpx_legacy_files_have_the_right_status_and_body(name: str, status: int) -> None:
    assert name in _with("content(httpx-legacy)")
    (exchange,) = load(FILES[name])
    (raw,) = _raw(name)
    assert "status" not in raw["response"] and "content" in raw["response"]
    assert exchange.response.status == status
    assert exchange.response.body == raw["response"]["content"].encode()
    assert json.loads(exchange.response.body)


def test_every_httpx_legacy_file_is_covered() -> None:
    assert _with("content(httpx-legacy)") == sorted(HTTPX_LEGACY)


@pytest.mark.parametrize("name", _with("!!binary (raw bytes)"))
def test_bedrock_eventstream_bodies_are_the_raw_bytes(name: str) -> None:
    for raw, exchange in zip(_raw(name), load(FILES[name]), strict=True):
        stored = raw["response"]["body"]["string"]
        body = exchange.response.body
        assert isinstance(stored, bytes) and body == stored
        # an AWS event stream frame starts with its own total length (big-endian)
        assert 16 <= int.from_bytes(body[:4], "big") <= len(body)
        content_type = header(exchange.response.headers, "content-type") or ""
        assert content_type.startswith("application/vnd.amazon.eventstream")


def test_crlf_and_fragment_quirks_survive_loading() -> None:
    (gemini,) = load(FILES["gemini/stream-sse-crlf.yaml"])
    assert b"\r\n\r\n" in gemini.response.body
    assert gemini.request.query == (("alt", "sse"),)
    mistral = load(FILES["mistral/stream-legacy.yaml"])[0]
    assert mistral.request.path == "/v1/chat/completions"
    double = load(FILES["azure/chat-nonstream.yaml"])[0]
    assert double.request.path.startswith("//openai/deployments/")
    assert double.request.origin == "https://test-openai.openai.azure.com"


def test_binary_header_values_from_boto3_come_out_as_text() -> None:
    (bedrock,) = load(FILES["bedrock/converse-nonstream.yaml"])
    assert header(bedrock.request.headers, "content-type") == "application/json"


def test_the_file_without_a_version_key_still_loads() -> None:
    name = "groq/error-404-tool-regular.yaml"
    assert "version" not in yaml.safe_load(Path(FILES[name]).read_text())
    assert load(FILES[name])[0].response.status == 404
