"""Synthesis limits: a request (or a script) that would make a synthesized answer outgrow a
named limit gets a 400 in its provider's shape naming the limit and the way to raise it,
and nothing is built; at the limit, the answer is built as asked. Every dialect, on a real
loopback server; the limits changed through make_app, the CLI and the pytest plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from mockserver.app import STATE, ServerState, make_app
from mockserver.cli import main
from mockserver.dialects import DIALECTS, LIMITS, SynthesisLimits
from mockserver.index import Library
from mockserver.model import Script, ToolCall
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from tests import rawhttp

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]
CONVERSE = "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
GEMINI = "/v1beta/models/gemini-2.0-flash"
TEXT = {"parts": [{"text": "a"}]}
WAY_OUT = "; raise it with --limit {}=... (pytest: --tapedeck-limit {}=...)"


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    state = ServerState(Player(Library(()), synthesize=True))
    with BackgroundServer(state) as running:
        yield running


def message(body: Any) -> str:
    """The error's text, wherever its provider puts it."""
    error = body.get("error", body)
    return str(error["message"] if isinstance(error, dict) else error)


# (case, path, body, script, the sentence the client must read, the limit to raise)
OVER: list[tuple[str, str, dict[str, Any], Script | None, str, str]] = [
    ("chat n", CHAT, {"model": "m", "messages": MESSAGES, "n": 129}, None,
     "n=129 exceeds Tapedeck's synthesis limit of 128 choices", "n"),
    ("chat Script.n", CHAT, {"model": "m", "messages": MESSAGES}, Script(n=129),
     "Script.n=129 exceeds Tapedeck's synthesis limit of 128 choices", "n"),
    ("chat events", CHAT, {"model": "m", "messages": MESSAGES, "n": 100, "stream": True},
     Script(text="x" * 501, chunk_size=1),
     "script pieces x choices=50100 exceeds Tapedeck's synthesis limit of 50000 events",
     "events"),
    ("completions prompts x n", "/v1/completions", {"model": "m", "prompt": ["a"] * 11, "n": 100},
     None, "prompts x n=1100 exceeds Tapedeck's synthesis limit of 1024 choices", "choices"),
    ("completions echo", "/v1/completions",
     {"model": "m", "prompt": "x" * 1_048_577, "n": 8, "echo": True}, None,
     "echoed prompt characters x n=8388616 exceeds Tapedeck's synthesis limit of 8388608 "
     "characters", "text"),
    ("embeddings dimensions", "/v1/embeddings",
     {"model": "text-embedding-3-small", "input": "a", "dimensions": 8193}, None,
     "dimensions=8193 exceeds Tapedeck's synthesis limit of 8192 dimensions", "dimensions"),
    ("embeddings inputs", "/v1/embeddings",
     {"model": "text-embedding-3-small", "input": ["a"] * 2049}, None,
     "len(input)=2049 exceeds Tapedeck's synthesis limit of 2048 inputs", "inputs"),
    ("embeddings values", "/v1/embeddings",
     {"model": "text-embedding-3-small", "input": ["a"] * 342}, None,  # 342 x 1536
     "len(input) x dimensions=525312 exceeds Tapedeck's synthesis limit of 524288 numbers",
     "values"),
    ("responses events", "/v1/responses", {"model": "m", "input": "hi"},
     Script(text="x" * 50_001, chunk_size=1),
     "script pieces x choices=50001 exceeds Tapedeck's synthesis limit of 50000 events",
     "events"),
    ("anthropic text", "/v1/messages", {"model": "m", "max_tokens": 9, "messages": MESSAGES},
     Script(text="x" * 8_388_609, chunk_size=1_000_000),
     "script characters x choices=8388609 exceeds Tapedeck's synthesis limit of 8388608 "
     "characters", "text"),
    ("bedrock events", CONVERSE, {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
     Script(tool_calls=(ToolCall("f", json.dumps("x" * 50_000)),), chunk_size=1),
     "script pieces x choices=50003 exceeds Tapedeck's synthesis limit of 50000 events",
     "events"),
    ("cohere events", "/v2/chat", {"model": "m", "messages": MESSAGES},
     Script(text="x" * 200_004, chunk_size=4),
     "script pieces x choices=50001 exceeds Tapedeck's synthesis limit of 50000 events",
     "events"),
    ("gemini candidateCount", f"{GEMINI}:generateContent",
     {"contents": [TEXT], "generationConfig": {"candidateCount": 129}}, None,
     "generationConfig.candidateCount=129 exceeds Tapedeck's synthesis limit of 128 choices",
     "n"),
    ("gemini candidate_count", f"{GEMINI}:streamGenerateContent",
     {"contents": [TEXT], "generation_config": {"candidate_count": 129}}, None,
     "generationConfig.candidateCount=129 exceeds Tapedeck's synthesis limit of 128 choices",
     "n"),
    ("gemini batch inputs", f"{GEMINI}:batchEmbedContents",
     {"requests": [{"content": TEXT}] * 2049}, None,
     "len(requests)=2049 exceeds Tapedeck's synthesis limit of 2048 inputs", "inputs"),
    ("gemini dimensions", f"{GEMINI}:embedContent",
     {"content": TEXT, "outputDimensionality": 8193}, None,
     "outputDimensionality=8193 exceeds Tapedeck's synthesis limit of 8192 dimensions",
     "dimensions"),
    ("gemini values", f"{GEMINI}:batchEmbedContents",
     {"requests": [{"content": TEXT}] * 683}, None,  # 683 x 768
     "the vectors' lengths=524544 exceeds Tapedeck's synthesis limit of 524288 numbers",
     "values"),
    ("ollama inputs", "/api/embed", {"model": "m", "input": ["a"] * 2049}, None,
     "len(input)=2049 exceeds Tapedeck's synthesis limit of 2048 inputs", "inputs"),
    ("ollama dimensions", "/api/embed", {"model": "m", "input": "a", "dimensions": 8193}, None,
     "dimensions=8193 exceeds Tapedeck's synthesis limit of 8192 dimensions", "dimensions"),
    ("ollama legacy dimensions", "/api/embeddings",
     {"model": "m", "prompt": "a", "dimensions": 8193}, None,
     "dimensions=8193 exceeds Tapedeck's synthesis limit of 8192 dimensions", "dimensions"),
    ("ollama values", "/api/embed", {"model": "m", "input": ["a"] * 683}, None,  # x 768
     "len(input) x dimensions=524544 exceeds Tapedeck's synthesis limit of 524288 numbers",
     "values"),
    ("ollama context", "/api/generate", {"model": "m", "prompt": "hi", "stream": False},
     Script(prompt_tokens=1_048_577),
     "context (prompt tokens + generated)=1048577 exceeds Tapedeck's synthesis limit of "
     "1048576 tokens", "tokens"),
    ("ollama chat events", "/api/chat", {"model": "m", "messages": MESSAGES},
     Script(text="x" * 50_001, chunk_size=1),
     "script pieces x choices=50001 exceeds Tapedeck's synthesis limit of 50000 events",
     "events"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "script", "sentence", "limit"),
    [case[1:] for case in OVER],
    ids=[case[0] for case in OVER],
)
def test_an_answer_over_a_limit_is_a_400_naming_it(
    server: BackgroundServer,
    path: str,
    body: dict[str, Any],
    script: Script | None,
    sentence: str,
    limit: str,
) -> None:
    if script is not None:
        server.state.scripts.append(script)
    answer = rawhttp.request(server.url, path, body)
    assert answer.status == 400, answer.body[:300]
    assert answer.header("x-should-retry") == "false"
    said = message(answer.json())
    assert said.startswith(sentence + WAY_OUT.format(limit, limit)), said
    assert not server.state.scripts  # the script was used up: the next miss gets the next


def test_every_dialect_names_only_known_limits_and_bounds_its_script() -> None:
    known = {limit.name for limit in LIMITS}
    for dialect in DIALECTS.values():
        named = {size.limit for size in dialect.limits}
        assert named <= known, dialect.name
        if dialect.name != "openai_embeddings":  # the only one that ignores the script
            assert {"events", "text"} <= named, dialect.name


AT_THE_LIMIT: list[tuple[str, dict[str, Any], str]] = [
    (CHAT, {"model": "m", "messages": MESSAGES, "n": 128}, "chat"),
    ("/v1/embeddings", {"model": "m", "input": "a", "dimensions": 8192}, "openai vector"),
    (f"{GEMINI}:generateContent",
     {"contents": [TEXT], "generationConfig": {"candidateCount": 128}}, "gemini"),
    ("/api/embed", {"model": "m", "input": "a", "dimensions": 8192}, "ollama vector"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "kind"), AT_THE_LIMIT, ids=[c[2] for c in AT_THE_LIMIT])
def test_an_answer_at_the_limit_is_built_as_asked(
    server: BackgroundServer, path: str, body: dict[str, Any], kind: str
) -> None:
    answer = rawhttp.request(server.url, path, body)
    assert answer.status == 200
    whole = answer.json()
    sizes = {
        "chat": lambda: len(whole["choices"]),
        "openai vector": lambda: len(whole["data"][0]["embedding"]),
        "gemini": lambda: len(whole["candidates"]),
        "ollama vector": lambda: len(whole["embeddings"][0]),
    }
    assert sizes[kind]() == {"chat": 128, "gemini": 128}.get(kind, 8192)


def numbers(whole: Any) -> int:
    """The numbers of every vector in an embeddings answer, in any provider's shape."""
    vectors = [item["embedding"] for item in whole.get("data", ())]
    vectors += [item["values"] for item in whole.get("embeddings", ()) if isinstance(item, dict)]
    vectors += [item for item in whole.get("embeddings", ()) if isinstance(item, list)]
    return sum(map(len, vectors))


# (path, body, limit, what the answer holds, how to count it); sizes from the providers'
# documentation: text-embedding-3-large is 3072 long, Gemini's default 768.
MEASURED: list[tuple[str, dict[str, Any], str, int, Any]] = [
    ("/v1/embeddings", {"model": "text-embedding-3-large", "input": ["a", "b"]}, "values",
     6144, numbers),
    (f"{GEMINI}:batchEmbedContents",
     {"requests": [{"content": TEXT, "outputDimensionality": 4}, {"content": TEXT}]}, "values",
     772, numbers),
    ("/api/embed", {"model": "m", "input": ["a", "b", "c"], "dimensions": 5}, "values", 15,
     numbers),
    ("/v1/completions", {"model": "m", "prompt": ["a", "b", "c"], "n": 2}, "choices", 6,
     lambda whole: len(whole["choices"])),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "limit", "holds", "count"), MEASURED)
def test_a_limit_counts_what_the_synthesizer_builds(
    server: BackgroundServer, path: str, body: dict[str, Any], limit: str, holds: int, count: Any
) -> None:
    server.state.synthesis_limits = SynthesisLimits({limit: holds})
    answer = rawhttp.request(server.url, path, body)
    assert answer.status == 200 and count(answer.json()) == holds
    server.state.synthesis_limits = SynthesisLimits({limit: holds - 1})
    assert rawhttp.request(server.url, path, body).status == 400


def test_limits_changed_through_the_state_apply(server: BackgroundServer) -> None:
    server.state.synthesis_limits = SynthesisLimits({"n": 2})
    over = rawhttp.request(server.url, CHAT, {"model": "m", "messages": MESSAGES, "n": 3})
    assert message(over.json()).startswith(
        "n=3 exceeds Tapedeck's synthesis limit of 2 choices; raise it with --limit n=..."
    )
    at = rawhttp.request(server.url, CHAT, {"model": "m", "messages": MESSAGES, "n": 2})
    assert at.status == 200 and len(at.json()["choices"]) == 2


def test_make_app_takes_limits_and_refuses_unknown_ones() -> None:
    app = make_app(Library(()), synthesize=True, synthesis_limits={"n": 2, "events": 10})
    assert (app[STATE].synthesis_limits["n"], app[STATE].synthesis_limits["events"]) == (2, 10)
    assert app[STATE].synthesis_limits["dimensions"] == 8192  # the others keep their defaults
    with pytest.raises(ValueError, match="unknown synthesis limit 'choice'; known: n, choices"):
        make_app(Library(()), synthesis_limits={"choice": 2})
    with pytest.raises(ValueError, match="must be a whole number >= 1, got 0"):
        SynthesisLimits({"n": 0})


def test_limits_parse_name_equals_number() -> None:
    assert SynthesisLimits.parse(["n=256", "values=2_000_000"])["values"] == 2_000_000
    with pytest.raises(ValueError, match="NAME=NUMBER"):
        SynthesisLimits.parse(["n:256"])
    with pytest.raises(ValueError, match="NAME=NUMBER"):
        SynthesisLimits.parse(["n=lots"])


def test_the_openai_sdk_reads_the_limit_and_does_not_retry(server: BackgroundServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k")
    with pytest.raises(openai.BadRequestError, match="limit of 128 choices; raise it with"):
        client.chat.completions.create(model="m", messages=MESSAGES, n=1_000_000_000)
    assert len(server.state.player.requests) == 1  # x-should-retry: false honoured


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--limit", "bogus=1"], "unknown synthesis limit 'bogus'; known: n, choices"),
        (["--limit", "n"], "a synthesis limit is NAME=NUMBER (n=256), got 'n'"),
        (["--request-log", "-1"], "--request-log is a number of requests >= 0, got -1"),
    ],
)
def test_serve_refuses_a_bad_limit_or_log(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == 2
    assert says in capsys.readouterr().err


def test_the_plugin_takes_limits_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import openai, pytest

@pytest.mark.tapedeck(synthesize=True, allow_unused=True)
def test_chat(tapedeck):
    client = openai.OpenAI(base_url=tapedeck.base_url(), api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="n=3 exceeds .* limit of 2 choices"):
        client.chat.completions.create(model="m", messages=[], n=3)
    assert len(client.chat.completions.create(model="m", messages=[], n=2).choices) == 2
"""
    )
    pytester.runpytest("--tapedeck-limit", "n=2").assert_outcomes(passed=1)
    bad = pytester.runpytest("--tapedeck-limit", "m=2")
    assert "unknown synthesis limit 'm'" in bad.stderr.str()
