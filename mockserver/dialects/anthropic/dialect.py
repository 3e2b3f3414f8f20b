"""Anthropic Messages (``POST /v1/messages``) and its token counter (``/v1/messages/count_tokens``).

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
for the Library, ``synthesize`` answers a Script when nothing was recorded, ``error`` gives
misses Anthropic's error shape, and ``check`` judges any SSE stream off to the side. The
rules come from wire-formats.md §6 and §12.6 and the anthropic SDK (sdk-behaviour.md
§2.2); every real recording in corpus/anthropic passes them.

Synthesizer conventions (Script has no field for these):
- thinking: a request with ``thinking: {type: enabled | adaptive}`` gets a thinking block
  first, saying ``THINKING_TEXT``, signed with a digest of the seed and that text;
- a mid-stream error: a stream request whose Script keeps status 200 but sets
  ``error_kind`` (e.g. ``overloaded_error``) is cut halfway, before message_delta, by
  ``event: error`` carrying that kind and ``error_message``;
- ``finish_reason`` takes Anthropic's stop reasons, and OpenAI's names are mapped
  (stop -> end_turn, length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal).
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import math
import random
import time
from typing import Any

from mockserver.dialects._kit.limits import script_sizes
from mockserver.dialects._kit.wire import (
    DEFAULT_TEXT,
    created,
    dumps,
    pieces,
    random_id,
    with_headers,
)
from mockserver.dialects.anthropic import conformance, knobs
from mockserver.dialects.anthropic.check import RULES, check
from mockserver.dialects.anthropic.recipes import RECIPES
from mockserver.dialects.contract import ApiKey, Dialect, Route, SecretPattern, Upstream
from mockserver.framing.sse import SSE
from mockserver.model import (
    Headers,
    Identity,
    Request,
    Response,
    Script,
    canonical_json,
    identity_from,
)

__all__ = ["DIALECT", "RULES", "VOLATILE_FIELDS", "check", "error", "identity", "synthesize"]

VOLATILE_FIELDS: dict[str, str] = {
    "metadata": "metadata.user_id is an opaque end-user id for abuse detection; the model "
    "never sees it",
    "system[].cache_control": "a prompt-caching breakpoint: it changes the cache_* usage "
    "counts, never the answer",
    "messages[].content[].cache_control": "a prompt-caching breakpoint, as on system blocks",
    "tools[].cache_control": "a prompt-caching breakpoint, as on system blocks",
}

THINKING_TEXT = "Let me think about what is being asked before I answer."
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
"""Anthropic's error ``type`` per status (wire-formats.md §6); other 5xx say api_error."""


def is_stream(request: Request) -> bool:
    return isinstance(request.json, dict) and request.json.get("stream") is True


# --- identity --------------------------------------------------------------------------


def _uncached(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if out.get("type") == "tool_result" and "content" in out:
        out["content"] = _blocks(out["content"])
    return out


def _blocks(content: Any) -> Any:
    """A string is the same as one text block; caching breakpoints do not count."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_uncached(b) for b in content] if isinstance(content, list) else content


def identity(request: Request) -> Identity:
    body = request.json
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("body", text)])
    fields = {k: v for k, v in body.items() if k != "metadata"}
    # A default spelled out asks for the same answer as a default left out.
    if fields.get("stream") is False:
        del fields["stream"]
    if fields.get("tool_choice") == {"type": "auto"}:
        del fields["tool_choice"]
    if fields.get("thinking") == {"type": "disabled"}:
        del fields["thinking"]
    if "system" in fields:
        fields["system"] = _blocks(fields["system"])
    if isinstance(fields.get("messages"), list):
        fields["messages"] = [
            {**m, "content": _blocks(m["content"])} if isinstance(m, dict) and "content" in m else m
            for m in fields["messages"]
        ]
    if isinstance(fields.get("tools"), list):
        fields["tools"] = [_uncached(tool) for tool in fields["tools"]]
    return identity_from(fields.items())


# --- errors ----------------------------------------------------------------------------


def default_error_kind(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _request_id(seed: str) -> str:
    digits = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58
    number = int(hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest(), 16)
    return "req_011C" + "".join(digits[(number >> (6 * i)) % 58] for i in range(20))


def error(status: int, message: str, kind: str) -> Response:
    """Anthropic's error: compact JSON with the request id in the body and in the
    ``request-id`` header (corpus: anthropic/error-401-on-stream-request). The id is a
    digest of the error, so the same error always carries the same id."""
    rid = _request_id(f"{status}\0{kind}\0{message}")
    fields = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    headers = (("content-type", "application/json"), ("request-id", rid))
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""  # 529 has no standard phrase
    return Response(status, headers, dumps(fields), reason)


def _scripted_error(script: Script) -> Response:
    kind = script.error_kind or default_error_kind(script.status)
    response = error(script.status, script.error_message, kind)
    extra: Headers = ()
    if script.status == 429:
        extra = (("retry-after", "1"), *_rate_limits(0, 0, "2024-01-01T00:00:01Z", True))
    elif script.status < 500 and script.status not in (408, 409):
        extra = (("x-should-retry", "false"),)  # as the real 400s and 401s say
    return with_headers(with_headers(response, extra), script.headers)


# --- synthesize ------------------------------------------------------------------------


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """About four characters per token over the canonical system, messages and tools."""
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    return max(1, math.ceil(len(canonical_json(parts)) / 4))


def _rate_limits(inputs: int, outputs: int, reset: str, exhausted: bool) -> Headers:
    """The ``anthropic-ratelimit-*`` families of a 2026 recording (corpus:
    stream-cached-prompt-tokens; 2024 ones had requests and tokens); RFC 3339 resets."""
    used = {"input-tokens": inputs, "output-tokens": outputs, "tokens": inputs + outputs}
    limits = {"input-tokens": 1_600_000, "output-tokens": 400_000, "tokens": 2_000_000}
    return tuple(
        (f"anthropic-ratelimit-{name}-{what}", str(value))
        for name, limit in limits.items()
        for what, value in (
            ("limit", limit),
            ("remaining", 0 if exhausted else max(0, limit - used[name])),
            ("reset", reset),
        )
    )


def _headers(stream: bool, rng: random.Random, inputs: int, outputs: int) -> Headers:
    now = time.gmtime(created(rng))
    content_type = "text/event-stream; charset=utf-8" if stream else "application/json"
    return (
        ("content-type", content_type),
        *((("cache-control", "no-cache"),) if stream else ()),
        ("request-id", _request_id(str(rng.random()))),
        *_rate_limits(inputs, outputs, time.strftime("%Y-%m-%dT%H:%M:%SZ", now), False),
    )


Block = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], int]
"""(content_block as started, its deltas, the finished block, output tokens it costs)."""


def _content(body: dict[str, Any], script: Script, rng: random.Random) -> list[Block]:
    """The blocks of the answer: thinking (when asked), text, then one per tool call."""
    size = script.chunk_size
    blocks: list[Block] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        digest = hashlib.sha256(f"{script.seed}\0{THINKING_TEXT}".encode()).digest()
        signed = {"signature": base64.b64encode(b"\x12" + digest * 3).decode()}
        parts = pieces(THINKING_TEXT, size)
        deltas = [{"type": "thinking_delta", "thinking": p} for p in parts]
        done = {"type": "thinking", "thinking": THINKING_TEXT, **signed}
        empty = {"type": "thinking", "thinking": "", "signature": ""}
        blocks.append((empty, [*deltas, {"type": "signature_delta", **signed}], done, len(parts)))
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    if text is not None:
        parts = pieces(text, size)
        deltas = [{"type": "text_delta", "text": p} for p in parts]
        done = {"type": "text", "text": text}
        blocks.append(({"type": "text", "text": ""}, deltas, done, len(parts)))
    for call in script.tool_calls:
        call_id = call.id or random_id(rng, "toolu_01", 22)
        start: dict[str, Any] = {"type": "tool_use", "id": call_id, "name": call.name}
        start["input"] = {}
        parts = pieces(call.arguments, size)
        # The first fragment is empty, as Anthropic sends it.
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *parts]]
        blocks.append((start, deltas, {**start, "input": json.loads(call.arguments)}, len(parts)))
    return blocks


def synthesize(request: Request, script: Script) -> Response:
    """Anthropic's answer to ``script``, streamed when the request asks for a stream.

    Token rule: output_tokens counts the pieces emitted (thinking, text and argument
    fragments of ``chunk_size`` characters), at least 1; message_start says 1, and
    message_delta the total. input_tokens is the script's prompt_tokens, else an estimate
    from the request; count_tokens answers that same number.
    """
    if script.status >= 400:
        return _scripted_error(script)
    body = request.json if isinstance(request.json, dict) else {}
    rng = random.Random(script.seed)
    inputs = estimate_input_tokens(body) if script.prompt_tokens is None else script.prompt_tokens
    if request.path.rstrip("/").endswith("/count_tokens"):
        payload = dumps({"input_tokens": inputs})
        response = Response(200, _headers(False, rng, inputs, 0), payload, "OK")
        return with_headers(response, script.headers)
    model = body["model"] if isinstance(body.get("model"), str) else "claude-tapedeck"
    message = {"model": model, "id": random_id(rng, "msg_01", 22), "type": "message"}
    blocks = _content(body, script, rng)
    outputs = max(1, sum(block[3] for block in blocks))
    reason = script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")
    reason = STOP_REASONS.get(reason, reason)
    stops = body.get("stop_sequences")
    sequence = stops[0] if reason == "stop_sequence" and isinstance(stops, list) and stops else None
    ending = {"stop_reason": reason, "stop_sequence": sequence}
    cache = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    usage: dict[str, Any] = {"input_tokens": inputs, **cache}
    usage["cache_creation"] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    tier = {"service_tier": "standard", "inference_geo": "not_available"}
    headers = _headers(is_stream(request), rng, inputs, outputs)
    if not is_stream(request):
        whole = {**message, "role": "assistant", "content": [b[2] for b in blocks], **ending}
        whole["usage"] = {**usage, "output_tokens": outputs, **tier}
        return with_headers(Response(200, headers, dumps(whole), "OK"), script.headers)
    message.update(role="assistant", content=[], **dict.fromkeys(ending))
    message["usage"] = {**usage, "output_tokens": 1, **tier}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    for index, (start, deltas, _, _) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    if script.error_kind:  # the mid-stream error convention: cut halfway, before message_delta
        failure = {"type": script.error_kind, "message": script.error_message}
        events = [*events[: max(1, len(events) // 2)], {"type": "error", "error": failure}]
    else:
        final = {"input_tokens": inputs, **cache, "output_tokens": outputs}
        events += [
            {"type": "message_delta", "delta": ending, "usage": final},
            {"type": "message_stop"},
        ]
    payload = b"".join(_sse(event) for event in events)
    return with_headers(Response(200, headers, payload, "OK"), script.headers)


def _sse(event: dict[str, Any]) -> bytes:
    # Anthropic writes its ping with a space after the colon (corpus: stream-minimal-padded-data).
    data = b'{"type": "ping"}' if event["type"] == "ping" else dumps(event)
    name: str = event["type"]
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


DIALECT = Dialect(
    name="anthropic",
    routes=(
        Route("POST", "/v1/messages", "messages"),
        Route("POST", "/v1/messages/count_tokens", "messages.count_tokens"),
        # Anthropic-compatible servers and proxies under a prefix (LiteLLM's /anthropic, ...).
        Route("POST", "{prefix*}/v1/messages", "messages"),
        Route("POST", "{prefix*}/v1/messages/count_tokens", "messages.count_tokens"),
    ),
    framing=SSE,
    is_stream=is_stream,
    identity=identity,
    check=check,
    error=error,
    synthesize=synthesize,
    limits=script_sizes(),
    base_path="",
    environment=(("ANTHROPIC_BASE_URL", "{url}"), ("ANTHROPIC_API_KEY", "tapedeck-test-key")),
    rules=RULES,
    upstreams=(
        Upstream(
            "anthropic",
            "https://api.anthropic.com",
            key=ApiKey(("ANTHROPIC_API_KEY",), "x-api-key", "{key}"),
        ),
    ),
    midstream_error=conformance.midstream_error,
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    conformance=conformance.CONFORMANCE,
    secret_headers=frozenset({"anthropic-organization-id"}),
    secret_patterns=(SecretPattern.key("Anthropic API key", "sk-ant-", 20),),
)
