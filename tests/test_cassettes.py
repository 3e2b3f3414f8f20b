"""mockserver.cassettes: every vcrpy variant reads, our writes round-trip and replay in vcrpy."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import re
import textwrap
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
import yaml
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from mockserver import cassettes
from mockserver.cassettes import dump, dumps, load, loads
from mockserver.credentials import header_kind, normalized
from mockserver.errors import CassetteFormatError, CassetteNotFoundError
from mockserver.model import Exchange, Headers, Request, Response, Timing, header
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact

SSE = b'data: {"id":"1","choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'


def one(text: str, source: str = "t.yaml") -> Exchange:
    (exchange,) = loads(textwrap.dedent(text), source)
    return exchange


def cassette(response: str, request: str = "") -> str:
    """A one-interaction cassette; both parts are YAML indented by four spaces."""
    request = request or (
        "    method: post\n    uri: https://api.openai.com/v1/chat/completions\n    body: null\n"
    )
    return f"interactions:\n- request:\n{request}  response:\n{response}version: 1\n"


def exchange(
    body: bytes = SSE,
    headers: Headers = (("Content-Type", "text/event-stream"),),
    request_body: bytes = b'{"model":"gpt-4o","stream":true}',
    query: tuple[tuple[str, str], ...] = (),
    request_headers: Headers = (("Content-Type", "application/json"),),
    path: str = "/v1/chat/completions",
    timing: Timing | None = None,
) -> Exchange:
    request = Request(
        "POST", path, query, request_headers, request_body, None, "https://api.openai.com"
    )
    return Exchange(request, Response(200, headers, body, "OK"), timing=timing)


# --------------------------------------------------------------------------- variants


def test_string_body_in_every_yaml_scalar_style() -> None:
    literal = one(
        cassette(
            "    status: {code: 200, message: OK}\n    body:\n      string: |+\n"
            "        data: 1\n\n        data: 2\n\n"
        )
    )
    folded = one(
        cassette(
            '    status: {code: 200, message: OK}\n    body:\n      string: \'{"a":\n'
            '        "b"}\n\n        \'\n'
        )
    )
    quoted = one(
        cassette(
            '    status: {code: 200, message: OK}\n    body: {string: "data: 1\\r\\n\\r\\n"}\n'
        )
    )
    assert literal.response.body == b"data: 1\n\ndata: 2\n\n"
    assert folded.response.body == b'{"a": "b"}\n'
    assert quoted.response.body == b"data: 1\r\n\r\n"
    assert literal.request.method == "POST"
    assert literal.response.reason == "OK"
    assert literal.source == "t.yaml#0"


def test_binary_gzip_body_is_decompressed_and_content_encoding_dropped() -> None:
    packed = base64.encodebytes(gzip.compress(b'{"ok": true}')).decode()
    body = textwrap.indent(packed, " " * 8)
    text = cassette(
        "    status: {code: 200, message: OK}\n"
        "    headers:\n      Content-Encoding: [gzip]\n      Content-Length: ['31']\n"
        f"    body:\n      string: !!binary |\n{body}"
    )
    response = one(text).response
    assert response.body == b'{"ok": true}'
    assert header(response.headers, "content-encoding") is None
    assert header(response.headers, "content-length") == "31"  # stale framing kept as recorded


@pytest.mark.parametrize(
    "packed", [zlib.compress(b"[1, 2]"), zlib.compress(b"[1, 2]")[2:-4]], ids=["zlib", "raw"]
)
def test_deflate_body_is_decompressed_both_ways_servers_send_it(packed: bytes) -> None:
    encoded = base64.b64encode(packed).decode()
    response = one(
        cassette(
            "    status: {code: 200, message: OK}\n    headers: {content-encoding: [deflate]}\n"
            f"    body: {{string: !!binary '{encoded}'}}\n"
        )
    ).response
    assert response.body == b"[1, 2]"
    assert response.headers == ()


def test_brotli_body_without_the_brotli_module_names_the_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(cassettes._DECODERS, "br", raising=False)
    text = cassette(
        "    status: {code: 200, message: OK}\n    headers: {Content-Encoding: [br]}\n"
        "    body: {string: !!binary 'AAAA'}\n"
    )
    with pytest.raises(
        CassetteFormatError, match=r"interaction 0: response Content-Encoding.*'br'"
    ):
        loads(text, "b.yaml")


def test_request_gzip_body_is_decompressed_and_parsed() -> None:
    encoded = base64.b64encode(gzip.compress(b'{"model": "m"}')).decode()
    request = one(
        cassette(
            "    status: {code: 200, message: OK}\n",
            "    method: POST\n    uri: https://h/v1/x\n"
            "    headers: {Content-Encoding: [gzip], Content-Type: [application/json]}\n"
            f"    body: !!binary '{encoded}'\n",
        )
    ).request
    assert request.body == b'{"model": "m"}'
    assert request.json == {"model": "m"}
    assert request.headers == (("Content-Type", "application/json"),)


def test_parsed_body_in_request_and_response_becomes_json_bytes() -> None:
    exchange_ = one(
        """\
        interactions:
        - request:
            headers: {content-type: [application/json]}
            method: POST
            parsed_body:
              messages: [{content: hi, role: user}]
              temperature: 0.0
            uri: https://api.groq.com/openai/v1/chat/completions
          response:
            headers: {content-type: [application/json]}
            parsed_body:
              id: chatcmpl-1
              usage: {total_tokens: 3}
            status: {code: 200, message: OK}
        version: 1
        """
    )
    parsed_request = {"messages": [{"content": "hi", "role": "user"}], "temperature": 0.0}
    assert exchange_.request.json == parsed_request
    assert exchange_.request.body == json.dumps(parsed_request).encode()
    response = {"id": "chatcmpl-1", "usage": {"total_tokens": 3}}
    assert exchange_.response.body == json.dumps(response).encode()


def test_old_httpx_layout_with_content_and_status_code() -> None:
    response = one(
        cassette(
            '    content: \'{"error": {"code": "invalid_api_key"}}\'\n'
            "    headers: {Content-Type: [application/json]}\n"
            "    http_version: HTTP/1.1\n    status_code: 401\n"
        )
    ).response
    assert response.status == 401
    assert response.body == b'{"error": {"code": "invalid_api_key"}}'
    assert response.reason == ""


@pytest.mark.parametrize("stored", ["    body: null\n", "    body: {string: null}\n", ""])
def test_null_or_missing_bodies_are_empty_bytes(stored: str) -> None:
    exchange_ = one(cassette(f"    status: {{code: 204, message: No Content}}\n{stored}"))
    assert exchange_.response.body == b""
    assert exchange_.request.body == b""
    assert exchange_.request.json is None
    assert exchange_.response.status == 204


def test_request_bodies_as_str_bytes_and_none() -> None:
    status = "    status: {code: 200, message: OK}\n"
    as_str = one(cassette(status, "    method: POST\n    uri: http://h/\n    body: '{\"a\": 1}'\n"))
    as_bytes = one(
        cassette(status, "    method: POST\n    uri: http://h/\n    body: !!binary 'gAE='\n")
    )
    assert (as_str.request.body, as_str.request.json) == (b'{"a": 1}', {"a": 1})
    assert (as_bytes.request.body, as_bytes.request.json) == (b"\x80\x01", None)


def test_yaml_document_end_marker() -> None:
    text = cassette(
        "    status: {code: 200, message: OK}\n    body:\n      string: |+\n        x\n\n"
    )
    assert text.endswith("version: 1\n")
    assert one(text + "...\n").response.body == b"x\n\n"


def test_json_top_level_document(tmp_path: Path) -> None:
    document = {
        "interactions": [
            {
                "request": {
                    "method": "GET",
                    "uri": "http://h/v1/models",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"string": '{"url": "http://x"}'},
                },
            }
        ],
        "version": 1,
    }
    path = tmp_path / "models.json"
    # vcrpy's json serializer writes indent=4; "\/" is a JSON escape that YAML refuses
    path.write_text(json.dumps(document, indent=4).replace("http://x", "http:\\/\\/x"))
    assert "\\/" in path.read_text()
    (loaded,) = load(path)
    assert loaded.response.body == b'{"url": "http://x"}'
    assert loaded.request.path == "/v1/models"
    assert loaded.source == f"{path}#0"


def test_tapedeck_timing_key() -> None:
    timed = one(
        cassette(
            "    status: {code: 200, message: OK}\n"
            "    tapedeck: {headers: 0.25, events: [0.3, 1, 1.5]}\n"
        )
    )
    untimed = one(cassette("    status: {code: 200, message: OK}\n"))
    assert timed.timing == Timing(0.25, (0.3, 1.0, 1.5))
    assert untimed.timing is None


def test_header_lists_flatten_to_pairs_keeping_case() -> None:
    response = one(
        cassette(
            "    status: {code: 200, message: OK}\n    headers:\n"
            "      Set-Cookie: [a=1, b=2]\n      x-request-id: abc\n"
            "      Content-Length: [12]\n      X-Amz-Date: [!!binary 'MjAyNQ==']\n"
        )
    ).response
    assert response.headers == (
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("x-request-id", "abc"),
        ("Content-Length", "12"),
        ("X-Amz-Date", "2025"),
    )


def test_uri_with_query_fragment_and_double_slash() -> None:
    request = one(
        cassette(
            "    status: {code: 200, message: OK}\n",
            "    method: POST\n    uri: https://x.openai.azure.com:8443//openai/deployments/d/"
            "chat/completions?api-version=2024-02-01&empty=&q=a%20b+c&q=2#stream\n",
        )
    ).request
    assert request.origin == "https://x.openai.azure.com:8443"
    assert request.path == "//openai/deployments/d/chat/completions"
    assert request.query == (
        ("api-version", "2024-02-01"),
        ("empty", ""),
        ("q", "a b c"),
        ("q", "2"),
    )


def test_crlf_and_trailing_space_bodies_round_trip_exactly() -> None:
    crlf = b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n'
    spaces = b'data: {"type":"ping"}     \n\nevent: x \ndata: y\n\n'
    padded = b"  leading\n\x85next\xe2\x80\xa8line\nend   "
    originals = [exchange(body) for body in (crlf, spaces, padded, SSE)]
    text = dumps(originals)
    assert "string: |" in text  # the plain SSE body stays a readable literal block
    assert text.count("string: |") == 1
    assert [e.response.body for e in loads(text, "x")] == [crlf, spaces, padded, SSE]


def test_non_utf8_bytes_round_trip_exactly_as_binary() -> None:
    raw = bytes(range(256))
    text = dumps([exchange(raw, request_body=b"\xff\x00upload")])
    assert "!!binary" in text
    (back,) = loads(text, "x")
    assert back.response.body == raw
    assert back.request.body == b"\xff\x00upload"


def test_dumps_drops_framing_headers_and_writes_the_timing_key() -> None:
    headers = (
        ("Content-Type", "text/event-stream"),
        ("Content-Length", "999"),
        ("Transfer-Encoding", "chunked"),
        ("content-encoding", "gzip"),
        ("X-Request-Id", "r1"),
    )
    text = dumps([exchange(headers=headers, timing=Timing(0.5, (0.6, 0.75)))])
    (back,) = loads(text, "x")
    assert back.response.headers == (("Content-Type", "text/event-stream"), ("X-Request-Id", "r1"))
    assert back.timing == Timing(0.5, (0.6, 0.75))
    raw = yaml.safe_load(text)["interactions"][0]
    assert list(raw["request"]) == ["body", "headers", "method", "uri"]
    assert list(raw["response"]) == ["status", "headers", "body", "tapedeck"]


def test_dumps_without_origin_writes_a_local_uri() -> None:
    request = Request("GET", "/v1/models", (("a", "1 2"),))
    text = dumps([Exchange(request, Response(200))])
    assert yaml.safe_load(text)["interactions"][0]["request"]["uri"] == (
        "http://127.0.0.1/v1/models?a=1+2"
    )


# --------------------------------------------------------------------------- property

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_AWKWARD = st.lists(
    st.sampled_from(
        [
            "data: {}",
            "\r",
            "\n",
            "\r\n",
            " ",
            "\t",
            "\x00",
            "\x85",
            "\u2028",
            "\ufeff",
            "é",
            "…",
            "---",
            "...",
            "#",
            "|",
            "'",
            '"',
            ": ",
            "- ",
            "\x7f",
            "\U0001f600",
            "null",
        ]
    ),
    max_size=25,
).map("".join)
_BODY = st.one_of(st.binary(max_size=120), _TEXT.map(str.encode), _AWKWARD.map(str.encode))
_SKIP = DEFAULT_REDACTION.headers | cassettes._FRAMING
_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True).filter(
    lambda n: (
        n.lower() not in _SKIP
        and header_kind(n.lower()) is None  # a name the redactor takes for a credential's
        and "organization" not in n.lower()
        and not n.lower().endswith("-project")
    )
)
_HEADERS = st.lists(st.tuples(_NAME, st.one_of(_TEXT, _AWKWARD)), max_size=6).map(tuple)
_PATH = st.lists(st.from_regex(r"[A-Za-z0-9._~:-]{0,8}", fullmatch=True), min_size=1, max_size=4)
# Names the redactor would take for a credential (it compares them normalized: case,
# "-" and "_" aside, so "SU_BSCRIPTIONKEY" is Azure's "subscription-key") are left out:
# their values are replaced on the way to disk, which tests/test_redaction* check.
_SECRET_PARAMS = frozenset(normalized(name) for name in DEFAULT_REDACTION.query_params)
_QUERY = st.lists(
    st.tuples(_TEXT.filter(lambda n: n != "" and normalized(n) not in _SECRET_PARAMS), _TEXT),
    max_size=3,
).map(tuple)
_TIMING = st.none() | st.builds(
    Timing, st.floats(0, 1e6), st.lists(st.floats(0, 1e6), max_size=4).map(tuple)
)


def _grouped(headers: Headers) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    return list(grouped.items())


@given(
    st.lists(
        st.builds(
            lambda method, path, query, rq_headers, rq_body, status, headers, body, timing: (
                Exchange(
                    Request(
                        method, "/" + "/".join(path), query, rq_headers, rq_body, None, "https://h"
                    ),
                    Response(status, headers, body, "OK"),
                    timing=timing,
                )
            ),
            st.sampled_from(["GET", "POST", "DELETE", "PATCH"]),
            _PATH,
            _QUERY,
            _HEADERS,
            _BODY,
            st.integers(100, 599),
            _HEADERS,
            _BODY,
            _TIMING,
        ),
        max_size=3,
    )
)
def test_loads_of_dumps_gives_back_requests_and_responses(exchanges: list[Exchange]) -> None:
    back = loads(dumps(exchanges), "p.yaml")
    assert len(back) == len(exchanges)
    for got, want in zip(back, exchanges, strict=True):
        assert (got.request.method, got.request.path) == (want.request.method, want.request.path)
        assert (got.request.query, got.request.body) == (want.request.query, want.request.body)
        assert _grouped(got.request.headers) == _grouped(want.request.headers)
        assert (got.response.status, got.response.body) == (
            want.response.status,
            want.response.body,
        )
        assert _grouped(got.response.headers) == _grouped(want.response.headers)
        assert got.timing == want.timing


# --------------------------------------------------------------------------- atomic write


def test_dump_replaces_a_file_completely_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    dump([exchange(b"old")], path)
    dump([exchange(b"new"), exchange(SSE)], path)
    assert [e.response.body for e in load(path)] == [b"new", SSE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_dump_keeps_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    dump([exchange(b"old")], path)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        dump([exchange(b"new")], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_dump_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "openai" / "nested" / "c.yaml"
    dump([exchange()], str(path))
    assert load(path)[0].response.body == SSE
    assert load(path)[0].source == f"{path}#0"


# --------------------------------------------------------------------------- redaction


def test_redaction_removes_secrets_from_the_written_file(tmp_path: Path) -> None:
    request_headers = (
        ("Authorization", "Bearer sk-secret-AAA"),
        ("x-API-key", "sk-ant-secret-BBB"),
        ("API-KEY", "azure-secret-CCC"),
        ("X-Goog-Api-Key", "AIza-secret-DDD"),
        ("cookie", "session=secret-EEE"),
        ("OpenAI-Organization", "org-secret-FFF"),
        ("openai-project", "proj-secret-GGG"),
        ("X-Acme-Organization-Id", "secret-HHH"),
        ("x-team-project", "secret-III"),
        ("X-Custom-Token", "secret-ZZZ"),
        ("Content-Type", "application/json"),
    )
    response_headers = (
        ("Set-Cookie", "__cf_bm=secret-JJJ"),
        ("anthropic-organization-id", "secret-KKK"),
        ("Content-Type", "application/json"),
    )
    body = json.dumps({"model": "m", "api_key": "secret-LLL", "Password": "secret-MMM"}).encode()
    redaction = DEFAULT_REDACTION.extend(
        headers=["x-custom-token"], body_fields=["api_key", "password"]
    )
    query = (("key", "AIza-secret-NNN"), ("ACCESS_TOKEN", "secret-OOO"), ("alt", "sse"))
    path = tmp_path / "r.yaml"
    dump(
        [exchange(b"{}", response_headers, body, query, request_headers)], path, redaction=redaction
    )
    text = path.read_text()
    assert "secret" not in text.lower()
    (back,) = load(path)
    assert back.request.headers == (("Content-Type", "application/json"),)
    assert back.response.headers == (("Content-Type", "application/json"),)
    assert back.request.query == (("key", "REDACTED"), ("ACCESS_TOKEN", "REDACTED"), ("alt", "sse"))
    assert back.request.json == {"model": "m", "api_key": "REDACTED", "Password": "REDACTED"}


def test_redaction_values_and_redact_function() -> None:
    custom = Redaction(
        frozenset({"X-Secret"}), frozenset(), frozenset({"token"}), placeholder="***"
    )
    wider = custom.extend(query_params=["sig"])
    assert wider.query_params == frozenset({"sig"}) and custom.query_params == frozenset()
    assert "x-amz-date" not in DEFAULT_REDACTION.headers
    assert {"authorization", "x-api-key", "set-cookie"} <= DEFAULT_REDACTION.headers
    original = exchange(
        request_body=b'{"token": "t0k3n", "n": 1}',
        request_headers=(("x-secret", "s"), ("Accept", "*/*")),
        query=(("sig", "abc"),),
    )
    cleaned = redact(original, wider)
    assert cleaned.request.headers == (("Accept", "*/*"),)
    assert cleaned.request.json == {"token": "***", "n": 1}
    assert json.loads(cleaned.request.body) == {"token": "***", "n": 1}
    assert cleaned.request.query == (("sig", "***"),)
    assert redact(exchange(request_body=b"not json"), wider).request.body == b"not json"


# --------------------------------------------------------------------------- broken files

_GOOD = (
    "- request: {method: GET, uri: 'http://h/'}\n  response: {status: {code: 200, message: OK}}\n"
)


@pytest.mark.parametrize(
    ("text", "index", "expected"),
    [
        ("interactions: [\n  {a: 1\nversion: 1\n", None, r"invalid YAML at line \d+"),
        ("- just\n- a list\n", None, "expected a mapping with an `interactions` list, found list"),
        ("version: 1\n", None, "expected an `interactions` list, found nothing"),
        ("interactions: {}\n", None, "expected an `interactions` list, found dict"),
        ("interactions: []\nversion: 2\n", None, "expected version 1 .* found int 2"),
        ("interactions:\n" + _GOOD + "- 42\n", 1, "expected a mapping with `request`"),
        ("interactions:\n" + _GOOD + "- response: {}\n", 1, "expected a `request` mapping"),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n",
            1,
            "expected a `response` mapping, found nothing",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {uri: 'http://h/'}\n  response: {}\n",
            1,
            "expected a `method` string",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET}\n  response: {}\n",
            1,
            "expected a `uri` string",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: '200'}}\n",
            1,
            "status code: expected an integer, found str",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {body: {string: x}}\n",
            1,
            "expected `status: {code, message}`",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/', headers: [a]}\n"
            "  response: {status: {code: 200}}\n",
            1,
            "request headers: expected a mapping",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, headers: {A: [{x: 1}]}}\n",
            1,
            "response header 'A': expected a string or a list of strings, found dict",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, headers: {Content-Encoding: [gzip]},"
            " body: {string: !!binary 'bm90Z3ppcA=='}}\n",
            1,
            "expected gzip data .* do not decompress",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, headers: {Content-Encoding: [zstd]}}\n",
            1,
            "expected gzip, deflate or br .* found str 'zstd'",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, body: {string: [1]}}\n",
            1,
            "response body.string: expected a string, !!binary bytes or null, found list",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, tapedeck: {headers: fast}}\n",
            1,
            "tapedeck.headers: expected seconds",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, tapedeck: {headers: 1, events: [a]}}\n",
            1,
            "tapedeck.events: expected a list of seconds",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://[::1/'}\n"
            "  response: {status: {code: 200}}\n",
            1,
            "request uri: expected a URL, found 'http://\\[::1/'",
        ),
        (
            "interactions:\n" + _GOOD + "- request: {method: GET, uri: 'http://h/'}\n"
            "  response: {status: {code: 200}, parsed_body: {when: 2024-01-01}}\n",
            1,
            "response parsed_body: expected JSON data .* found dict",
        ),
    ],
    ids=[
        "not-yaml",
        "top-level-list",
        "no-interactions",
        "interactions-not-list",
        "version-2",
        "interaction-not-mapping",
        "no-request",
        "no-response",
        "no-method",
        "no-uri",
        "status-not-int",
        "no-status",
        "headers-not-mapping",
        "header-value-not-string",
        "bad-gzip",
        "unknown-encoding",
        "body-wrong-type",
        "timing-headers",
        "timing-events",
        "bad-uri",
        "parsed-body-not-json",
    ],
)
def test_broken_cassette_names_file_index_and_expectation(
    tmp_path: Path, text: str, index: int | None, expected: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(CassetteFormatError) as caught:
        load(path)
    error = caught.value
    assert (error.path, error.index) == (str(path), index)
    message = str(error)
    assert message.startswith(str(path) if index is None else f"{path}, interaction {index}: ")
    assert "expected" in error.problem
    assert re.search(expected, message), message


def test_missing_file_raises_not_found_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CassetteNotFoundError, match=str(missing)):
        load(missing)


# --------------------------------------------------------------------------- real vcrpy


def test_vcrpy_replays_a_cassette_we_wrote(tmp_path: Path) -> None:
    json_body = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"Hi"}}]}'
    sse = exchange(SSE, timing=Timing(0.1, (0.2, 0.3)))
    plain = exchange(
        json_body,
        (("Content-Type", "application/json"), ("Content-Length", "1")),
        query=(("api-version", "2024-06-01"),),
        path="/openai/deployments/d/chat/completions",
    )
    path = tmp_path / "replay.yaml"
    dump([sse, plain], path)
    with vcr.VCR(record_mode="none").use_cassette(str(path)), httpx.Client() as client:
        streamed = client.post("https://api.openai.com/v1/chat/completions", content=b"{}")
        answered = client.post(
            "https://api.openai.com/openai/deployments/d/chat/completions?api-version=2024-06-01",
            json={"model": "gpt-4o"},
        )
    assert (streamed.status_code, streamed.content) == (200, SSE)
    assert streamed.headers["content-type"] == "text/event-stream"
    assert (answered.status_code, answered.content) == (200, json_body)
    assert answered.json()["choices"][0]["message"]["content"] == "Hi"


@contextmanager
def _upstream() -> Iterator[str]:
    """A real aiohttp server on 127.0.0.1 in a background thread (vcrpy needs sync httpx)."""

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/gzip":
            response = web.json_response({"zipped": True, "pad": "x" * 500})
            response.enable_compression(web.ContentCoding.gzip)
            return response
        events = b"".join(b"data: " + part + b"\n\n" for part in (body, b"[DONE]"))
        return web.Response(status=201, body=events, content_type="text/event-stream")

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_we_load_a_cassette_vcrpy_recorded(tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    sent = b'{"model":"gpt-4o","stream":true}'
    recording = vcr.VCR(record_mode="once").use_cassette(str(path))
    with _upstream() as base, recording, httpx.Client() as client:
        live = client.post(
            f"{base}/v1/chat/completions?api-version=2024-06-01&q=a+b",
            content=sent,
            headers={"Content-Type": "application/json"},
        )
        zipped = client.get(f"{base}/gzip", headers={"Accept-Encoding": "gzip"})
    assert live.status_code == 201 and zipped.json()["zipped"] is True
    assert "!!binary" in path.read_text()  # vcrpy stored the gzip bytes as they came
    streamed, gzipped = load(path)
    assert streamed.request.method == "POST"
    assert streamed.request.path == "/v1/chat/completions"
    assert streamed.request.query == (("api-version", "2024-06-01"), ("q", "a b"))
    assert streamed.request.body == sent
    assert streamed.request.json == {"model": "gpt-4o", "stream": True}
    assert streamed.request.origin == base
    assert streamed.response.status == 201
    assert streamed.response.body == live.content == b"data: " + sent + b"\n\ndata: [DONE]\n\n"
    assert gzipped.response.body == zipped.content
    assert header(gzipped.response.headers, "content-encoding") is None


def test_dumps_falls_back_when_a_literal_block_would_not_load_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lossy(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data.rstrip("\n"), style="|")

    representers: dict[Any, Any] = cassettes._Dumper.yaml_representers
    monkeypatch.setitem(representers, cassettes._Block, lossy)
    text = dumps([exchange(SSE)])
    assert "string: |" not in text
    assert loads(text, "x")[0].response.body == SSE
