"""Recording through the pytest plugin, as a user runs it: once to record, then replay
with no network; xdist workers recording into one folder; the precedence of settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mockserver import cassettes
from tests import upstream
from tests.upstream import SECRET_KEY, Upstream, running

TEST_FILE = """
import openai, pytest

def ask(question):
    client = openai.OpenAI(api_key="{key}", max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": question}}]
    )
    return reply.choices[0].message.content
"""

ANSWER = (
    b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"live answer"},"finish_reason":"stop"}]}'
)


@pytest.fixture
def provider() -> Iterator[Upstream]:
    scripts = {"/v1/chat/completions": upstream.Script([ANSWER], "application/json")}
    with running(Upstream(scripts)) as live:
        yield live


def test_record_once_then_replay_without_network(
    pytester: pytest.Pytester, provider: Upstream
) -> None:
    pytester.makepyfile(
        TEST_FILE.format(key=SECRET_KEY)
        + """
def test_it(tapedeck):
    assert ask("hello") == "live answer"
"""
    )
    upstream_option = f"--tapedeck-upstream=openai={provider.url}/v1"
    pytester.runpytest("--tapedeck-record-mode", "once", upstream_option).assert_outcomes(passed=1)
    cassette = (
        pytester.path
        / "cassettes"
        / "test_record_once_then_replay_without_network"
        / "test_it.yaml"
    )
    (saved,) = cassettes.load(cassette)
    assert SECRET_KEY not in cassette.read_text()
    assert saved.response.body == ANSWER
    assert len(provider.requests) == 1

    # The default mode is none: the second run replays, and the upstream is not asked.
    pytester.runpytest().assert_outcomes(passed=1)
    assert len(provider.requests) == 1


def test_xdist_workers_recording_into_one_cassette_lose_nothing(
    pytester: pytest.Pytester, provider: Upstream
) -> None:
    pytester.makepyfile(
        TEST_FILE.format(key=SECRET_KEY)
        + """
@pytest.mark.parametrize("n", range(8))
@pytest.mark.tapedeck("shared.yaml", record_mode="new_episodes", allow_unused=True)
def test_it(tapedeck, n):
    assert ask(f"question {n}") == "live answer"
"""
    )
    result = pytester.runpytest_subprocess(
        "-n", "4", f"--tapedeck-upstream=openai={provider.url}/v1"
    )
    result.assert_outcomes(passed=8)
    saved = cassettes.load(pytester.path / "cassettes" / "shared.yaml")
    questions = sorted(e.request.json["messages"][0]["content"] for e in saved)
    assert questions == sorted(f"question {n}" for n in range(8))


def test_command_line_beats_marker_beats_ini(pytester: pytest.Pytester, provider: Upstream) -> None:
    pytester.makeini("[pytest]\ntapedeck_record_mode = all\n")
    pytester.makepyfile(
        TEST_FILE.format(key=SECRET_KEY)
        + """
@pytest.mark.tapedeck(record_mode="none")
def test_marker_says_none(tapedeck):
    with pytest.raises(openai.BadRequestError):
        ask("hello")  # replay only: a miss, reported again at teardown

def test_ini_says_all(tapedeck):
    assert ask("hello") == "live answer"
"""
    )
    upstream_option = f"--tapedeck-upstream=openai={provider.url}/v1"
    result = pytester.runpytest(upstream_option)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_marker_says_none*"])
    assert len(provider.requests) == 1  # only the ini-driven test recorded
    # The command line wins over the marker: both record now.
    pytester.runpytest(
        upstream_option, "--tapedeck-record-mode=all", "-k", "says_none"
    ).assert_outcomes(failed=1)
    assert len(provider.requests) == 2


def test_a_bad_record_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass\n")
    result = pytester.runpytest("--tapedeck-record-mode", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: --tapedeck-record-mode / tapedeck_record_mode: unknown record mode 'sometimes'; "
        "valid: none, once, new_episodes, all, rewrite" in result.stderr.lines
    )


def test_recording_with_no_upstream_reachable_fails_the_test_clearly(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        TEST_FILE.format(key=SECRET_KEY)
        + """
def test_it(tapedeck):
    with pytest.raises(openai.APIStatusError) as raised:
        ask("hello")
    assert raised.value.status_code == 502
"""
    )
    result = pytester.runpytest(
        "--tapedeck-record-mode=once", "--tapedeck-upstream=openai=http://127.0.0.1:9/v1"
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["1 recording(s) failed:", "*upstream http://127.0.0.1:9/v1/chat/completions failed*"]
    )
