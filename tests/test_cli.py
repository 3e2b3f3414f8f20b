"""The ``tapedeck`` command as a user runs it: serve, lint, and their exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mockserver import cassettes, synth
from mockserver.cli import bundled_cassettes, main
from mockserver.framing import sse
from mockserver.model import Exchange, Request, Response, Script
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
    summary = "1 file(s), 1 interaction(s): 1 checked, 0 without a stream, 0 not checked; "
    assert out.splitlines()[-1] == summary + "1 violation(s), 0 unreadable"


def test_lint_names_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("interactions: [{request: {}}]\nversion: 1\n")
    assert main(["lint", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{path}: cannot be read:" in out and "interaction 0" in out


@pytest.mark.corpus
def test_lint_the_real_openai_recordings_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    # No stream breaks a rule; what lint flags is the Cloudflare cookies some kept.
    assert main(["lint", str(corpus_root() / "openai")]) == 1
    out = capsys.readouterr().out
    assert " 0 violation(s), 0 unreadable" in out.splitlines()[-1]
    flagged = [line for line in out.splitlines() if " secret: " in line]
    assert flagged and all(" secret: cookie in response header Set-Cookie" in f for f in flagged)


def test_lint_with_nothing_to_read_is_an_error(tmp_path: Path) -> None:
    assert main(["lint", str(tmp_path)]) == 2


def exchange_at(path: str, stream: bool = True) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    request = Request("POST", path, body=json.dumps(body).encode(), json=body)
    return Exchange(request, Response(200, (("content-type", "text/event-stream"),), b"x"))


def test_lint_says_what_it_could_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unknown.yaml"
    cassettes.dump([exchange_at("/v9/unheard-of")] * 2, path)
    assert main(["lint", str(path)]) == 3  # not a pass, and not a violation
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"{path}#0 not checked: no dialect serves POST /v9/unheard-of",
        f"{path}#1 not checked: no dialect serves POST /v9/unheard-of",
    ]
    assert lines[2].startswith(
        f"{path}: nothing checked: no dialect serves the route of any of its 2 interaction(s). "
        "Way out: "
    )
    assert lines[3] == (
        "1 file(s), 2 interaction(s): 0 checked, 0 without a stream, 2 not checked; "
        "0 violation(s), 0 unreadable"
    )


def test_lint_counts_unchecked_interactions_beside_checked_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mixed.yaml"
    answered = synth.synthesize("/v1/chat/completions", {"model": "m", "stream": True}, Script())
    unknown = exchange_at("/v9/unheard-of")
    plain = exchange_at("/v1/chat/completions", stream=False)
    cassettes.dump([answered, unknown, plain], path)
    assert main(["lint", str(path)]) == 0  # something was checked, and it holds
    assert capsys.readouterr().out.splitlines() == [
        f"{path}#1 not checked: no dialect serves POST /v9/unheard-of",
        "1 file(s), 3 interaction(s): 1 checked, 1 without a stream, 1 not checked; "
        "0 violation(s), 0 unreadable",
    ]


def test_lint_an_empty_cassette_checked_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.yaml"
    cassettes.dump([], path)
    assert main(["lint", str(path)]) == 3
    out = capsys.readouterr().out
    assert f"{path}: nothing checked: the cassette holds no interactions." in out


def test_lint_violations_outrank_unchecked_files(tmp_path: Path) -> None:
    cassettes.dump([exchange_at("/v9/unheard-of")], tmp_path / "a-unknown.yaml")
    write(tmp_path / "b-broken.yaml", BROKEN_STREAM)
    assert main(["lint", str(tmp_path)]) == 1


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
