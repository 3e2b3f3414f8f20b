"""The pytest plugin, driven the way a user drives it: pytester runs that load it through
its entry point, with outcomes and the exact wording of the failures asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mockserver import cassettes
from mockserver.dialects import DIALECTS
from mockserver.model import Exchange, Request, Script

CHAT = DIALECTS["openai_chat"]


def write_cassette(path: Path, *questions: str, stream: bool = False) -> None:
    exchanges = []
    for number, question in enumerate(questions):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
        if stream:
            body["stream"] = True
        request = Request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body).encode(),
            json=body,
            origin="https://api.openai.com",
        )
        response = CHAT.synthesize(request, Script(text=f"answer {number}", seed=number))
        exchanges.append(Exchange(request, response))
    path.parent.mkdir(parents=True, exist_ok=True)
    cassettes.dump(exchanges, path)


ASK = """
import openai

def ask(question, **kwargs):
    client = openai.OpenAI(max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], **kwargs
    )
    return reply
"""


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_plugin.plugin\n"
        "heavy = [m for m in ('aiohttp', 'yaml', 'hypothesis', 'mockserver') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_marked_test_replays_its_cassette_through_the_sdk(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello", "again")
    pytester.makepyfile(
        ASK
        + """
import os, pytest

@pytest.mark.tapedeck("chat.yaml")
def test_chat(tapedeck):
    assert os.environ["OPENAI_BASE_URL"] == tapedeck.url + "/v1"
    assert ask("hello").choices[0].message.content == "answer 0"
    assert ask("again").choices[0].message.content == "answer 1"
    assert [r.json["messages"][0]["content"] for r in tapedeck.requests] == ["hello", "again"]

def test_environment_is_restored():
    assert "OPENAI_BASE_URL" not in os.environ
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_a_miss_fails_the_test_with_the_nearest_recording(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello")
    pytester.makepyfile(
        ASK
        + """
import openai, pytest

@pytest.mark.tapedeck("chat.yaml")
def test_chat(tapedeck):
    with pytest.raises(openai.BadRequestError) as raised:
        ask("goodbye")
    assert "chat.yaml#0 differs in" in str(raised.value)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*tapedeck (*chat.yaml):",
            "1 request(s) matched no recording:",
            "--- request 1 ---",
            "Tapedeck has no recording for POST /v1/chat/completions (model 'gpt-4o-mini')*",
            "Nearest recorded requests:",
            "  *chat.yaml#0 differs in:",
            # fnmatch reads [...] as a character class: ? stands for each bracket
            '    messages: recorded ?{"content":"hello","role":"user"}?, '
            'got ?{"content":"goodbye"*',
            "Way out: record this request (record mode new_episodes), or change it to match a "
            "recording.",
        ],
        consecutive=True,
    )


def test_unused_recordings_fail_unless_allowed(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello", "never asked")
    pytester.makepyfile(
        ASK
        + """
import pytest

@pytest.mark.tapedeck("chat.yaml")
def test_strict(tapedeck):
    ask("hello")

@pytest.mark.tapedeck("chat.yaml", allow_unused=True)
def test_relaxed(tapedeck):
    ask("hello")
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "1 recorded interaction(s) were never requested:",
            "  *chat.yaml#1  POST /v1/chat/completions (model 'gpt-4o-mini')",
            "Way out: make the test send them, remove them from the cassette, or mark the "
            "test @pytest.mark.tapedeck(allow_unused=True).",
        ],
        consecutive=True,
    )


def test_repeats_need_allow_repeats(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello")
    pytester.makepyfile(
        ASK
        + """
import pytest

@pytest.mark.tapedeck("chat.yaml", allow_repeats=True)
def test_twice(tapedeck):
    assert ask("hello").id == ask("hello").id
    assert len(tapedeck.requests) == 2
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_default_cassette_follows_module_and_test_name(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "test_default_name" / "test_it.yaml", "hello")
    pytester.makepyfile(
        test_default_name=ASK
        + """
def test_it(tapedeck):
    assert ask("hello").choices[0].message.content == "answer 0"
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_cassette_dir_option_and_ini(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "recorded" / "chat.yaml", "hello")
    pytester.makeini("[pytest]\ntapedeck_cassette_dir = recorded\n")
    pytester.makepyfile(
        ASK
        + """
import pytest

@pytest.mark.tapedeck("chat.yaml")
def test_it(tapedeck):
    ask("hello")
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)
    (pytester.path / "elsewhere").mkdir()
    write_cassette(pytester.path / "elsewhere" / "chat.yaml", "hello")
    (pytester.path / "recorded" / "chat.yaml").unlink()
    pytester.runpytest("--tapedeck-cassette-dir", "elsewhere").assert_outcomes(passed=1)


def test_a_cassette_name_never_escapes_the_folder(pytester: pytest.Pytester) -> None:
    (pytester.path / "cassettes").mkdir()
    pytester.makepyfile(
        """
import pytest

@pytest.mark.tapedeck("../../etc/passwd")
def test_it(tapedeck):
    pass
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*cassette name '../../etc/passwd' points outside the cassette folder*"]
    )


def test_a_missing_named_cassette_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.tapedeck("nope.yaml")
def test_it(tapedeck):
    pass
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*tapedeck: cassette not found: *nope.yaml"])


def test_unknown_marker_arguments_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.tapedeck(allow_unsued=True)
def test_it(tapedeck):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: test_unknown_marker_arguments_are_a_usage_error.py::test_it: unknown tapedeck "
        "marker argument(s) ['allow_unsued']; valid: cassette, allow_unused, allow_repeats, "
        "synthesize, record_mode, faults" in result.stderr.lines
    )


def test_scripted_answers_through_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ASK
        + """
from mockserver import ToolCall

def test_it(tapedeck):
    tapedeck.script("scripted words")
    tapedeck.script(tool_calls=(ToolCall("lookup", '{"q": 1}'),))
    assert ask("a").choices[0].message.content == "scripted words"
    call = ask("b").choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("lookup", '{"q": 1}')
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_one_server_per_xdist_worker(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.yaml", "hello")
    pytester.makepyfile(
        ASK
        + """
import pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.tapedeck("chat.yaml")
def test_it(tapedeck, n):
    assert ask("hello").choices[0].message.content == "answer 0"
"""
    )
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)
