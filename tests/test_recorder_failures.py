"""A cassette that cannot be written never corrupts the answer: the client gets the whole
response as the upstream sent it (or, when nothing was sent yet, an error in its
provider's shape), the failure is listed in ``Recorder.failures`` and logged once, and
names that cannot be cassettes are refused before the server starts."""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mockserver import cassettes
from mockserver.errors import UnsafeCassetteName
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response
from mockserver.player import Player
from mockserver.recorder import Recorder, parse_upstreams
from mockserver.server_thread import BackgroundServer
from tests import rawhttp, upstream
from tests.test_recorder import chat_case, stream_events
from tests.upstream import Upstream, running


@pytest.fixture
def tapedeck() -> Iterator[BackgroundServer]:
    with BackgroundServer() as server:
        yield server


def recording(server: BackgroundServer, target: Path, url: str) -> Recorder:
    recorder = Recorder("all", target, parse_upstreams([f"openai={url}/v1"]), root=target.parent)
    server.state.use(Player(Library(())), recorder)
    return recorder


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_save_failing_mid_stream_still_sends_the_whole_stream(
    tapedeck: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = stream_events(chat_case())
    provider = Upstream({"/v1/chat/completions": upstream.Script(events)}, hold=True)
    target = tmp_path / "c.yaml"
    with running(provider):
        recorder = recording(tapedeck, target, provider.url)
        case = chat_case()
        with (
            httpx.Client(base_url=tapedeck.url, timeout=30) as client,
            client.stream("POST", case.path, json=case.body, headers=case.auth) as reply,
        ):
            pieces = reply.iter_bytes()
            first = next(pieces)  # the response has started...
            target.mkdir()  # ...when the cassette becomes impossible to write
            provider.gate.set()
            rest = b"".join(pieces)  # httpx raises on a broken chunked body
        assert reply.status_code == 200
    assert first + rest == b"".join(events)
    (failure,) = recorder.failures
    assert failure.endswith("not saved to c.yaml: Is a directory (EISDIR)")
    assert str(tmp_path) not in failure  # named relative to the cassette folder
    assert errors_logged(caplog) == [failure]


def test_nothing_sent_yet_gets_a_provider_shaped_error_and_no_upstream_call(
    tapedeck: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = Upstream({"/v1/chat/completions": upstream.Script([b"{}"], "application/json")})
    target = tmp_path / "c.yaml"
    with running(provider):
        recorder = recording(tapedeck, target, provider.url)
        target.mkdir()  # after the recorder checked it at start
        case = chat_case()
        reply = rawhttp.request(tapedeck.url, case.path, case.body, headers=case.auth)
    assert reply.status == 500
    assert reply.header("x-should-retry") == "false"  # the SDKs would retry a 500 otherwise
    error = reply.json()["error"]
    assert error["type"] == "api_error"
    assert "cassette 'c.yaml' cannot be written: it is a folder" in error["message"]
    assert provider.requests == []  # no real (paid) call whose answer could not be kept
    (failure,) = recorder.failures
    assert "nothing forwarded, nothing saved" in failure
    assert errors_logged(caplog) == [failure]


def test_a_cassette_it_cannot_read_is_left_alone(
    tapedeck: BackgroundServer, tmp_path: Path
) -> None:
    target = tmp_path / "c.yaml"
    broken = b"interactions:\n- request: {method: POST}\nversion: 1\n"
    target.write_bytes(broken)
    provider = Upstream({"/v1/chat/completions": upstream.Script([b"{}"], "application/json")})
    with running(provider):
        recorder = recording(tapedeck, target, provider.url)
        case = chat_case()
        reply = rawhttp.request(tapedeck.url, case.path, case.body, headers=case.auth)
    assert (reply.status, reply.body) == (200, b"{}")
    (failure,) = recorder.failures
    assert "not saved to c.yaml: CassetteFormatError: c.yaml, interaction 0" in failure
    assert target.read_bytes() == broken


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ``python -m mockserver``, where a write past RLIMIT_FSIZE fails with EFBIG (as on a full
# disk) instead of the signal killing the process.
SERVE_IGNORING_SIGXFSZ = (
    "import runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "sys.argv[0] = 'mockserver'; runpy.run_module('mockserver', run_name='__main__')"
)


def test_a_write_failing_half_way_leaves_no_half_interaction(tmp_path: Path) -> None:
    """A real ``tapedeck serve`` whose file-size limit is lowered after one recording:
    the next append fails part-way (like a full disk), is cut back, and is reported."""
    answer = b'{"id":"c","object":"chat.completion","choices":[]}'
    target = tmp_path / "cassettes" / "recorded.yaml"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    scripts = {"/v1/chat/completions": upstream.Script([answer], "application/json")}
    with running(Upstream(scripts)) as live:
        command = [
            sys.executable, "-c", SERVE_IGNORING_SIGXFSZ, "serve", "--port", str(port),
            "--record-mode", "all", "--record-to", str(target),
            "--upstream", f"openai={live.url}/v1",
        ]  # fmt: skip
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as server:
            assert server.stdout is not None and server.stderr is not None
            try:
                assert "Tapedeck serving" in server.stdout.readline()
                case = chat_case()
                first = rawhttp.request(url, case.path, case.body, headers=case.auth)
                assert (first.status, first.body) == (200, answer)
                whole = target.read_bytes()
                limit = len(whole) + 200  # room for part of the next interaction only
                _, hard = resource.prlimit(server.pid, resource.RLIMIT_FSIZE)
                resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (limit, hard))
                second = rawhttp.request(url, case.path, case.body, headers=case.auth)
                assert (second.status, second.body) == (200, answer)
                assert target.read_bytes() == whole  # cut back to the last whole interaction
                assert len(cassettes.load(target)) == 1
                resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (hard, hard))
                third = rawhttp.request(url, case.path, case.body, headers=case.auth)
                assert third.status == 200
                assert len(cassettes.load(target)) == 2  # recording goes on
            finally:
                server.send_signal(signal.SIGINT)
                _, errors = server.communicate(timeout=30)
    failures = [line for line in errors.splitlines() if "not saved to" in line]
    assert len(failures) == 1  # logged once
    assert "File too large (EFBIG)" in failures[0]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("folder", "it is a folder"),
        ("", "it is a folder"),  # --record-to "" is the current folder
        ("x" * 300 + ".yaml", "is 305 bytes long, and this filesystem allows 241"),
        ("blocker/c.yaml", "'blocker' on its way is a file"),
    ],
    ids=["folder", "empty", "too-long", "file-in-the-way"],
)
def test_serve_refuses_a_record_target_that_cannot_be_a_file(
    tmp_path: Path, name: str, why: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "blocker").write_text("")
    command = [
        sys.executable, "-m", "mockserver", "serve", "--port", str(_free_port()),
        "--record-mode", "all", "--record-to", name,
    ]  # fmt: skip
    # Refused before the server starts: a server that started would run into the timeout.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Tapedeck serving" not in done.stdout
    assert "tapedeck serve: cassette" in done.stderr and why in done.stderr


def test_a_nul_in_a_cassette_name_is_refused_with_the_name() -> None:
    with pytest.raises(UnsafeCassetteName, match="contains a NUL character"):
        Recorder("all", Path("a\0b.yaml"))


def test_the_recorder_names_its_cassette_relative_to_the_folder(tmp_path: Path) -> None:
    inside = Recorder("all", tmp_path / "sub" / "c.yaml", root=tmp_path)
    assert inside.shown == os.path.join("sub", "c.yaml")
    assert Recorder("all", Path("c.yaml")).shown == "c.yaml"


def test_a_served_folder_s_cassettes_are_named_relative_to_it(tmp_path: Path) -> None:
    """A client of ``tapedeck serve --cassettes /srv/cassettes`` learns which recording
    was nearest, not where the server keeps its files."""
    case = chat_case()
    recorded = Request("POST", case.path, body=json.dumps(case.body).encode(), json=case.body)
    cassettes.dump([Exchange(recorded, Response(200, (), b"{}"))], tmp_path / "openai" / "c.yaml")
    with BackgroundServer(Library.from_paths([tmp_path])) as server:
        asked = {**case.body, "messages": [{"role": "user", "content": "something else"}]}
        reply = rawhttp.request(server.url, case.path, asked)
    message = reply.json()["error"]["message"]
    assert reply.status == 400 and "openai/c.yaml#0" in message
    assert str(tmp_path) not in message
