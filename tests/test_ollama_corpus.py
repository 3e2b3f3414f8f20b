"""The ollama validator, identity and synthesizer against every native Ollama recording in
the corpus (ollama/native-*; ollama/openai-compat-nonstream is openai_chat's).

The recordings are real Ollama output, so the validator must find nothing in them. A
non-streamed body is "one object shaped like the final chunk": it is judged as a stream
of that one line. The table below was written from reading each file."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects import resolve
from mockserver.dialects.ollama.dialect import check, error, identity, is_stream, synthesize
from mockserver.framing.ndjson import NDJSON
from mockserver.index import Library
from mockserver.model import Event, Exchange, Request, Script
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()

# file -> (streamed?, status, rule ids the validator reports: none, for real recordings)
VERDICTS: dict[str, tuple[bool, int, set[str]]] = {
    # 50 chat lines from llama3 (Ollama of May 2024): role on every line, done_reason
    # written before done, prompt and eval counts on the last line; a trailing newline.
    "ollama/native-chat-stream-ndjson.yaml": (True, 200, set()),
    # 72 generate lines; the last carries the context token array before the metrics.
    "ollama/native-generate-stream-ndjson.yaml": (True, 200, set()),
    # stream: false bodies, each one done: true object with the full text.
    "ollama/native-chat-nonstream.yaml": (False, 200, set()),
    "ollama/native-generate-nonstream.yaml": (False, 200, set()),
    # a tool-result turn (the request carries the tool call, arguments as an object);
    # the answer itself is plain text.
    "ollama/native-chat-tool-calls.yaml": (False, 200, set()),
    # qwen3.6 (2026): message.thinking beside content, done before done_reason, no headers.
    "ollama/native-chat-nonstream-no-headers.yaml": (False, 200, set()),
    # 404 {"error": "model '...' not found"}, no headers: an error, not judged as a stream.
    "ollama/native-chat-error-404.yaml": (False, 404, set()),
}


@cache
def exchange(name: str) -> Exchange:
    (only,) = load(ROOT / name)
    return only


def test_the_table_covers_every_native_ollama_recording() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ollama").glob("native-*.yaml")}
    assert found == set(VERDICTS)
    for path in (ROOT / "ollama").glob("*.yaml"):
        match = resolve("POST", exchange(path.relative_to(ROOT).as_posix()).request.path)
        assert match is not None
        native = path.name.startswith("native-")
        assert (match.dialect.name == "ollama") == native, path.name


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_verdict_on_a_recording(name: str) -> None:
    streamed, status, expected = VERDICTS[name]
    recorded = exchange(name)
    assert is_stream(recorded.request) == streamed
    assert recorded.response.status == status
    if status >= 400:
        return
    body = recorded.response.body
    events = NDJSON.events(body) if streamed else (Event(data=body.decode()),)
    violations = check(recorded.request, events)
    assert {v.rule for v in violations} == expected, [str(v) for v in violations]
    assert check(None, events) == violations
    if streamed:
        assert len(events) > 2 and body.endswith(b"}\n")


def test_recorded_streams_are_served_line_by_line() -> None:
    library = Library(load(ROOT / "ollama/native-chat-stream-ndjson.yaml"))
    (entry,) = library.entries
    assert entry.dialect.name == "ollama" and entry.streaming
    assert len(entry.frames) == 50 and all(f.endswith(b"}\n") for f in entry.frames)


def test_error_reproduces_the_recorded_404_byte_for_byte() -> None:
    recorded = exchange("ollama/native-chat-error-404.yaml")
    message = json.loads(recorded.response.body)["error"]
    assert message == "model 'nonexistent-model:latest' not found"
    ours = error(404, message, "")
    assert (ours.status, ours.reason, ours.body) == (404, "Not Found", recorded.response.body)
    scripted = synthesize(recorded.request, Script(status=404, error_message=message))
    assert scripted.body == recorded.response.body


def test_identity_matches_what_todays_client_sends_for_yesterdays_recordings() -> None:
    # ollama-python 0.2 spelled out format "", options {}, keep_alive null (and for generate
    # system, template, context, raw, images); 0.6 sends only what is set, plus tools: [].
    chat = exchange("ollama/native-chat-stream-ndjson.yaml").request
    today = {
        "model": "llama3",
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}],
        "tools": [],
    }
    assert identity(chat) == identity(Request("POST", "/api/chat", json=today))
    generate = exchange("ollama/native-generate-nonstream.yaml").request
    asked = {"model": "llama3", "stream": False, "prompt": "Tell me a joke about OpenTelemetry"}
    assert identity(generate) == identity(Request("POST", "/api/generate", json=asked))
    tool_turn = exchange("ollama/native-chat-tool-calls.yaml").request
    messages = tool_turn.json["messages"]
    assert messages[0]["content"] == ""  # 0.3 sent it; 0.6 drops empty fields
    dropped = [{k: v for k, v in m.items() if v} for m in messages]
    body = {"model": "llama3.1", "stream": False, "messages": dropped, "tools": []}
    assert identity(tool_turn) == identity(Request("POST", "/api/chat", json=body))


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type."""
    if isinstance(value, dict):
        return [(key, skeleton(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [skeleton(item) for item in value[:1]]
    return type(value).__name__


def test_synthesized_generate_lines_have_the_shape_of_the_recorded_ones() -> None:
    recorded = exchange("ollama/native-generate-stream-ndjson.yaml")
    ours = synthesize(recorded.request, Script(text="A joke about OpenTelemetry."))
    real_lines = [json.loads(e.data) for e in NDJSON.events(recorded.response.body)]
    our_lines = [json.loads(e.data) for e in NDJSON.events(ours.body)]
    assert skeleton(our_lines[0]) == skeleton(real_lines[0])
    assert skeleton(our_lines[-1]) == skeleton(real_lines[-1])
    whole = exchange("ollama/native-generate-nonstream.yaml")
    ours_whole = synthesize(whole.request, Script(text="A niche topic!"))
    assert skeleton(json.loads(ours_whole.body)) == skeleton(json.loads(whole.response.body))


def test_synthesized_chat_has_the_shape_of_the_newest_recording() -> None:
    # The 2026 recording writes done before done_reason (the 2024 ones the other way round),
    # and thinking after content: the synthesizer follows the newest Ollama.
    recorded = exchange("ollama/native-chat-nonstream-no-headers.yaml")
    ours = synthesize(recorded.request, Script(text="<think>Rayleigh.</think>Scattering."))
    assert skeleton(json.loads(ours.body)) == skeleton(json.loads(recorded.response.body))
    stream = exchange("ollama/native-chat-stream-ndjson.yaml")
    lines = [json.loads(e.data) for e in NDJSON.events(synthesize(stream.request, Script()).body)]
    real = [json.loads(e.data) for e in NDJSON.events(stream.response.body)]
    assert skeleton(lines[0]) == skeleton(real[0])
    assert sorted(skeleton(lines[-1])) == sorted(skeleton(real[-1]))
    assert [line["message"]["role"] for line in lines] == ["assistant"] * len(lines)
