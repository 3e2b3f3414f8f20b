"""``tapedeck serve --loop uvloop``: the same bytes, the same pacing, on uvloop's loop;
asking for it without uvloop installed is a usage error naming the way out."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mockserver import cassettes, loops
from mockserver.cli import main
from mockserver.dialects import dialect
from mockserver.framing import sse
from mockserver.model import Exchange, Request, Script
from mockserver.validation import validate
from tests import rawhttp

CHAT = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stream_cassette(path: Path) -> tuple[dict[str, object], bytes]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request = Request("POST", CHAT, body=json.dumps(body).encode(), json=body)
    response = dialect("openai_chat").synthesize(request, Script(text="on another loop"))
    cassettes.dump([Exchange(request, response, "one.yaml#0")], path)
    return body, response.body


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_serve_on_uvloop_replays_and_paces_the_same_bytes(tmp_path: Path) -> None:
    body, recorded = stream_cassette(tmp_path / "one.yaml")
    port = free_port()
    command = [
        sys.executable, "-m", "mockserver", "serve", "--cassettes", str(tmp_path / "one.yaml"),
        "--port", str(port), "--loop", "uvloop", "--no-index-cache",
        "--synthesize", "--profile", "ttft=0.01,tps=400",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().startswith("Tapedeck serving 1 recorded")
            if sys.platform == "linux":  # the server really runs uvloop's loop
                assert "uvloop" in Path(f"/proc/{server.pid}/maps").read_text()
            url = f"http://127.0.0.1:{port}"
            reply = rawhttp.request(url, CHAT, body)
            assert reply.body == recorded
            assert reply.chunks == list(sse.frames(recorded))
            # A synthesized answer, paced by the profile: each event its own chunk, valid.
            asked = {"model": "m", "messages": [{"role": "user", "content": "new"}], "stream": True}
            paced = rawhttp.request(url, CHAT, asked)
            assert paced.status == 200
            assert paced.chunks == list(sse.frames(paced.body))
            assert validate("openai_chat", paced.body, Request("POST", CHAT, json=asked)) == []
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=10) == 0


def test_uvloop_asked_for_but_not_installed_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an absent package imports as
    assert main(["serve", "--loop", "uvloop"]) == 2
    err = capsys.readouterr().err
    assert "--loop uvloop needs the uvloop package" in err
    assert "pip install 'llm-tapedeck[uvloop]'" in err


def test_an_unknown_loop_is_refused_and_its_coroutine_closed() -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    coroutine = never()
    with pytest.raises(loops.LoopUnavailable, match="unknown event loop 'trio'; known: asyncio"):
        loops.run(coroutine, "trio")
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning later
