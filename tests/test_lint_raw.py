"""``tapedeck lint --dialect``: raw captured stream bodies are judged as streams of that
protocol, cassettes in the same run still as cassettes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mockserver import cassettes
from mockserver.cli import main
from mockserver.dialects import DIALECTS
from mockserver.model import Exchange, Request, Script
from mockserver.validation import lint_path, stream_request

CHAT = DIALECTS["openai_chat"]


def synthesized(include_usage: bool) -> tuple[Request, bytes]:
    body: dict[str, object] = {"model": "m", "messages": [], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    request = Request("POST", "/v1/chat/completions", body=json.dumps(body).encode(), json=body)
    return request, CHAT.synthesize(request, Script(text="Hi there")).body


def lint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["lint", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_valid_raw_stream_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = tmp_path / "capture.sse"
    raw.write_bytes(synthesized(include_usage=True)[1])
    code, out = lint(capsys, "--dialect", "openai_chat", "--include-usage", str(raw))
    assert (code, out.splitlines()[-1]) == (
        0,
        "1 file(s), 1 interaction(s): 1 checked, 0 without a stream, 0 not checked; "
        "0 violation(s), 0 unreadable",
    )


def test_a_broken_raw_stream_names_its_rules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = tmp_path / "capture.txt"
    body = synthesized(include_usage=True)[1].replace(b',"usage":null', b"")
    raw.write_bytes(body.replace(b"data: [DONE]\n\n", b""))
    code, out = lint(capsys, "--dialect", "openai_chat", "--include-usage", str(raw))
    assert code == 1
    assert f"{raw} done-missing (event -1): expected data: [DONE]" in out
    assert f"{raw} usage-null-missing (event 0): " in out
    # Whether the request asked for usage decides the usage rules: unknown, they are off.
    code, out = lint(capsys, "--dialect", "openai_chat", str(raw))
    assert code == 1 and "usage-null-missing" not in out and "done-missing" in out
    code, out = lint(capsys, "--dialect", "openai_chat", "--no-include-usage", str(raw))
    assert f"{raw} usage-unrequested" in out


def test_cassettes_are_still_linted_as_cassettes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request, body = synthesized(include_usage=False)
    cassette = tmp_path / "chat.yaml"
    cassettes.dump([Exchange(request, CHAT.synthesize(request, Script(text="ok")))], cassette)
    raw = tmp_path / "capture.sse"
    raw.write_bytes(body + b"data: [DONE]\n\n")
    code, out = lint(capsys, "--dialect", "openai_chat", str(cassette), str(raw))
    assert code == 1
    assert f"{raw} data-after-done (event " in out
    assert not any(line.startswith(str(cassette)) for line in out.splitlines())
    assert out.splitlines()[-1] == (
        "2 file(s), 2 interaction(s): 2 checked, 0 without a stream, 0 not checked; "
        "1 violation(s), 0 unreadable"
    )


def test_a_raw_stream_without_dialect_says_how_to_lint_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = tmp_path / "capture.yaml"
    raw.write_bytes(synthesized(include_usage=False)[1])
    code, out = lint(capsys, str(raw))
    assert code == 2 and "(a raw stream body? name its protocol with --dialect)" in out


def test_bad_dialect_and_request_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = lint(capsys, "--dialect", "nope", str(tmp_path))
    assert code == 2 and "unknown dialect 'nope'; known: " in out
    code, out = lint(capsys, "--dialect", "openai_chat", "--request", "{oops", str(tmp_path))
    assert code == 2 and "--request is JSON text or @file" in out


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_lint_path_judges_raw_streams_of_every_dialect(dialect: str, tmp_path: Path) -> None:
    request = stream_request(dialect, body={"model": "m", "messages": []})
    assert request is not None and request.json["stream"] is True
    raw = tmp_path / "empty.bin"
    raw.write_bytes(b"")
    assert [v.rule for _, v in lint_path(raw, dialect, request)] == ["stream-empty"]
    assert stream_request(dialect) is None
