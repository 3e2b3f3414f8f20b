"""The plugin is safe by default: the marker alone turns Tapedeck on; a test that replays
cannot reach the network (every host but the Tapedeck server is refused, naming the host
and the way out); bad upstream names are usage errors before any test runs; and a
synthesized or scripted test is never forwarded to an upstream, whatever the record mode.
Driven through pytester, as a user runs pytest."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests import upstream
from tests.test_plugin import ASK, write_cassette
from tests.test_plugin_recording import ANSWER, TEST_FILE
from tests.upstream import SECRET_KEY, Upstream, running


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog does): what a
    blocked test could otherwise have reached."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def provider() -> Iterator[Upstream]:
    scripts = {"/v1/chat/completions": upstream.Script([ANSWER], "application/json")}
    with running(Upstream(scripts)) as live:
        yield live


def test_the_marker_alone_turns_tapedeck_on(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello")
    write_cassette(pytester.path / "cassettes" / "test_marked" / "TestGroup.test_it.yaml", "hi")
    pytester.makepyfile(
        test_marked=ASK
        + """
import os, pytest

@pytest.mark.tapedeck("chat.yaml")
def test_no_fixture_requested():
    assert os.environ["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    assert ask("hello").choices[0].message.content == "answer 0"

@pytest.mark.tapedeck
class TestGroup:
    def test_it(self):
        assert ask("hi").choices[0].message.content == "answer 0"

def test_unmarked():
    assert "OPENAI_BASE_URL" not in os.environ
"""
    )
    pytester.runpytest().assert_outcomes(passed=3)


BLOCKED = """
import asyncio, os, socket, urllib.request
import openai, pytest

PORT = {port}

@pytest.mark.tapedeck(synthesize=True)
def test_sdk_pointed_at_the_provider():
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="k", max_retries=0)
    client.chat.completions.create(model="m", messages=[{{"role": "user", "content": "hi"}}])

@pytest.mark.tapedeck(synthesize=True)
def test_async_sdk():
    async def call():
        client = openai.AsyncOpenAI(
            base_url="https://api.anthropic.com/v1", api_key="k", max_retries=0
        )
        await client.chat.completions.create(model="m", messages=[])
    asyncio.run(call())

@pytest.mark.tapedeck(synthesize=True)
def test_swallowed_by_the_client():
    try:
        urllib.request.urlopen("http://example.com/")
    except Exception:
        pass  # the test still fails, at teardown

@pytest.mark.tapedeck(synthesize=True)
def test_another_local_port():
    with socket.socket() as sock:
        sock.connect(("127.0.0.1", PORT))

@pytest.mark.tapedeck(synthesize=True)
def test_the_tapedeck_server_is_reachable():
    messages = [{{"role": "user", "content": "hi"}}]
    with openai.OpenAI(max_retries=0) as client:
        assert client.chat.completions.create(model="m", messages=messages).choices

def test_unmarked_tests_keep_the_network():
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", PORT)) == 0
"""

WAY_OUT = (
    "Way out: let the client reach Tapedeck (create it inside the test or a fixture: Tapedeck "
    "points OPENAI_BASE_URL and the other SDKs' variables at its server; or pass "
    "base_url=tapedeck.base_url(...)); record the test (--tapedeck-record-mode=once, or "
    "record_mode= on its marker); or allow the host: --tapedeck-allowed-hosts='{host}' (or "
    "the tapedeck_allowed_hosts ini key)."
)


def test_a_replaying_test_cannot_reach_the_network(
    pytester: pytest.Pytester, listener: int
) -> None:
    pytester.makepyfile(test_blocked=BLOCKED.format(port=listener))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=3, errors=4)
    result.stdout.fnmatch_lines(
        [
            "E * Tapedeck blocked a connection to api.openai.com:443: this test replays "
            "cassettes, so nothing in it may reach the network (only the Tapedeck server, "
            "http://127.0.0.1:*).",
            "E * " + WAY_OUT.format(host=r"api\.openai\.com"),
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["E *Tapedeck blocked a connection to api.anthropic.com:443*"])
    # A client that swallows the error does not hide it: the test errors at teardown.
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_swallowed_by_the_client*",
            "1 connection(s) blocked: example.com:80",
            "Tapedeck blocked a connection to example.com:80*",
        ]
    )
    result.stdout.fnmatch_lines([f"E *Tapedeck blocked a connection to 127.0.0.1:{listener}*"])
    failed = {line.split(" - ")[0] for line in result.stdout.lines if line.startswith("FAILED")}
    assert failed == {
        "FAILED test_blocked.py::test_sdk_pointed_at_the_provider",
        "FAILED test_blocked.py::test_async_sdk",
        "FAILED test_blocked.py::test_another_local_port",
    }


def test_the_network_is_blocked_in_each_xdist_worker(
    pytester: pytest.Pytester, listener: int
) -> None:
    pytester.makepyfile(test_blocked=BLOCKED.format(port=listener))
    result = pytester.runpytest_subprocess("-n", "2", "-k", "local_port or reachable or keep")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines([f"E *Tapedeck blocked a connection to 127.0.0.1:{listener}*"])


def test_allowed_hosts_from_the_command_line_and_the_ini_file(
    pytester: pytest.Pytester, listener: int
) -> None:
    pytester.makepyfile(
        f"""
import socket, pytest

@pytest.mark.tapedeck(synthesize=True)
def test_by_address():
    with socket.socket() as sock:
        sock.connect(("127.0.0.1", {listener}))

@pytest.mark.tapedeck(synthesize=True)
def test_by_name():
    socket.create_connection(("localhost", {listener})).close()
"""
    )
    pytester.runpytest().assert_outcomes(failed=2, errors=2)
    allowed = pytester.runpytest(r"--tapedeck-allowed-hosts=127\.0\.0\.1,nothing", "-k", "address")
    allowed.assert_outcomes(passed=1)
    # What an allowed name resolves to is allowed too.
    pytester.makeini("[pytest]\ntapedeck_allowed_hosts =\n    localhost\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["FAILED *test_by_address*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "opneai=http://127.0.0.1:1/v1",
            "unknown upstream 'opneai' in 'opneai=http://127.0.0.1:1/v1'; "
            "valid: *openai*anthropic*",
        ),
        (
            "openai",
            "'openai' is not NAME=URL; write e.g. openai=http://127.0.0.1:8080/v1 (names: *openai*",
        ),
        (
            "openai_chat=http://127.0.0.1:1/v1",
            "unknown upstream 'openai_chat' in 'openai_chat=http://127.0.0.1:1/v1'; "
            "'openai_chat' is a dialect, whose requests record through the upstream *'openai'; "
            "valid: *",
        ),
        (
            "openai=127.0.0.1:1/v1",
            "'openai=127.0.0.1:1/v1': the URL must be http(s)://host[:port][/path], "
            "e.g. openai=http://127.0.0.1:8080",
        ),
    ],
)
def test_bad_upstreams_are_usage_errors(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile("def test_it(): pass\n")
    result = pytester.runpytest(f"--tapedeck-upstream={option}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --tapedeck-upstream / tapedeck_upstreams: {message}"])
    result.stdout.no_fnmatch_line("*passed*")


def test_bad_ini_upstreams_and_allowed_hosts_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass\n")
    pytester.makeini("[pytest]\ntapedeck_upstreams =\n    antropic=http://127.0.0.1:1\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *unknown upstream 'antropic'*valid: *anthropic*"])
    (pytester.path / "tox.ini").unlink()
    result = pytester.runpytest("--tapedeck-allowed-hosts=api.(openai")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --tapedeck-allowed-hosts / tapedeck_allowed_hosts: 'api.(openai' is not a "
            "regular expression (missing ), unterminated subpattern at position 4)*"
        ]
    )


@pytest.mark.parametrize("mode", ["once", "rewrite"])
def test_synthesized_and_scripted_tests_are_never_forwarded(
    pytester: pytest.Pytester, provider: Upstream, mode: str
) -> None:
    pytester.makepyfile(
        TEST_FILE.format(key=SECRET_KEY)
        + """
@pytest.mark.tapedeck(synthesize=True)
def test_synthesized():
    assert ask("hello") != "live answer"

def test_scripted(tapedeck):
    tapedeck.script("scripted")
    assert ask("hello") == "scripted"

def test_recorded(tapedeck):
    assert ask("hello") == "live answer"  # the upstream is there: only this test records
"""
    )
    upstream_option = f"--tapedeck-upstream=openai={provider.url}/v1"
    result = pytester.runpytest(f"--tapedeck-record-mode={mode}", upstream_option)
    result.assert_outcomes(passed=3)
    assert len(provider.requests) == 1
    written = sorted(p.name for p in (pytester.path / "cassettes").rglob("*.yaml"))
    assert written == ["test_recorded.yaml"]
    pytester.runpytest().assert_outcomes(passed=3)  # and they replay
