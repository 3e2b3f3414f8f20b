"""Every corpus interaction that a dialect serves replays byte-exact to a raw HTTP client,
one HTTP chunk per event for streams, with the recorded status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mockserver import cassettes
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_thread import BackgroundServer
from tests import rawhttp
from tests.conftest import corpus_files, corpus_root

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer() as running:
        yield running


def served_files() -> list[Path]:
    return [p for p in corpus_files() if Library(cassettes.load(p)).entries]


@pytest.mark.parametrize("path", served_files(), ids=lambda p: str(p.relative_to(corpus_root())))
def test_corpus_file_replays_byte_exact(server: BackgroundServer, path: Path) -> None:
    library = Library(cassettes.load(path))
    server.state.use(Player(library))
    for entry in library.entries:
        recorded = entry.exchange
        target = recorded.request.path.split("#")[0]
        query = "&".join(f"{k}={v}" for k, v in recorded.request.query)
        reply = rawhttp.request(
            server.url,
            target + (f"?{query}" if query else ""),
            recorded.request.body,
            method=recorded.request.method,
        )
        assert reply.status == recorded.response.status, entry.source
        assert reply.body == recorded.response.body, entry.source
        if entry.streaming:
            assert reply.chunks == list(entry.frames), entry.source
    assert server.state.player.misses == []
    assert server.state.player.unplayed() == []


def test_every_openai_compatible_chat_stream_is_served() -> None:
    streams = [
        entry.source
        for path in corpus_files()
        for entry in Library(cassettes.load(path)).entries
        if entry.dialect.name == "openai_chat" and entry.streaming
    ]
    providers = {Path(source).parent.name for source in streams}
    # writer (/v1/chat) and cohere (/v2/chat) are not OpenAI chat-completions routes
    assert providers >= {
        "openai",
        "azure",
        "groq",
        "mistral",
        "deepseek",
        "openrouter",
        "vllm",
        "litellm-proxy",
        "huggingface",
        "snowflake",
    }
