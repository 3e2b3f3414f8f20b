"""The ``tapedeck`` command as a user runs it: serve, lint, and their exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mockserver import cassettes
from mockserver.cli import bundled_cassettes, main
from mockserver.framing import sse
from mockserver.model import Exchange, Request, Response
from tests import rawhttp
from tests.conftest import corpus_root

# One valid chunk and no [DONE]: broken by exactly one rule.
BROKEN_STREAM = (
    b'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
)


def write(path: Path, body: bytes, stream: bool = True) -> None:
    request_body = {"model": "m", "messages": [], "stream": stream}
    request = Request(
        "POST", "/v1/chat/completions", body=json.dumps(request_body).encode(), json=request_body
    )
    headers = (("content-type", "text/event-stream"),)
    cassettes.dump([Exchange(request, Response(200, headers, body))], path)


def test_lint_passes_the_bundled_cassettes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(bundled_cassettes())]) == 0
    assert "0 violation(s), 0 unreadable" in capsys.readouterr().out


def test_lint_reports_file_interaction_rule_and_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    write(path, BROKEN_STREAM)
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}#0 done-missing" in out
    assert "1 file(s), 1 violation(s), 0 unreadable" in out


def test_lint_names_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("interactions: [{request: {}}]\nversion: 1\n")
    assert main(["lint", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{path}: cannot be read:" in out and "interaction 0" in out


def test_lint_the_real_openai_recordings_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(corpus_root() / "openai")]) == 0


def test_lint_with_nothing_to_read_is_an_error(tmp_path: Path) -> None:
    assert main(["lint", str(tmp_path)]) == 2


def test_serve_prints_base_urls_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    body = sse.frames(BROKEN_STREAM)[0] + b"data: [DONE]\n\n"
    write(path, body)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "mockserver", "serve", "--cassettes", str(path),
        "--port", str(port),
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            assert (
                banner == f"Tapedeck serving 1 recorded interactions at http://127.0.0.1:{port}\n"
            )
            lines = [server.stdout.readline() for _ in range(4)]
            assert f"  export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1\n" in lines
            assert f"  export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}\n" in lines
            request = {"model": "m", "messages": [], "stream": True}
            reply = rawhttp.request(f"http://127.0.0.1:{port}", "/v1/chat/completions", request)
            assert reply.body == body
            assert reply.chunks == list(sse.frames(body))
        finally:
            server.terminate()


def test_serve_refuses_a_missing_cassette(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--cassettes", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_serve_refuses_a_bad_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--profile", "ttft=1,speedy=2"]) == 2
    assert "unknown profile field 'speedy'" in capsys.readouterr().err
