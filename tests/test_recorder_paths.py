"""Recording forwards exactly the path that was routed: a path with a dot segment, however
encoded, never reaches the upstream (it could name another path on that host), and an
encoded slash (a Bedrock model ARN) stays encoded, on the wire and in the cassette."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from mockserver import cassettes
from mockserver.index import Library
from mockserver.player import Player
from mockserver.recorder import Recorder, parse_upstreams
from mockserver.server_thread import BackgroundServer
from tests import rawhttp, upstream
from tests.upstream import SECRET_KEY, Upstream, running

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = b'{"id":"c","object":"chat.completion","choices":[]}'
# What boto3 sends for an inference-profile ARN: every ':' and the '/' percent-encoded.
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v2:0"
ARN_ON_THE_WIRE = (
    "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
    "us.anthropic.claude-v2%3A0"
)


@pytest.fixture
def provider() -> Iterator[Upstream]:
    scripts = {
        "/v1/chat/completions": upstream.Script([ANSWER], "application/json"),
        f"/model/{ARN}/invoke": upstream.Script([b'{"content":[]}'], "application/json"),
    }
    with running(Upstream(scripts)) as live:
        yield live


@pytest.fixture
def tapedeck() -> Iterator[BackgroundServer]:
    with BackgroundServer() as server:
        yield server


def recording(server: BackgroundServer, target: Path, url: str) -> Recorder:
    upstreams = parse_upstreams([f"openai={url}/v1", f"anthropic={url}", f"bedrock={url}"])
    recorder = Recorder("all", target, upstreams)
    server.state.use(Player(Library(())), recorder)
    return recorder


@pytest.mark.parametrize(
    "path",
    [
        "/v1/..%2f..%2fadmin%2fsecret/chat/completions",  # the issue's own example
        "/v1/..%2F..%2Fadmin/chat/completions",
        "/v1/%2e%2e/%2e%2e/admin/chat/completions",
        "/v1/%2E%2E%2fadmin/chat/completions",
        "/v1/../admin/chat/completions",
        "/v1/./chat/completions",
        "/v1/..%5c..%5cadmin/chat/completions",  # a backslash, for servers that take it as /
        "/x/%2e%2e/v1/messages",
    ],
)
def test_a_dot_segment_is_refused_and_never_forwarded(
    tapedeck: BackgroundServer, provider: Upstream, tmp_path: Path, path: str
) -> None:
    target = tmp_path / "c.yaml"
    recorder = recording(tapedeck, target, provider.url)
    reply = rawhttp.request(tapedeck.url, path, CHAT, headers={"x-api-key": SECRET_KEY})
    assert reply.status == 400
    assert reply.header("x-should-retry") == "false"
    message = reply.json()["error"]["message"]
    assert "'.' or '..' segment" in message and "another path on the upstream host" in message
    assert provider.targets == []  # nothing reached the upstream
    assert not target.exists()
    (failure,) = recorder.failures
    assert "nothing forwarded, nothing saved" in failure
    # A clean path still records: the refusal did not stop the recorder.
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    clean = rawhttp.request(tapedeck.url, "/v1/chat/completions", CHAT, headers=headers)
    assert clean.status == 200
    assert provider.targets == ["/v1/chat/completions"]


def test_the_routed_path_is_the_path_forwarded_and_saved(
    tapedeck: BackgroundServer, provider: Upstream, tmp_path: Path
) -> None:
    target = tmp_path / "c.yaml"
    recorder = recording(tapedeck, target, provider.url)
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    path = f"/model/{ARN_ON_THE_WIRE}/invoke"
    reply = rawhttp.request(tapedeck.url, path, {"messages": []}, headers=headers)
    assert reply.status == 200
    assert provider.targets == [path]  # the encoded slash was not decoded on the way
    assert recorder.failures == []
    (saved,) = cassettes.load(target)
    assert saved.request.path == path  # the uri boto3 itself would have recorded
    # And it replays to boto3, whose model id is the decoded ARN.
    tapedeck.state.use(Player(Library.from_paths([target])))
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=tapedeck.url,
        aws_access_key_id="tapedeck",
        aws_secret_access_key="tapedeck",
        config=Config(retries={"max_attempts": 1}),
    )
    with contextlib.closing(client):
        answer = client.invoke_model(modelId=ARN, body=json.dumps({"messages": []}))
        assert json.loads(answer["body"].read()) == {"content": []}
