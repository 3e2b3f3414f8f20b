"""Tapedeck as a drop-in for pytest-recording (which is not installed here): a suite written
its way, with cassettes it recorded itself, passes unchanged; ``--record-mode`` records to
its paths with its precedence; ``--block-network`` works; and when pytest-recording is
installed, it keeps its marker and the header says how to choose."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockserver import cassettes
from pytest_plugin.options import MAX_NAME, cassette_name, with_suffix
from tests.pytest_recording_suite import DATA, RECORDED, EchoProvider, lay_out
from tests.upstream import running

RECORDED_BY = DATA / "cassettes" / "test_chats"


@pytest.fixture
def echo() -> Iterator[EchoProvider]:
    with running(EchoProvider()) as live:
        yield live


def test_the_data_is_what_pytest_recording_wrote() -> None:
    assert sorted(p.name for p in RECORDED_BY.iterdir()) == sorted(RECORDED)
    for path in RECORDED_BY.iterdir():
        assert "authorization" not in path.read_text().lower()  # its vcr_config filtered it


def test_a_pytest_recording_suite_passes_unchanged(pytester: pytest.Pytester) -> None:
    lay_out(pytester.path)
    shutil.copytree(DATA / "cassettes", pytester.path / "cassettes")
    before = {p: p.read_bytes() for p in (pytester.path / "cassettes").rglob("*.yaml")}
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*TestGroup::test_in_class PASSED*"])
    after = {p: p.read_bytes() for p in (pytester.path / "cassettes").rglob("*.yaml")}
    assert after == before  # replayed, nothing rewritten


def test_without_its_cassette_a_vcr_test_fails(pytester: pytest.Pytester) -> None:
    lay_out(pytester.path)
    shutil.copytree(DATA / "cassettes", pytester.path / "cassettes")
    (pytester.path / "cassettes" / "test_chats" / "TestGroup.test_in_class.yaml").unlink()
    result = pytester.runpytest("-k", "in_class")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*1 request(s) matched no recording:*"])


def test_a_vcr_test_that_would_reach_the_network_fails_naming_the_host(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import httpx, pytest

@pytest.mark.vcr  # vcrpy would have patched httpx; Tapedeck serves SDKs on its own URL
def test_direct():
    httpx.get("https://api.openai.com/v1/models")
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "E * Tapedeck blocked a connection to api.openai.com:443: this test replays "
            "cassettes, so nothing in it may reach the network*",
        ]
    )


PRECEDENCE = """
import openai, pytest

def answer(question):
    with openai.OpenAI(max_retries=0, default_headers={"x-team-token": "team-secret"}) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    return reply.choices[0].message.content

class TestGroup:
    @pytest.mark.vcr
    @pytest.mark.parametrize("question", ["a/b", "c"])
    def test_recorded(self, question):
        assert answer(question) == f"you said: {question}"

@pytest.mark.vcr(record_mode="none")
def test_marker_says_none():
    with pytest.raises(openai.BadRequestError):
        answer("never recorded")
"""


def test_record_modes_marker_over_vcr_config_over_record_mode(
    pytester: pytest.Pytester, echo: EchoProvider
) -> None:
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def vcr_config():
    return {"record_mode": "once", "filter_headers": [("x-team-token", "XXX")]}
"""
    )
    pytester.makepyfile(test_modes=PRECEDENCE)
    upstream = f"--tapedeck-upstream=openai={echo.url}/v1"
    # vcr_config says once, over --record-mode=none; the marker says none, over vcr_config.
    result = pytester.runpytest(upstream, "--record-mode=none")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_marker_says_none*"])
    assert len(echo.requests) == 2
    folder = pytester.path / "cassettes" / "test_modes"
    # pytest-recording's paths: <module>/<Class>.<test>[<id with / as ->].yaml
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["TestGroup.test_recorded[a-b].yaml", "TestGroup.test_recorded[c].yaml"]
    (saved,) = cassettes.load(folder / "TestGroup.test_recorded[c].yaml")
    assert saved.request.json["messages"][0]["content"] == "c"
    assert "team-secret" not in (folder / "TestGroup.test_recorded[c].yaml").read_text()
    # --tapedeck-record-mode forces every test, markers included.
    forced = pytester.runpytest(upstream, "--tapedeck-record-mode=all", "-k", "says_none")
    forced.assert_outcomes(failed=1)
    assert len(echo.requests) == 3


def test_record_mode_sets_the_default_of_unmarked_settings(
    pytester: pytest.Pytester, echo: EchoProvider
) -> None:
    pytester.makeini("[pytest]\ntapedeck_record_mode = all\n")
    pytester.makepyfile(test_modes=PRECEDENCE)
    upstream = f"--tapedeck-upstream=openai={echo.url}/v1"
    # The command line's default beats the ini file's: none, so the misses fail.
    result = pytester.runpytest(upstream, "--record-mode=none", "-k", "recorded")
    result.assert_outcomes(failed=2, errors=2)
    assert echo.requests == []
    # Without it, the ini file records; then a replay with no upstream passes.
    pytester.runpytest(upstream, "-k", "recorded").assert_outcomes(passed=2)
    assert len(echo.requests) == 2
    pytester.runpytest("--record-mode=none", "-k", "recorded").assert_outcomes(passed=2)


def test_record_mode_is_the_default_of_tapedeck_tests_too(
    pytester: pytest.Pytester, echo: EchoProvider
) -> None:
    pytester.makepyfile(
        test_modes=PRECEDENCE
        + """
def test_fixture(tapedeck):
    assert answer("d") == "you said: d"

@pytest.mark.tapedeck(record_mode="none")
def test_pinned():
    with pytest.raises(openai.BadRequestError):
        answer("e")
"""
    )
    upstream = f"--tapedeck-upstream=openai={echo.url}/v1"
    result = pytester.runpytest(upstream, "--record-mode=once", "-k", "fixture or pinned")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_pinned*"])
    assert len(echo.requests) == 1
    assert (pytester.path / "cassettes" / "test_modes" / "test_fixture.yaml").exists()


def test_block_network_and_allowed_hosts(pytester: pytest.Pytester) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        pytester.makepyfile(
            f"""
import socket, pytest

def test_unmarked():
    socket.create_connection(("localhost", {port}), timeout=5).close()

@pytest.mark.block_network(allowed_hosts=["localhost"])
def test_marked_and_allowed():
    socket.create_connection(("localhost", {port}), timeout=5).close()
"""
        )
        result = pytester.runpytest("--block-network")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                f"E * Network is disabled: Tapedeck blocked a connection to 127.0.0.1:{port} "
                "(--block-network, or @pytest.mark.block_network).",
                r"E * Way out: allow the host: --allowed-hosts='127\.0\.0\.1' (or "
                "@pytest.mark.block_network(allowed_hosts=?...?), or the tapedeck_allowed_hosts "
                "ini key).",
            ],
            consecutive=True,
        )
        allowed = pytester.runpytest("--block-network", "--allowed-hosts=localhost")
        allowed.assert_outcomes(passed=2)
        pytester.runpytest().assert_outcomes(passed=2)  # no blocking asked: none


def test_a_bad_block_network_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.block_network(hosts=['x'])\ndef test_it(): pass\n"
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *block_network takes only allowed_hosts=[[]...[]]*"])


FAKE_RECORDING = """
import pytest

def pytest_addoption(parser):
    parser.addoption("--record-mode", default=None)

def pytest_configure(config):
    config.addinivalue_line("markers", "vcr: the fake pytest-recording's")

@pytest.fixture(autouse=True)
def vcr(request):
    yield "fake pytest-recording" if request.node.get_closest_marker("vcr") else None
"""


def test_when_pytest_recording_is_installed_it_keeps_its_marker(pytester: pytest.Pytester) -> None:
    # Installed the way pip does it: a package and its pytest11 entry point.
    package = pytester.path / "pytest_recording"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(FAKE_RECORDING)
    info = pytester.path / "pytest_recording-0.14.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pytest-recording\nVersion: 0.14.1\n"
    )
    (info / "entry_points.txt").write_text("[pytest11]\nrecording = pytest_recording.plugin\n")
    pytester.makepyfile(
        """
import os, pytest

@pytest.mark.vcr
def test_it(vcr):
    assert vcr == "fake pytest-recording"
    assert "OPENAI_BASE_URL" not in os.environ  # Tapedeck left it alone
"""
    )
    result = pytester.runpytest_subprocess("--record-mode=once")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "tapedeck: pytest-recording is installed, so it plays @pytest.mark.vcr tests and "
            "owns --record-mode; Tapedeck plays @pytest.mark.tapedeck tests. To play vcr tests "
            "with Tapedeck, run with -p no:recording (or uninstall pytest-recording)."
        ]
    )
    pytester.makepyfile(
        """
import os, pytest

@pytest.mark.vcr
def test_it(vcr):
    assert os.environ["OPENAI_BASE_URL"] == vcr.url + "/v1"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:recording", "--record-mode=none")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*pytest-recording is installed*")


def test_default_names_follow_pytest_recording() -> None:
    class TestGroup:
        pass

    assert cassette_name(None, "test_it") == "test_it"
    assert cassette_name(TestGroup, "test_it[x]") == "TestGroup.test_it[x]"
    assert cassette_name(None, "test_q[<a>?%*:|\"'/\\b]") == "test_q[-a----------b]"
    assert with_suffix("shared.yaml") == "shared.yaml"
    # Too long for a file name: shortened, distinct names staying distinct.
    long_a, long_b = "t" * 300 + "a", "t" * 300 + "b"
    assert len(with_suffix(long_a)) == MAX_NAME
    assert with_suffix(long_a) != with_suffix(long_b)
    assert with_suffix(long_a).startswith("t" * 100) and with_suffix(long_a).endswith(".yaml")


def test_cassette_paths_resolve_under_the_cassette_dir_option(pytester: pytest.Pytester) -> None:
    lay_out(pytester.path)
    shutil.copytree(DATA / "cassettes", pytester.path / "elsewhere")
    result = pytester.runpytest("--tapedeck-cassette-dir=elsewhere", "-k", "plain or class")
    result.assert_outcomes(passed=3)
    assert not Path(pytester.path / "cassettes").exists()
