"""A test suite written the pytest-recording way, and the stand-in provider it was recorded
against: the evidence that Tapedeck is a drop-in for pytest-recording.

The cassettes in ``tests/data/pytest_recording/`` were recorded by pytest-recording 0.14.1
itself (vcrpy 9), from SUITE below, against ``EchoProvider`` on loopback (no third-party
content): ``python -m tests.pytest_recording_suite OUT`` does it again, with
pytest-recording importable (e.g. ``pip install --target /tmp/pr pytest-recording`` and
``PYTHONPATH=/tmp/pr``). Tests copy SUITE and those cassettes into a pytester folder and
run them under Tapedeck, unchanged.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from tests.upstream import Upstream, running

DATA = Path(__file__).parent / "data" / "pytest_recording"
API_KEY = "sk-not-a-secret-pytest-recording"

CONFTEST = """
import pytest

@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["authorization"]}
"""

SUITE = """
import openai
import pytest


def answer(question, **kwargs):
    with openai.OpenAI(max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}], **kwargs
        )
        if not kwargs.get("stream"):
            return reply.choices[0].message.content
        return "".join(c.choices[0].delta.content or "" for c in reply if c.choices)


@pytest.mark.vcr
def test_plain():
    assert answer("hello") == "you said: hello"


@pytest.mark.vcr
def test_stream():
    assert answer("count", stream=True) == "you said: count"


class TestGroup:
    @pytest.mark.vcr
    def test_in_class(self):
        assert answer("from a class") == "you said: from a class"


@pytest.mark.vcr
@pytest.mark.parametrize("question", ["what's 1/2?", 'say "hi" <b>|*:', "plain"])
def test_odd_ids(question):
    assert answer(question) == f"you said: {question}"


@pytest.mark.default_cassette("shared.yaml")
@pytest.mark.vcr
def test_records_the_shared_cassette():
    assert answer("shared question") == "you said: shared question"


@pytest.mark.vcr("shared.yaml")
def test_reads_an_extra_cassette():
    assert answer("shared question") == "you said: shared question"
"""

RECORDED = (
    "test_plain.yaml",
    "test_stream.yaml",
    "TestGroup.test_in_class.yaml",
    "test_odd_ids[what-s 1-2-].yaml",
    "test_odd_ids[say -hi- -b----].yaml",
    "test_odd_ids[plain].yaml",
    "shared.yaml",
)
"""What pytest-recording wrote, in ``cassettes/test_chats/`` (the last test only reads)."""


class EchoProvider(Upstream):
    """OpenAI chat completions that answer ``you said: <question>``: gzipped JSON (as the
    real API sends), or an SSE stream of three chunks."""

    def __init__(self) -> None:
        super().__init__(scripts={})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(dict(request.headers))
        text = "you said: " + body["messages"][-1]["content"]
        base = {"id": "chatcmpl-echo", "created": 1700000000, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = json.dumps({**base, "object": "chat.completion", "choices": [choice]})
            return web.Response(
                body=gzip.compress(answer.encode()),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [{"role": "assistant", "content": ""}, {"content": "you said: "}]
        pieces.append({"content": text.removeprefix("you said: ")})
        for delta in pieces:
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            event = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def lay_out(folder: Path) -> None:
    """SUITE and its conftest.py in ``folder``, as a pytest-recording user has them."""
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_chats.py").write_text(SUITE)


def record(folder: Path) -> None:
    """Record SUITE's cassettes with pytest-recording (Tapedeck's plugin off)."""
    lay_out(folder)
    with running(EchoProvider()) as provider:
        env = {**os.environ, "OPENAI_BASE_URL": provider.url + "/v1", "OPENAI_API_KEY": API_KEY}
        command = [sys.executable, "-m", "pytest", "-p", "no:tapedeck", "-p", "no:randomly"]
        subprocess.run([*command, "--record-mode=once", "-q"], cwd=folder, env=env, check=True)


if __name__ == "__main__":
    record(Path(sys.argv[1]))
