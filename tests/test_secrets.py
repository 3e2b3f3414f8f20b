"""Secrets already on disk: `tapedeck lint` finds every credential shape in a cassette (file,
interaction, where; the secret masked), `tapedeck redact` removes them in place, and the
cassette still loads in Tapedeck and vcrpy, replays byte-exact where no secret was, and still
matches. The cassettes are written by the tests, with made-up secrets of each shape."""

from __future__ import annotations

import difflib
import gzip
import json
import os
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
import yaml

from mockserver import cassettes, credentials
from mockserver.cassette_secrets import find_secrets, redact_file
from mockserver.cli import main
from mockserver.index import Library
from mockserver.server_thread import BackgroundServer
from tests import rawhttp

RNG = random.Random(4242)


def made_up(prefix: str = "", size: int = 32, alphabet: str = "") -> str:
    """A made-up secret: ``prefix``, then random characters ending in a digit."""
    alphabet = alphabet or string.ascii_letters + string.digits
    return prefix + "".join(RNG.choice(alphabet) for _ in range(size - 1)) + "7"


UPPER = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Planted:
    """A secret the test put in interaction ``index``, and where lint must say it is."""

    secret: str
    index: int
    where: str


OPENAI_KEY = made_up("sk-proj-", 60)
ORGANIZATION, PROJECT, OWNER = made_up("org-", 24), made_up("proj_", 24), made_up("org-", 24)
COOKIE, CF_COOKIE = made_up("", 40), made_up("", 60)
NESTED_KEY = made_up("nk-", 30)
ECHOED = made_up("corp-gw-", 28)
GOOGLE_KEY, GOOGLE_HEADER_KEY = made_up("AIza", 35), made_up("AIza", 35)
GOOGLE_ECHO = made_up("AIza", 35)
ANTHROPIC_KEY = made_up("sk-ant-api03-", 90)
ANTHROPIC_ORG = made_up("", 36)
ACCESS_KEY_ID, SESSION_KEY_ID = made_up("AKIA", 16, UPPER), made_up("ASIA", 16, UPPER)
SIGNATURE, URL_SIGNATURE = made_up("", 64, HEX), made_up("", 64, HEX)
SECURITY_TOKEN = made_up("IQoJb3", 80)
AZURE_KEY, APIM_KEY, AUTH_TOKEN = made_up("", 32, HEX), made_up("", 32, HEX), made_up("xat-", 40)
SAS, QUERY_KEY = made_up("", 43), made_up("", 24)
PARSED_KEY, PARSED_ECHO = made_up("pk-", 30), made_up("corp-gw-", 28)
PASSWORD = made_up("pw", 20)
GROQ, HF, XAI = made_up("gsk_", 52), made_up("hf_", 34), made_up("xai-", 80)
OAUTH, COHERE = made_up("ya29.a0", 120), made_up("", 40)
LEGACY_KEY = made_up("sk-", 48)

SSE = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}'
    b"\n\n"
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
CLEAN_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "clean"}]}


def interaction(
    uri: str,
    request_body: Any = None,
    request_headers: dict[str, list[str]] | None = None,
    status: int = 200,
    response_headers: dict[str, list[str]] | None = None,
    response_body: Any = "{}",
) -> dict[str, Any]:
    return {
        "request": {
            "body": request_body,
            "headers": request_headers or {},
            "method": "POST",
            "uri": uri,
        },
        "response": {
            "status": {"code": status, "message": "OK" if status < 400 else "Unauthorized"},
            "headers": {"Content-Type": ["application/json"], **(response_headers or {})},
            "body": {"string": response_body},
        },
    }


def openai_error(message: str) -> str:
    fields = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    return json.dumps({"error": fields}, indent=4) + "\n"


def every_shape() -> tuple[dict[str, Any], list[Planted]]:
    """A vcrpy cassette holding every credential shape, and where each one is."""
    chat = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"tool": {"api_key": NESTED_KEY}},
        }
    )
    gemini = (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        f"gemini-2.5-flash:generateContent?key={GOOGLE_KEY}"
    )
    bedrock = (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku/invoke"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={SESSION_KEY_ID}%2F20250101%2Fus-east-1%2Fbedrock%2Faws4_request"
        f"&X-Amz-Security-Token={SECURITY_TOKEN}&X-Amz-Signature={URL_SIGNATURE}"
    )
    sigv4 = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20250101/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={SIGNATURE}"
    )
    azure = (
        "https://acme.openai.azure.com/openai/deployments/gpt4o/chat/completions"
        f"?api-version=2024-06-01&sig={SAS}&apikey={QUERY_KEY}"
    )
    compatible = json.dumps(
        {
            "note": f"groq {GROQ} hf {HF} xai {XAI}",
            "env": f"export CO_API_KEY={COHERE}",
            "headers": f"Authorization: Bearer {OAUTH}",
            "owner": OWNER,
        }
    )
    items = [
        interaction(
            "https://api.openai.com/v1/chat/completions",
            chat,
            {
                "authorization": [f"Bearer {OPENAI_KEY}"],
                "OpenAI-Organization": [ORGANIZATION],
                "openai-project": [PROJECT],
                "cookie": [f"session={COOKIE}"],
            },
            401,
            {
                "Set-Cookie": [f"__cf_bm={CF_COOKIE}; path=/; domain=.openai.com; HttpOnly"],
                "openai-organization": [ORGANIZATION],
            },
            openai_error(f"Incorrect API key provided: {ECHOED}. You can find your key..."),
        ),
        interaction(
            gemini,
            '{"contents": []}',
            {"x-goog-api-key": [GOOGLE_HEADER_KEY]},
            400,
            {"Content-Encoding": ["gzip"]},
            gzip.compress(json.dumps({"error": {"message": f"bad {GOOGLE_ECHO}"}}).encode()),
        ),
        interaction(
            "https://api.anthropic.com/v1/messages",
            '{"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}',
            {"x-api-key": [ANTHROPIC_KEY]},
            200,
            {"anthropic-organization-id": [ANTHROPIC_ORG]},
            '{"type": "message", "content": []}',
        ),
        interaction(  # nothing secret: it must replay exactly as before
            "https://api.openai.com/v1/chat/completions",
            json.dumps({**CLEAN_REQUEST, "stream": True}),
            {"Content-Type": ["application/json"]},
            200,
            {"Content-Type": ["text/event-stream; charset=utf-8"], "x-request-id": ["req_1"]},
            SSE.decode(),
        ),
        interaction(bedrock, "{}", {"Authorization": [sigv4]}, 200, {}, '{"content": []}'),
        interaction(
            azure,
            chat.replace(NESTED_KEY, "REDACTED"),
            {
                "api-key": [AZURE_KEY],
                "Ocp-Apim-Subscription-Key": [APIM_KEY],
                "X-Auth-Token": [AUTH_TOKEN],
            },
        ),
        interaction(
            f"https://gateway:{PASSWORD}@llm.example.net/v1/chat/completions",
            "{}",
            response_body=compatible,
        ),
    ]
    planted = [
        Planted(OPENAI_KEY, 0, "request header authorization"),
        Planted(ORGANIZATION, 0, "request header OpenAI-Organization"),
        Planted(PROJECT, 0, "request header openai-project"),
        Planted(COOKIE, 0, "request header cookie"),
        Planted(NESTED_KEY, 0, "request body $.metadata.tool.api_key"),
        Planted(CF_COOKIE, 0, "response header Set-Cookie"),
        Planted(ORGANIZATION, 0, "response header openai-organization"),
        Planted(ECHOED, 0, "response body $.error.message"),
        Planted(GOOGLE_KEY, 1, "request uri"),
        Planted(GOOGLE_HEADER_KEY, 1, "request header x-goog-api-key"),
        Planted(GOOGLE_ECHO, 1, "response body $.error.message"),
        Planted(ANTHROPIC_KEY, 2, "request header x-api-key"),
        Planted(ANTHROPIC_ORG, 2, "response header anthropic-organization-id"),
        Planted(SESSION_KEY_ID, 4, "request uri"),
        Planted(SECURITY_TOKEN, 4, "request uri"),
        Planted(URL_SIGNATURE, 4, "request uri"),
        Planted(ACCESS_KEY_ID, 4, "request header Authorization"),
        Planted(SIGNATURE, 4, "request header Authorization"),
        Planted(SAS, 5, "request uri"),
        Planted(QUERY_KEY, 5, "request uri"),
        Planted(AZURE_KEY, 5, "request header api-key"),
        Planted(APIM_KEY, 5, "request header Ocp-Apim-Subscription-Key"),
        Planted(AUTH_TOKEN, 5, "request header X-Auth-Token"),
        Planted(PASSWORD, 6, "request uri"),
        Planted(GROQ, 6, "response body $.note"),
        Planted(HF, 6, "response body $.note"),
        Planted(XAI, 6, "response body $.note"),
        Planted(COHERE, 6, "response body $.env"),
        Planted(OAUTH, 6, "response body $.headers"),
        Planted(OWNER, 6, "response body $.owner"),
    ]
    return {"interactions": items, "version": 1}, planted


def parsed_layout() -> dict[str, Any]:
    """pydantic-ai's layout: bodies stored parsed."""
    item = {
        "request": {
            "parsed_body": {"model": "gpt-4o-mini", "api_key": PARSED_KEY},
            "headers": {},
            "method": "POST",
            "uri": "https://api.openai.com/v1/chat/completions",
        },
        "response": {
            "status": {"code": 401, "message": "Unauthorized"},
            "headers": {},
            "parsed_body": {"error": {"message": f"Incorrect API key provided: {PARSED_ECHO}"}},
        },
    }
    return {"interactions": [item], "version": 1}


def legacy_layout() -> tuple[dict[str, Any], list[Planted]]:
    """vcrpy's old httpx layout: ``status_code`` and ``content``."""
    item = {
        "request": {
            "body": "{}",
            "headers": {"authorization": [f"Bearer {LEGACY_KEY}"]},
            "method": "POST",
            "uri": "https://api.openai.com/v1/chat/completions",
        },
        "response": {
            "status_code": 401,
            "headers": {"content-type": ["application/json"]},
            "content": openai_error(f"Incorrect API key provided: {LEGACY_KEY}."),
        },
    }
    planted = [
        Planted(LEGACY_KEY, 0, "request header authorization"),
        Planted(LEGACY_KEY, 0, "response body $.error.message"),
    ]
    return {"interactions": [item], "version": 1}, planted


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True))  # as vcrpy writes
    return path


@pytest.fixture
def shapes(tmp_path: Path) -> tuple[Path, list[Planted]]:
    document, planted = every_shape()
    return write_yaml(tmp_path / "every-shape.yaml", document), planted


def all_text(path: Path) -> str:
    """The file's text and its gzip bodies decompressed: everything a reader could see."""
    text = path.read_text()
    document = yaml.safe_load(text)
    bodies = [
        item["response"].get("body", {}).get("string")
        for item in document["interactions"]
        if isinstance(item["response"].get("body"), dict)
    ]
    return text + "".join(
        gzip.decompress(body).decode() for body in bodies if isinstance(body, bytes)
    )


def test_lint_finds_every_shape_and_never_prints_one(
    shapes: tuple[Path, list[Planted]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, planted = shapes
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " secret: " in line]
    for plant in planted:
        source, where = f"{path}#{plant.index} secret: ", f" in {plant.where}: "
        assert any(line.startswith(source) and where in line for line in lines), plant
        assert plant.secret not in out  # masked: never printed whole
    assert f"{len(lines)} secret(s) in 1 file(s)" in out
    assert not any(line.startswith(f"{path}#3 ") for line in lines)  # the clean one


def test_lint_names_the_kind_of_each_provider_key(shapes: tuple[Path, list[Planted]]) -> None:
    path, _ = shapes
    kinds = {(f.source.rpartition("#")[2], f.kind) for f in find_secrets(path)}
    for expected in [
        ("6", "OpenAI organization id"),
        ("1", "Google API key"),
        ("4", "AWS access key id"),
        ("4", "AWS SigV4 signature"),
        ("6", "Groq API key"),
        ("6", "Hugging Face token"),
        ("6", "xAI API key"),
        ("6", "Cohere API key"),
        ("6", "Google OAuth token"),
        ("6", "password in a URL"),
        ("0", "key echoed in an error"),
        ("0", "cookie"),
    ]:
        assert expected in kinds


def test_redact_check_lists_and_writes_nothing(
    shapes: tuple[Path, list[Planted]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, planted = shapes
    before = path.read_bytes()
    assert main(["redact", "--check", str(path)]) == 1
    out = capsys.readouterr().out
    assert path.read_bytes() == before
    assert f"{path}#0 found: " in out
    assert all(plant.secret not in out for plant in planted)


def test_redact_removes_every_shape_and_keeps_each_form(
    shapes: tuple[Path, list[Planted]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, planted = shapes
    assert main(["redact", str(path)]) == 0
    assert "0 left, 0 unreadable" in capsys.readouterr().out
    text = all_text(path)
    for plant in planted:
        assert plant.secret not in text, plant
    assert main(["lint", str(path)]) == 0
    assert " secret" not in capsys.readouterr().out
    document = yaml.safe_load(path.read_text())
    stored = document["interactions"][1]["response"]["body"]["string"]
    assert isinstance(stored, bytes)  # still gzip, still !!binary
    assert json.loads(gzip.decompress(stored))["error"]["message"] == "bad REDACTED"


def test_redact_keeps_the_old_httpx_layout_parsed_bodies_and_json_cassettes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, planted = legacy_layout()
    legacy = write_yaml(tmp_path / "legacy.yaml", document)
    as_json = tmp_path / "vcrpy.json"
    as_json.write_text(json.dumps(document, indent=4))  # vcrpy's JSON serializer
    parsed = write_yaml(tmp_path / "pydantic-ai.yaml", parsed_layout())
    found = {(f.where, f.secret) for f in find_secrets(parsed)}
    assert found == {
        ("request body $.api_key", PARSED_KEY),
        ("response body $.error.message", PARSED_ECHO),
    }
    assert main(["redact", str(legacy), str(as_json), str(parsed)]) == 0
    (item,) = yaml.safe_load(parsed.read_text())["interactions"]
    assert item["request"]["parsed_body"] == {"model": "gpt-4o-mini", "api_key": "REDACTED"}
    assert "body" not in item["request"] and PARSED_ECHO not in parsed.read_text()
    for path in (legacy, as_json):
        text = path.read_text()
        assert LEGACY_KEY not in text
        (item,) = (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))[
            "interactions"
        ]
        assert "content" in item["response"] and item["response"]["status_code"] == 401
        assert "REDACTED" in item["response"]["content"]
    assert json.loads(as_json.read_text())  # still JSON
    assert len(planted) == 2


def request_for(document: dict[str, Any], index: int) -> tuple[str, bytes]:
    raw = document["interactions"][index]["request"]
    return raw["uri"], raw["body"].encode()


def test_a_redacted_cassette_replays_byte_exact_where_no_secret_was(
    shapes: tuple[Path, list[Planted]], tmp_path: Path
) -> None:
    path, _ = shapes
    original = tmp_path / "original.yaml"
    original.write_bytes(path.read_bytes())
    redact_file(path)
    document = yaml.safe_load(original.read_text())
    uri, body = request_for(document, 3)
    replies = []
    for cassette in (original, path):
        with BackgroundServer(Library.from_paths([cassette])) as server:
            replies.append(rawhttp.request(server.url, "/v1/chat/completions", body))
    before, after = replies
    assert after.status == before.status == 200
    assert after.chunks == before.chunks and after.body == SSE
    assert [h for h in after.headers if h[0] != "Date"] == [
        h for h in before.headers if h[0] != "Date"
    ]
    # vcrpy replays the redacted file too, at the recorded URI (and body: two share it).
    with vcr.VCR(record_mode="none", match_on=["method", "uri", "body"]).use_cassette(str(path)):
        replayed = httpx.post(uri, content=body)
    assert replayed.content == SSE


def test_a_redacted_request_still_matches_the_request_that_made_it(
    shapes: tuple[Path, list[Planted]], tmp_path: Path
) -> None:
    path, _ = shapes
    document = yaml.safe_load(path.read_text())
    _, body = request_for(document, 0)  # its body holds a key in metadata.tool.api_key
    redact_file(path)
    (first, *_) = cassettes.load(path)
    assert NESTED_KEY.encode() not in first.request.body
    with BackgroundServer(Library.from_paths([path])) as server:
        reply = rawhttp.request(server.url, "/v1/chat/completions", body)
    assert reply.status == 401
    assert reply.body == first.response.body  # the recording answered, its key cut out
    assert "REDACTED" in json.loads(reply.body)["error"]["message"]


def test_a_file_without_secrets_is_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, _ = every_shape()
    clean = {**document, "interactions": [document["interactions"][3]]}
    path = write_yaml(tmp_path / "clean.yaml", clean)
    before = path.stat()
    assert main(["lint", str(path)]) == 0
    assert main(["redact", str(path)]) == 0
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "0 secret(s) removed (0 file(s) rewritten)" in capsys.readouterr().out


def test_redact_is_atomic_and_keeps_the_file_mode(
    shapes: tuple[Path, list[Planted]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, planted = shapes
    path.chmod(0o640)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="disk gone"):
            redact_file(path)
    assert path.read_bytes() == before  # untouched, and no temporary file left beside it
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    redact_file(path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert planted[0].secret not in path.read_text()


def test_redact_reports_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("interactions: [{request: {}}]\nversion: 1\n")
    assert main(["redact", str(path)]) == 2
    assert f"{path}: cannot be read:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: sk-wrong****-key.",  # masked by the provider
        "Incorrect API key provided: sk-proj-****************************************Ab1c.",
        "we use sk-learn-classification-models here",  # a word, not a key
        "task-abcdefghijklmnopqrstuvwxyz0123456789",
        "Bearer token authentication is required",
        "Basic information about billing",
        '{"token": "Hello", "logprob": -0.25}',  # logprobs name each token so
        '{"api_key": "<filtered>", "authorization": "Bearer X-API-KEY-XXX"}',
        '{"api_key": "REDACTED", "password": "your-password", "secret_key": "$SECRET_KEY"}',
        "redis://:password@host:6379 and {user}:{token}@host",
        "https://myorg-myaccount.snowflakecomputing.com/api",
    ],
)
def test_what_is_not_a_secret(text: str) -> None:
    assert credentials.scan(text) == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Authorization", "credential header"),
        ("Ocp-Apim-Subscription-Key", "credential header"),
        ("X-Auth-Token", "credential header"),
        ("x-goog-api-key", "credential header"),
        ("Set-Cookie", "cookie"),
        ("llm_provider-openai-organization", "account id header"),
        ("x-goog-user-project", "account id header"),
        ("Idempotency-Key", None),
        ("x-ratelimit-remaining-tokens", None),
        ("anthropic-ratelimit-input-tokens-limit", None),
    ],
)
def test_header_names(name: str, kind: str | None) -> None:
    assert credentials.header_kind(name) == kind


def test_a_finding_shows_its_secret_masked() -> None:
    secret = made_up("sk-proj-", 60)
    shown = str(credentials.Finding("OpenAI API key", "request header authorization", secret))
    assert secret not in shown and secret[:10] not in shown
    assert shown.startswith("OpenAI API key in request header authorization: sk-")
    assert f"[{len(secret)} chars]" in shown


def test_the_corpus_holds_only_cookies(corpus: Path) -> None:
    """The public cassettes were screened by hand: lint flags their Cloudflare cookies (a
    client's session at the edge) and nothing else, and redact clears them on a copy."""
    flagged = {
        path.relative_to(corpus): {f.kind for f in find_secrets(path)}
        for path in sorted(corpus.rglob("*.yaml"))
    }
    found = {name: kinds for name, kinds in flagged.items() if kinds}
    assert set().union(*found.values()) == {"cookie"}
    assert len(found) == 10


@pytest.mark.parametrize("width", [80, 120])
def test_a_rewritten_file_differs_only_where_its_secrets_were(tmp_path: Path, width: int) -> None:
    document, _ = every_shape()
    item = document["interactions"][3]  # a clean stream...
    item["request"]["headers"]["x-api-key"] = [ANTHROPIC_KEY]  # ...sent with a key
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**document, "interactions": [item]}, width=width))
    before = path.read_text().splitlines()
    redact_file(path)
    after = path.read_text().splitlines()
    changed = [line for line in difflib.ndiff(before, after) if line[:1] in "+-"]
    assert changed == ["-       x-api-key:", f"-       - {ANTHROPIC_KEY}"]


def test_a_tool_schema_naming_a_password_is_no_secret() -> None:
    schema = {"type": "object", "properties": {"password": {"type": "string"}}}
    body = json.dumps({"tools": [{"function": {"parameters": schema}}], "x": {"password": 1234}})
    found = credentials.find_in_body(body.encode(), "request body")
    assert found == [credentials.Finding("secret field", "request body $.x.password", "1234")]
    cleaned = json.loads(credentials.scrub_body(body.encode()))
    assert cleaned["tools"][0]["function"]["parameters"] == schema
    assert cleaned["x"] == {"password": "REDACTED"}
