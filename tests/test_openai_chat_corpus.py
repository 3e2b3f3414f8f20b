"""The openai_chat validator against every real OpenAI-compatible chat stream in the corpus.

Real OpenAI and Azure recordings must pass every rule: when one did not, the rule was
wrong and was changed (the OpenAI moderation chunk after the usage chunk, Azure's choices
without a delta). For the other servers the expected rule ids below were written from
reading the recordings and wire-formats.md §9 and §11, one comment per provider saying
which deviation each id stands for. The synthesizer is held to the same recordings: its
chunks have the shape of OpenAI's, key order included, and error() reproduces OpenAI's
error bodies byte for byte.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from mockserver.cassettes import load
from mockserver.dialects.openai.chat import check, error, identity, synthesize
from mockserver.framing.sse import SSE
from mockserver.model import Exchange, Request, Script, ToolCall, header
from tests.conftest import corpus_root

pytestmark = pytest.mark.corpus

ROOT = corpus_root()
PROVIDERS = [
    "openai",
    "azure",
    "groq",
    "mistral",
    "deepseek",
    "openrouter",
    "vllm",
    "litellm-proxy",
    "writer",
    "huggingface",
    "snowflake",
]

# (file, interaction index) -> the rule ids the validator must report, no more, no fewer.
VERDICTS: dict[tuple[str, int], set[str]] = {
    # OpenAI: the reference. include_usage, tool-call fragments, obfuscation, and a
    # moderation chunk (choices [], usage null) after the usage chunk all pass.
    ("openai/chat-stream-include-usage-langchain-no-ct.yaml", 0): set(),
    ("openai/chat-stream-include-usage-moderation.yaml", 0): set(),
    ("openai/chat-stream-include-usage-tool-calls-obfuscation.yaml", 0): set(),
    ("openai/chat-stream-include-usage-tool-calls-obfuscation.yaml", 1): set(),
    ("openai/chat-stream-no-usage-ratelimit-headers.yaml", 0): set(),
    # Azure: the leading prompt-filter chunk (choices [], id "", created 0, object ""),
    # content_filter_results on choices, a choice with no delta at all, latency_checkpoint
    # on the usage chunk, alphabetical keys: all legal.
    ("azure/chat-stream-2024-api-multi.yaml", 0): set(),
    ("azure/chat-stream-2024-api-multi.yaml", 1): set(),
    ("azure/chat-stream-2024-api-multi.yaml", 2): set(),
    ("azure/chat-stream-2024-api-multi.yaml", 3): set(),
    ("azure/chat-stream-include-usage-prompt-filter.yaml", 0): set(),
    ("azure/chat-stream-prompt-filter.yaml", 0): set(),
    # Groq: `event: error` with no [DONE] is a legal ending, a whole tool call in one delta
    # and x_groq usage on the finish chunk are fine; but `created` ticks over a second
    # mid-stream (…841 -> …842), and the compound model sends a new id on every chunk.
    ("groq/stream-midstream-error-event.yaml", 0): {"chunk-identity-changed"},
    ("groq/stream-midstream-error-event.yaml", 1): set(),
    ("groq/stream-ratelimit-headers.yaml", 0): set(),
    ("groq/stream-web-search-reasoning.yaml", 0): {"chunk-identity-changed"},
    # Mistral: usage on the finish chunk without include_usage is tolerated, the `p`
    # padding key and typed thinking content too; its tool call has neither index nor type.
    ("mistral/stream-legacy.yaml", 0): set(),
    ("mistral/stream-sync-ratelimit.yaml", 0): set(),
    ("mistral/stream-thinking.yaml", 0): set(),
    ("mistral/stream-tool-call.yaml", 0): {"tool-call-start-incomplete"},
    # DeepSeek: include_usage was asked, usage came on the finish chunk (with choices) and
    # no usage chunk followed; that one cause is reported once.
    ("deepseek/stream-reasoning-content.yaml", 0): {"usage-on-choices-chunk"},
    # OpenRouter: chunks omit usage instead of usage: null despite include_usage; the
    # error stream also sends finish_reason "length" twice before the in-chunk error
    # (which, with [DONE] after it, is a legal ending). The same role repeated in later
    # deltas is legal: the openai SDK reads it.
    ("openrouter/stream-cache-usage.yaml", 0): {"usage-null-missing"},
    ("openrouter/stream-midstream-error-comments.yaml", 0): {
        "usage-null-missing",
        "finish-reason-repeated",
    },
    # vLLM: a role-only first delta and stop_reason next to finish_reason are fine.
    ("vllm/chat-stream.yaml", 0): set(),
    # LiteLLM proxy 1.63 (wire-formats §11): no usage: null on chunks, usage on a chunk
    # whose choices are not empty; with n=2 the second choice never gets a finish_reason.
    ("litellm-proxy/chat-stream-include-usage.yaml", 0): {
        "usage-null-missing",
        "usage-on-choices-chunk",
    },
    ("litellm-proxy/chat-stream-n2-include-usage.yaml", 0): {
        "usage-null-missing",
        "usage-on-choices-chunk",
        "finish-reason-missing",
    },
    # Writer (POST /v1/chat): the stream ends without [DONE]; every delta repeating the
    # same role (and a `message` copy of itself) and its choices:[] usage chunk are fine.
    ("writer/chat-stream-n2-include-usage.yaml", 0): {"done-missing"},
    # Hugging Face router: a usage chunk nobody asked for (no stream_options).
    ("huggingface/router-stream-usage.yaml", 1): {"usage-unrequested"},
    # Snowflake Cortex: no finish_reason key at all, no usage: null on chunks; the same
    # role in both deltas is fine, and id "" and created 0 are at least constant.
    ("snowflake/cortex-stream-usage-logprobs.yaml", 0): {
        "finish-reason-missing",
        "usage-null-missing",
    },
}


@cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    return load(ROOT / name)


def is_chat_stream(exchange: Exchange) -> bool:
    body = exchange.request.json
    path = exchange.request.path
    chat = path.endswith("/chat/completions") or path == "/v1/chat"  # Writer's path
    return (
        chat
        and exchange.response.status == 200
        and isinstance(body, dict)
        and body.get("stream") is True
    )


def test_the_table_covers_every_chat_stream_of_those_providers() -> None:
    found = {
        (path.relative_to(ROOT).as_posix(), index)
        for provider in PROVIDERS
        for path in sorted((ROOT / provider).glob("*.yaml"))
        for index, exchange in enumerate(exchanges(path.relative_to(ROOT).as_posix()))
        if is_chat_stream(exchange)
    }
    assert found == set(VERDICTS)


def test_ollamas_openai_compatible_recording_is_not_a_stream() -> None:
    (exchange,) = exchanges("ollama/openai-compat-nonstream.yaml")
    assert exchange.request.path == "/v1/chat/completions" and not is_chat_stream(exchange)
    assert json.loads(exchange.response.body)["object"] == "chat.completion"


@pytest.mark.parametrize(("name", "index"), sorted(VERDICTS))
def test_verdict_on_a_recorded_stream(name: str, index: int) -> None:
    exchange = exchanges(name)[index]
    assert is_chat_stream(exchange)
    violations = check(exchange.request, SSE.events(exchange.response.body))
    assert {v.rule for v in violations} == VERDICTS[(name, index)], [str(v) for v in violations]
    assert len(violations) == len(VERDICTS[(name, index)])  # one per rule, repeats counted


def test_without_the_request_real_streams_still_pass() -> None:
    for (name, index), expected in VERDICTS.items():
        if name.split("/")[0] in ("openai", "azure"):
            exchange = exchanges(name)[index]
            assert check(None, SSE.events(exchange.response.body)) == [], name
            assert expected == set()


# --- the synthesizer against the recordings --------------------------------------------


def skeleton(value: Any) -> Any:
    """Keys in order, values reduced to their JSON type; `obfuscation` is random padding."""
    if isinstance(value, dict):
        return [(key, skeleton(item)) for key, item in value.items() if key != "obfuscation"]
    if isinstance(value, list):
        return [skeleton(item) for item in value]
    return type(value).__name__


def shapes(body: bytes) -> set[str]:
    events = SSE.events(body)
    return {
        json.dumps(skeleton(json.loads(e.data))) for e in events if e.data and e.data != "[DONE]"
    }


def test_synthesized_chunks_have_the_shape_of_real_openai_chunks() -> None:
    tools, text = exchanges("openai/chat-stream-include-usage-tool-calls-obfuscation.yaml")
    call = ToolCall("get_capital", '{"country":"UK"}')
    synthesized_tools = synthesize(tools.request, Script(tool_calls=(call,), chunk_size=3))
    synthesized_text = synthesize(text.request, Script(text="The capital of the UK is London."))
    # Real chunks say system_fingerprint "fp_…"; ours says "fp_tapedeck": same type, str.
    assert shapes(synthesized_tools.body) == shapes(tools.response.body)
    assert shapes(synthesized_text.body) == shapes(text.response.body)


def test_a_synthesized_body_has_the_shape_of_a_real_openai_body() -> None:
    (real,) = exchanges("openai/chat-nonstream-tool-calls.yaml")
    calls = tuple(
        ToolCall(c["function"]["name"], c["function"]["arguments"])
        for c in json.loads(real.response.body)["choices"][0]["message"]["tool_calls"]
    )
    ours = synthesize(real.request, Script(tool_calls=calls))
    assert skeleton(json.loads(ours.body)) == skeleton(json.loads(real.response.body))


def test_synthesized_streams_send_the_openai_headers_a_real_stream_sends() -> None:
    (real,) = exchanges("openai/chat-stream-no-usage-ratelimit-headers.yaml")

    def openai_names(headers: tuple[tuple[str, str], ...]) -> set[str]:
        return {n.lower() for n, _ in headers if n.lower().startswith(("openai-", "x-ratelimit-"))}

    ours = synthesize(real.request, Script())
    assert openai_names(ours.headers) == openai_names(real.response.headers)
    assert header(ours.headers, "content-type") == header(real.response.headers, "content-type")
    assert check(real.request, SSE.events(ours.body)) == []


@pytest.mark.parametrize(
    "name", ["openai/error-401-invalid-key.yaml", "openai/error-chat-completion.yaml"]
)
def test_error_reproduces_openais_error_body_byte_for_byte(name: str) -> None:
    (real,) = exchanges(name)
    recorded = json.loads(real.response.body)["error"]
    ours = error(real.response.status, recorded["message"], recorded["type"])
    assert recorded["code"] == "invalid_api_key"
    assert ours.body == real.response.body
    assert ours.status == real.response.status


def test_error_matches_openais_404_for_an_unknown_model() -> None:
    (real,) = exchanges("openai/error-404-model-not-found.yaml")
    recorded = json.loads(real.response.body)
    message = recorded["error"]["message"]
    assert json.loads(error(404, message, "invalid_request_error").body) == recorded


def test_identity_drops_the_user_field_of_a_recorded_azure_request() -> None:
    (exchange,) = exchanges("azure/chat-stream-prompt-filter.yaml")
    body = exchange.request.json
    assert body["user"] == "ddtrace-test"
    without_user = {k: v for k, v in body.items() if k != "user"}
    clean = Request("POST", exchange.request.path, exchange.request.query, json=without_user)
    assert identity(exchange.request) == identity(clean)


def test_azure_deployment_and_api_version_take_part_in_identity() -> None:
    (exchange,) = exchanges("azure/chat-stream-prompt-filter.yaml")
    request = exchange.request
    other_version = Request(
        "POST", request.path, (("api-version", "2099-01-01"),), json=request.json
    )
    other_deployment = Request(
        "POST",
        request.path.replace("/deployments/test-openai/", "/deployments/other/"),
        request.query,
        json=request.json,
    )
    assert identity(other_version) != identity(request)
    assert identity(other_deployment) != identity(request)
