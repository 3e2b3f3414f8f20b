"""No secret reaches disk while recording: each credential shape goes through a real
Tapedeck recorder to a local provider stand-in, and the test reads back every file the
recording left (and the log) to find the secret gone, while the upstream still got it."""

from __future__ import annotations

import json
import logging
import random
import socket
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web

from mockserver import cassettes
from mockserver.index import Library
from mockserver.player import Player
from mockserver.recorder import Recorder, parse_upstreams
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.upstream import Upstream, running

RNG = random.Random(20261203)


def token(prefix: str = "", size: int = 32) -> str:
    """A made-up credential: ``prefix`` then random letters and digits (one digit at least)."""
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(RNG.choice(alphabet) for _ in range(size - 1)) + "7"


# What the provider stand-in answers with of its own: never to be written either.
RESPONSE_KEY = token("rk-", 30)
COOKIE = token("", 40)
ORGANIZATION = "org-" + token("", 24)
PROJECT = "proj_" + token("", 24)
PROVIDER_SECRETS = (RESPONSE_KEY, COOKIE, ORGANIZATION, PROJECT)


@dataclass
class Provider(Upstream):
    """A provider that takes any key, answers with secrets of its own (a session cookie,
    organization and project ids, a key nested in the body), and refuses the model
    ``deny`` with OpenAI's 401, echoing the key it was sent whole (some providers do)."""

    seen: list[str] = field(default_factory=list)
    """Each request as the provider got it (target, headers, body): the secrets were sent."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(f"{request.raw_path} {dict(request.headers)} {body.decode()}")
        headers = {
            "Set-Cookie": f"session={COOKIE}; Path=/; HttpOnly",
            "openai-organization": ORGANIZATION,
            "openai-project": PROJECT,
        }
        if json.loads(body).get("model") == "deny":
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {sent}. You can find your API key at ..."
            error = {"error": {"message": message, "type": "invalid_request_error"}}
            text = json.dumps(error, indent=4) + "\n"
            return web.Response(status=401, text=text, headers=headers)
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
            "tool": {"config": {"api_key": RESPONSE_KEY, "owner": ORGANIZATION}},
        }
        return web.json_response(answer, headers=headers)


@pytest.fixture
def provider() -> Iterator[Provider]:
    live = Provider({})
    with running(live):
        yield live


@pytest.fixture
def tapedeck() -> Iterator[BackgroundServer]:
    with BackgroundServer() as server:
        yield server


def record(server: BackgroundServer, target: Path, upstreams: list[str]) -> Recorder:
    recorder = Recorder("all", target, parse_upstreams(upstreams))
    server.state.use(Player(Library(())), recorder)
    return recorder


def on_disk(folder: Path) -> bytes:
    """Every byte the recording left in ``folder``, temporary files included."""
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
AZURE = "/openai/deployments/gpt4o/chat/completions?api-version=2024-06-01"


@dataclass(frozen=True)
class Shape:
    """A credential as a client sends it: where it posts, its headers, its body."""

    name: str
    target: str
    secrets: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, object] = field(default_factory=lambda: dict(CHAT))
    status: int = 200


APIM, AUTH_TOKEN, QUERY_KEY, SAS = token("", 32), token("xat-", 40), token(), token("", 44)
BODY_KEY, NESTED_KEY, ECHOED = token("bk-", 36), token("nk-", 36), token("corp-gw-", 30)
OPENAI_KEY = token("sk-proj-", 60)
SHAPES = [
    Shape("azure-api-management", AZURE, (APIM,), {"Ocp-Apim-Subscription-Key": APIM}),
    Shape("x-auth-token", "/v1/chat/completions", (AUTH_TOKEN,), {"X-Auth-Token": AUTH_TOKEN}),
    Shape("apikey-in-query", f"/v1/chat/completions?apikey={QUERY_KEY}", (QUERY_KEY,)),
    # An Azure SAS signature: base64, so it travels percent-encoded.
    Shape("azure-sas-sig", f"{AZURE}&sv=2022-11-02&sig={quote(SAS + '+/=')}", (SAS,)),
    Shape(
        "api_key-in-body",
        "/v1/chat/completions",
        (BODY_KEY, NESTED_KEY),
        body={**CHAT, "api_key": BODY_KEY, "metadata": {"nested": {"api_key": NESTED_KEY}}},
    ),
    # A key of no known shape, echoed whole in the 401: only its being the request's own
    # key gives it away.
    Shape(
        "key-echoed-in-401",
        "/v1/chat/completions",
        (ECHOED,),
        {"Authorization": f"Bearer {ECHOED}"},
        {**CHAT, "model": "deny"},
        401,
    ),
    Shape(
        "openai-key-echoed-in-401",
        "/v1/chat/completions",
        (OPENAI_KEY,),
        {"Authorization": f"Bearer {OPENAI_KEY}"},
        {**CHAT, "model": "deny"},
        401,
    ),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_a_recording_holds_no_secret_of_any_shape(
    tapedeck: BackgroundServer,
    provider: Provider,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shape: Shape,
) -> None:
    caplog.set_level(logging.DEBUG)
    target = tmp_path / "cassettes" / "recorded.yaml"
    recorder = record(tapedeck, target, [f"openai={provider.url}/v1", f"azure={provider.url}"])
    reply = rawhttp.request(tapedeck.url, shape.target, shape.body, headers=shape.headers)
    assert reply.status == shape.status
    assert recorder.failures == []
    for secret in shape.secrets:
        assert secret in provider.seen[0]  # the provider got it: recording forwards it
    written = on_disk(tmp_path)
    (saved,) = cassettes.load(target)  # one interaction, and it loads
    for secret in (*shape.secrets, *PROVIDER_SECRETS):
        assert secret.encode() not in written, secret
        assert quote(secret).encode() not in written, secret
        assert secret not in caplog.text
    assert saved.response.status == shape.status


def test_the_secrets_leave_the_rest_as_it_was(
    tapedeck: BackgroundServer, provider: Provider, tmp_path: Path
) -> None:
    target = tmp_path / "c.yaml"
    record(tapedeck, target, [f"openai={provider.url}/v1"])
    body = {**CHAT, "api_key": BODY_KEY}
    query = f"?apikey={QUERY_KEY}&alt=sse"
    reply = rawhttp.request(tapedeck.url, "/v1/chat/completions" + query, body)
    (saved,) = cassettes.load(target)
    assert saved.request.query == (("apikey", "REDACTED"), ("alt", "sse"))
    assert saved.request.json == {**CHAT, "api_key": "REDACTED"}
    answer = saved.response.body
    assert json.loads(answer)["tool"]["config"] == {"api_key": "REDACTED", "owner": "REDACTED"}
    # Only the secrets changed: the answer is byte for byte what the provider sent but them.
    expected = reply.body.replace(RESPONSE_KEY.encode(), b"REDACTED")
    assert answer == expected.replace(ORGANIZATION.encode(), b"REDACTED")
    names = {name.lower() for name, _ in saved.response.headers}
    assert not names & {"set-cookie", "openai-organization", "openai-project"}


def test_an_echoed_error_keeps_its_bytes_but_the_key(
    tapedeck: BackgroundServer, provider: Provider, tmp_path: Path
) -> None:
    target = tmp_path / "c.yaml"
    record(tapedeck, target, [f"openai={provider.url}/v1"])
    headers = {"Authorization": f"Bearer {ECHOED}"}
    deny = {**CHAT, "model": "deny"}
    reply = rawhttp.request(tapedeck.url, "/v1/chat/completions", deny, headers=headers)
    assert ECHOED.encode() in reply.body  # the client itself sees what the provider sent
    (saved,) = cassettes.load(target)
    assert saved.response.body == reply.body.replace(ECHOED.encode(), b"REDACTED")


def test_a_recording_with_a_key_in_its_body_still_matches(
    tapedeck: BackgroundServer, provider: Provider, tmp_path: Path
) -> None:
    target = tmp_path / "c.yaml"
    record(tapedeck, target, [f"openai={provider.url}/v1"])
    body = {**CHAT, "api_key": BODY_KEY}
    recorded = rawhttp.request(tapedeck.url, "/v1/chat/completions", body)
    library = Library.from_paths([target])
    # The same request, and one sent with another key: each is the recorded one.
    for key in (BODY_KEY, token("other-", 30)):
        tapedeck.state.use(Player(library))
        again = rawhttp.request(tapedeck.url, "/v1/chat/completions", {**CHAT, "api_key": key})
        assert again.status == 200
        assert json.loads(again.body)["choices"] == json.loads(recorded.body)["choices"]
    assert len(provider.seen) == 1  # replayed, not forwarded
    miss = rawhttp.request(tapedeck.url, "/v1/chat/completions", {**CHAT, "model": "other"})
    assert miss.status == 400  # the key is ignored, nothing else is


def test_the_password_of_an_upstream_url_is_not_written(
    tapedeck: BackgroundServer, provider: Provider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = token("pw-", 24)
    address = provider.url.removeprefix("http://")
    target = tmp_path / "c.yaml"
    record(tapedeck, target, [f"openai=http://gateway:{password}@{address}/v1"])
    for headers in ({}, {"Authorization": f"Bearer {OPENAI_KEY}"}):
        reply = rawhttp.request(tapedeck.url, "/v1/chat/completions", CHAT, headers=headers)
        assert reply.status == 200
    saved = cassettes.load(target)
    assert [e.request.origin for e in saved] == [provider.url, provider.url]
    assert password.encode() not in on_disk(tmp_path)
    assert password not in caplog.text


def test_a_failed_call_logs_and_answers_without_the_key(
    tapedeck: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    google_key = "AIza" + token("", 35)
    target = tmp_path / "c.yaml"
    recorder = record(tapedeck, target, [f"gemini={dead}"])
    path = f"/v1beta/models/gemini-2.5-flash:generateContent?key={google_key}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    reply = rawhttp.request(tapedeck.url, path, body)
    assert reply.status == 502
    assert "Tapedeck could not record" in reply.body.decode()
    assert recorder.failures and "nothing saved" in recorder.failures[0]
    assert "upstream" in caplog.text  # the failure was logged...
    for said in (reply.body.decode(), caplog.text, *recorder.failures):
        assert google_key not in said  # ...without the key
    assert not target.exists()


def test_a_miss_names_the_request_without_its_key(tapedeck: BackgroundServer) -> None:
    google_key = "AIza" + token("", 35)
    path = f"/v1beta/models/gemini-2.5-flash:generateContent?key={google_key}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    miss = rawhttp.request(tapedeck.url, path, body)  # nothing recorded: a miss
    assert miss.status == 400 and "no recording for POST" in miss.body.decode()
    assert google_key not in miss.body.decode()  # what a failing test prints, in CI logs
