"""The plugin and cassettes that cannot be written: a marker name that cannot be a file
makes the test error at setup, naming the marker and the reason; a cassette that stops
being writable during a test fails that test with the reason, and the client got an
answer in its provider's shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import upstream
from tests.upstream import SECRET_KEY, Upstream, running

ANSWER = (
    b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"live answer"},"finish_reason":"stop"}]}'
)

ASK = f"""
import openai, pytest

def ask(question):
    with openai.OpenAI(api_key="{SECRET_KEY}", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": question}}]
        )
    return reply.choices[0].message.content
"""


@pytest.fixture
def provider() -> Iterator[Upstream]:
    scripts = {"/v1/chat/completions": upstream.Script([ANSWER], "application/json")}
    with running(Upstream(scripts)) as live:
        yield live


def test_marker_names_that_cannot_be_files_error_at_setup(
    pytester: pytest.Pytester, provider: Upstream
) -> None:
    (pytester.path / "cassettes" / "a-folder.yaml").mkdir(parents=True)
    pytester.makepyfile(
        ASK
        + """
@pytest.mark.tapedeck("")
def test_empty(tapedeck):
    ask("never sent")

@pytest.mark.tapedeck(".")
def test_dot(tapedeck):
    ask("never sent")

@pytest.mark.tapedeck("x" * 300 + ".yaml")
def test_too_long(tapedeck):
    ask("never sent")

@pytest.mark.tapedeck("a\\0b.yaml")
def test_nul(tapedeck):
    ask("never sent")

@pytest.mark.tapedeck("a-folder.yaml", record_mode="all")
def test_folder(tapedeck):
    ask("never sent")
"""
    )
    result = pytester.runpytest(f"--tapedeck-upstream=openai={provider.url}/v1")
    result.assert_outcomes(errors=5)
    marker = "tapedeck: the cassette named by @pytest.mark.tapedeck: cassette"
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_empty*",
            f"*{marker} '' cannot be written: it names a folder, not a file*",
            f"*{marker} '.' cannot be written: it names a folder, not a file*",
            f"*{marker} 'xxxxx*' (305 chars) cannot be written: the name *is 305 bytes long*",
            f"*{marker} 'a\\x00b.yaml' cannot be written: it contains a NUL character*",
            f"*{marker} 'a-folder.yaml' cannot be written: it is a folder*",
        ],
        consecutive=False,
    )
    assert provider.requests == []


def test_a_default_name_too_long_for_a_file_says_how_to_name_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        ASK
        + """
@pytest.mark.parametrize("prompt", ["q" * 300], ids=["q" * 300])
def test_it(tapedeck, prompt):
    ask(prompt)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*tapedeck: the default cassette, named after the test (name one with "
            "@pytest.mark.tapedeck('name.yaml')): cassette * cannot be written: the name*"
        ]
    )


def test_a_cassette_that_cannot_be_written_fails_the_test_with_the_reason(
    pytester: pytest.Pytester, provider: Upstream
) -> None:
    pytester.makepyfile(
        ASK
        + """
@pytest.mark.tapedeck("late.yaml", record_mode="all")
def test_it(tapedeck):
    tapedeck.cassettes[0].mkdir(parents=True)  # the cassette becomes a folder after setup
    with pytest.raises(openai.InternalServerError) as raised:
        ask("hello")
    assert "cannot be written: it is a folder" in raised.value.message
"""
    )
    result = pytester.runpytest(f"--tapedeck-upstream=openai={provider.url}/v1")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_it*",
            "1 recording(s) failed:",
            "*POST /v1/chat/completions (model 'gpt-4o-mini'): cassette 'late.yaml' cannot "
            "be written: it is a folder*(nothing forwarded, nothing saved)",
        ]
    )
    assert provider.requests == []
