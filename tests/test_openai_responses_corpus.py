"""The openai_responses validator, error shape and synthesizer against every real
Responses API recording in the corpus (OpenAI, OpenRouter, Bedrock Mantle).

Every stream here is a real provider recording, so every verdict is "no violation": where
a first draft of a rule fired on one (OpenRouter closing its reasoning item after the
message that followed it, data-only events and a trailing [DONE]; Bedrock Mantle's
`event:` line after `data:`; OpenRouter renaming its reasoning item in the final output),
the rule was changed. The table says, per interaction, what each recording is and why it
passes."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects import resolve
from mockserver.dialects.openai.responses import DIALECT, check, error, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.model import Exchange, Request, Script, ToolCall, header
from mockserver.validation import lint_exchange
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()

# (file, interaction) -> (what it is, the rule ids check() reports). Read from the files.
VERDICTS: dict[tuple[str, int], tuple[str, set[str]]] = {
    # OpenAI, gpt-4.1 (Oct 2025): the reference order, obfuscation on deltas, keys in
    # arrival order; sequence_number 0..15.
    ("openai-responses/stream-reasoning-obfuscation.yaml", 0): ("stream", set()),
    # OpenAI, gpt-5 with moderation: a reasoning item with no parts (encrypted content that
    # changes between added and done), then a message; the final response adds
    # moderation and tool_usage objects. Keys sorted after `type` (2026 style).
    ("openai-responses/stream-moderation.yaml", 0): ("stream", set()),
    # OpenAI, gpt-5.5: reasoning, a "commentary" message (phase key), a function call with
    # argument fragments; then the second turn's "final_answer" message.
    ("openai-responses/stream-phase-part-start.yaml", 0): ("stream", set()),
    ("openai-responses/stream-phase-part-start.yaml", 1): ("stream", set()),
    # OpenRouter (gpt-oss-20b): data-only events, a `: OPENROUTER PROCESSING` comment,
    # reasoning_text in a content part of the reasoning item, which is closed after the
    # message item that follows it, a final output whose reasoning id differs from the
    # streamed one, cost fields in usage, and `data: [DONE]` last. All legal.
    ("openai-responses/stream-openrouter-no-event-lines.yaml", 0): ("stream", set()),
    # Bedrock Mantle: `event:` written after `data:` in each block, a function call with
    # one delta, encrypted reasoning items without parts, cache_write_tokens in usage.
    ("openai-responses/stream-bedrock-mantle.yaml", 0): ("stream", set()),
    ("openai-responses/stream-bedrock-mantle.yaml", 1): ("stream", set()),
    ("openai-responses/stream-bedrock-mantle.yaml", 2): ("stream", set()),
    # Non-stream bodies (pydantic-ai, hand-trimmed: status "complete"): not judged by check.
    ("openai-responses/nonstream-previous-response-id.yaml", 0): ("json", set()),
    ("openai-responses/nonstream-previous-response-id.yaml", 1): ("json", set()),
    # HTTP errors: OpenAI's envelope, 2-space indented for this endpoint.
    ("openai-responses/error-400-model-name.yaml", 0): ("error", set()),
    ("openai-responses/error-401-dd.yaml", 0): ("error", set()),
    ("openai-responses/error-401-invalid-key.yaml", 0): ("error", set()),
    # Filed under openai/, but a Responses call: unknown model -> 400, not 404.
    ("openai/error-400-unknown-model-inferred.yaml", 0): ("error", set()),
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def kind_of(exchange: Exchange) -> str:
    if exchange.response.status >= 400:
        return "error"
    return "stream" if DIALECT.is_stream(exchange.request) else "json"


def test_the_table_covers_every_responses_interaction_in_the_corpus() -> None:
    found = set()
    for path in sorted(ROOT.rglob("*.yaml")):
        name = path.relative_to(ROOT).as_posix()
        for index, exchange in enumerate(exchanges(name)):
            match = resolve(exchange.request.method, exchange.request.path)
            if match is not None and match.dialect is DIALECT:
                found.add((name, index))
    assert found == set(VERDICTS)


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recording(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    kind, expected = VERDICTS[(name, index)]
    assert kind_of(exchange) == kind
    assert lint_exchange(exchange) == []  # content type and stream rules, as `tapedeck lint`
    if kind == "stream":
        violations = check(exchange.request, SSE.events(exchange.response.body))
        assert {v.rule for v in violations} == expected, [str(v) for v in violations]
        assert check(None, SSE.events(exchange.response.body)) == []


def test_the_recordings_really_hold_the_variants_the_table_names() -> None:
    (openrouter,) = exchanges("openai-responses/stream-openrouter-no-event-lines.yaml")
    events = SSE.events(openrouter.response.body)
    assert all(e.event is None for e in events) and events[-1].data == "[DONE]"
    types = [json.loads(e.data)["type"] for e in events if e.data and e.data != "[DONE]"]
    done = [k for k, t in enumerate(types) if t == "response.output_item.done"]
    added = [k for k, t in enumerate(types) if t == "response.output_item.added"]
    assert added[1] < done[0]  # the message opened while the reasoning item was open
    mantle = exchanges("openai-responses/stream-bedrock-mantle.yaml")[0]
    assert SSE.frames(mantle.response.body)[0].startswith(b"data: ")
    assert b"\nevent: response.created\n\n" in SSE.frames(mantle.response.body)[0]


# --- error() against recorded error bodies ----------------------------------------------


@pytest.mark.parametrize(
    "name", ["openai-responses/error-401-dd.yaml", "openai-responses/error-401-invalid-key.yaml"]
)
def test_error_reproduces_the_responses_error_body_byte_for_byte(name: str) -> None:
    (real,) = exchanges(name)
    recorded = json.loads(real.response.body)["error"]
    ours = error(real.response.status, recorded["message"], recorded["type"])
    assert recorded["code"] == "invalid_api_key"
    assert ours.body == real.response.body
    assert (ours.status, ours.reason) == (real.response.status, real.response.reason)
    assert header(ours.headers, "content-type") == header(real.response.headers, "content-type")


@pytest.mark.parametrize(
    "name",
    ["openai-responses/error-400-model-name.yaml", "openai/error-400-unknown-model-inferred.yaml"],
)
def test_error_matches_the_400_for_an_unknown_model_but_for_param(name: str) -> None:
    (real,) = exchanges(name)
    recorded = json.loads(real.response.body)["error"]
    ours = json.loads(error(400, recorded["message"], recorded["type"]).body)["error"]
    assert recorded["param"] == "model" and ours["param"] is None  # a miss names no param
    assert list(ours) == ["message", "type", "param", "code"]
    assert {**ours, "param": "model", "code": "model_not_found"} == recorded
    assert error(404, recorded["message"], recorded["type"]).status == 404


# --- the synthesizer against the recordings ----------------------------------------------


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type; `obfuscation` is random padding,
    `phase` is gpt-5.5's, the response object is compared on its own."""
    if isinstance(value, dict):
        return [
            (key, skeleton(item) if key != "response" else "response")
            for key, item in value.items()
            if key not in ("obfuscation", "phase", "encrypted_content")
        ]
    if isinstance(value, list):
        return [skeleton(item) for item in value]
    return type(value).__name__


def shapes(body: bytes) -> dict[str, str]:
    """The skeleton of the first event of each type (and item type)."""
    found: dict[str, str] = {}
    for event in SSE.events(body):
        if event.data and event.data != "[DONE]":
            data = json.loads(event.data)
            item = data.get("item", {}).get("type")
            found.setdefault(
                data["type"] + (f"/{item}" if item else ""), json.dumps(skeleton(data))
            )
    return found


def test_synthesized_events_have_the_shape_of_openais_2026_events() -> None:
    first, _ = exchanges("openai-responses/stream-phase-part-start.yaml")
    call = ToolCall("get_capital", '{"country":"PotatoLand"}')
    script = Script(text="I'll check the capital lookup tool.", tool_calls=(call,), chunk_size=3)
    ours = synthesize(first.request, script)
    real, made = shapes(first.response.body), shapes(ours.body)
    assert len(made) == 13 and set(made) <= set(real)  # real also has a reasoning item
    for kind, shape in made.items():
        assert shape == real[kind], kind
    assert check(first.request, SSE.events(ours.body)) == []


def unstreamed(request: Request) -> Request:
    return replace(request, json={**request.json, "stream": False})


def test_synthesized_response_objects_hold_openais_fields_in_openais_order() -> None:
    newest, _ = exchanges("openai-responses/stream-phase-part-start.yaml")
    (oldest,) = exchanges("openai-responses/stream-reasoning-obfuscation.yaml")

    def final(body: bytes) -> dict[str, Any]:
        last = [e for e in SSE.events(body) if e.data][-1]
        response: dict[str, Any] = json.loads(last.data or "")["response"]
        return response

    ours = list(json.loads(synthesize(unstreamed(newest.request), Script(text="Hi")).body))
    recent, old = list(final(newest.response.body)), list(final(oldest.response.body))
    assert set(old) <= set(ours) <= set(recent)
    assert ours == [key for key in recent if key in ours]  # the same relative order
    usage = json.loads(synthesize(unstreamed(oldest.request), Script(text="Nine.")).body)["usage"]
    assert list(usage) == list(final(oldest.response.body)["usage"])


def test_recorded_requests_get_clean_synthesized_streams() -> None:
    for name, index in VERDICTS:
        exchange = exchanges(name)[index]
        if kind_of(exchange) != "stream":
            continue
        script = Script(text="<think>Hmm.</think>Done.", tool_calls=(ToolCall("f", "{}"),))
        response = synthesize(exchange.request, script)
        assert check(exchange.request, SSE.events(response.body)) == [], name


def test_the_three_bedrock_turns_have_three_identities() -> None:
    turns = exchanges("openai-responses/stream-bedrock-mantle.yaml")
    assert len({identity(t.request) for t in turns}) == 3
    assert all(t.request.path == "/openai/v1/responses" for t in turns)
    assert all(dict(identity(t.request)).get("azure.deployment") is None for t in turns)
