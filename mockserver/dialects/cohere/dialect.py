"""Cohere v2 chat (``POST /v2/chat``), streamed and not.

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
for the Library, ``synthesize`` answers a Script when nothing was recorded, ``error`` gives
misses Cohere's error shape, and ``check`` (``check.py``) judges any stream off to the
side. The facts: the real recordings (corpus: cohere/v2-chat-stream and
v2-chat-stream-tool-calls), the cohere SDK 7.x, wire-formats.md §9.

Synthesizer conventions (Script has no field for these):
- with tool calls, ``Script.text`` is the tool plan (``tool-plan-delta`` events, then the
  calls), as Cohere answers a tool turn; without, it is one text content block;
- a stream request whose Script keeps status 200 but sets ``error_kind`` is cut halfway by
  Cohere's in-band error: a message-end with finish_reason ERROR and ``delta.error`` saying
  ``error_message`` (Cohere has no error kinds: any kind will do), then ``data: [DONE]``;
- ``finish_reason`` takes Cohere's reasons, and OpenAI's names are mapped (stop ->
  COMPLETE, length -> MAX_TOKENS, tool_calls -> TOOL_CALL);
- usage: ``billed_units`` are the script's prompt tokens (else an estimate, about four
  characters a token) and the pieces emitted; ``tokens`` adds what Cohere adds over the
  billed units in the plain recording: 62 input tokens of chat template, 1 output token.
"""

from __future__ import annotations

import hashlib
import http
import math
import random
import uuid
from typing import Any

from mockserver.dialects._kit.limits import script_sizes
from mockserver.dialects._kit.wire import DEFAULT_TEXT, dumps, pieces, with_headers
from mockserver.dialects.cohere import conformance, knobs
from mockserver.dialects.cohere.check import RULES, check
from mockserver.dialects.cohere.recipes import RECIPES
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
    "priority": "a scheduling priority (lower is served first): it changes when the answer "
    "comes, never what it says",
}

FINISH_REASONS = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}
TEMPLATE_TOKENS = 62
"""Input tokens Cohere counts over the billed ones for a one-turn chat (corpus:
cohere/v2-chat-stream: billed 7, tokens 69)."""
STREAM_CACHE_CONTROL = "no-cache, no-store, no-transform, must-revalidate, private, max-age=0"


def is_stream(request: Request) -> bool:
    return isinstance(request.json, dict) and request.json.get("stream") is True


# --- identity --------------------------------------------------------------------------


def _content(content: Any) -> Any:
    """A string is the same as one text block."""
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def identity(request: Request) -> Identity:
    body = request.json
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("body", text)])
    fields = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    # A default spelled out asks for the same answer as a default left out: the SDK's chat()
    # sends stream: false, a raw client leaves it out.
    if fields.get("stream") is False:
        del fields["stream"]
    if isinstance(fields.get("messages"), list):
        fields["messages"] = [
            {**m, "content": _content(m["content"])}
            if isinstance(m, dict) and "content" in m
            else m
            for m in fields["messages"]
        ]
    return identity_from(fields.items())


# --- errors ----------------------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _trace_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def error(status: int, message: str, kind: str) -> Response:
    """Cohere's error: ``{"id": uuid, "message": ...}`` with the HTTP status (the cohere
    SDK raises per status: 400 BadRequestError, 429 TooManyRequestsError, ...). Cohere's
    bodies carry no error kind, so ``kind`` is not written. The id is a digest of the
    error, so the same error always carries the same id."""
    digest = hashlib.sha256(f"{status}\0{message}".encode("utf-8", "replace")).digest()
    rng = random.Random(digest)
    headers = (("content-type", "application/json"), ("x-debug-trace-id", _trace_id(rng)))
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""  # Cohere's 498 and 499 have no standard phrase
    return Response(status, headers, dumps({"id": _uuid(rng), "message": message}), reason)


# --- synthesize ------------------------------------------------------------------------


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """About four characters per token over the canonical messages, documents and tools."""
    parts = [body.get("messages"), body.get("documents"), body.get("tools")]
    return max(1, math.ceil(len(canonical_json(parts)) / 4))


def _usage(inputs: int, outputs: int) -> dict[str, Any]:
    billed = {"input_tokens": inputs, "output_tokens": outputs}
    tokens = {"input_tokens": inputs + TEMPLATE_TOKENS, "output_tokens": outputs + 1}
    return {"billed_units": billed, "tokens": tokens}


def _headers(stream: bool, rng: random.Random) -> Headers:
    if stream:
        return (
            ("content-type", "text/event-stream"),
            ("cache-control", STREAM_CACHE_CONTROL),
            ("x-debug-trace-id", _trace_id(rng)),
        )
    return (("content-type", "application/json"), ("x-debug-trace-id", _trace_id(rng)))


def _call_id(rng: random.Random, name: str) -> str:
    """``get_time_dg5wwc00d8v5``: the tool's name and 12 lower-case letters and digits."""
    return f"{name}_" + "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12)
    )


def _events(
    script: Script, plan: str | None, text: str | None, calls: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events between message-start and message-end."""
    size = script.chunk_size
    events: list[dict[str, Any]] = []
    if text is not None:
        start = {"message": {"content": {"type": "text", "text": ""}}}
        events.append({"type": "content-start", "index": 0, "delta": start})
        for piece in pieces(text, size):
            delta = {"message": {"content": {"text": piece}}}
            events.append({"type": "content-delta", "index": 0, "delta": delta})
        events.append({"type": "content-end", "index": 0})
    for piece in pieces(plan or "", size):
        events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for index, call in enumerate(calls):
        function = {"name": call["function"]["name"], "arguments": ""}
        started = {"id": call["id"], "type": "function", "function": function}
        events.append(
            {
                "type": "tool-call-start",
                "index": index,
                "delta": {"message": {"tool_calls": started}},
            }
        )
        for piece in pieces(call["function"]["arguments"], size):
            fragment = {"tool_calls": {"function": {"arguments": piece}}}
            events.append(
                {"type": "tool-call-delta", "index": index, "delta": {"message": fragment}}
            )
        events.append({"type": "tool-call-end", "index": index})
    return events


def synthesize(request: Request, script: Script) -> Response:
    """Cohere's answer to ``script``, streamed when the request asks for a stream.

    Token rule: billed output_tokens counts the pieces emitted (tool plan, text and
    argument fragments of ``chunk_size`` characters), at least 1.
    """
    if script.status >= 400:
        return with_headers(error(script.status, script.error_message, ""), script.headers)
    body = request.json if isinstance(request.json, dict) else {}
    rng = random.Random(script.seed)
    message_id = _uuid(rng)
    inputs = estimate_input_tokens(body) if script.prompt_tokens is None else script.prompt_tokens
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    plan, text = (text, None) if script.tool_calls else (None, text)
    calls = [
        {
            "id": call.id or _call_id(rng, call.name),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in script.tool_calls
    ]
    size = script.chunk_size
    emitted = [*pieces(plan or "", size), *pieces(text or "", size)]
    emitted += [p for call in script.tool_calls for p in pieces(call.arguments, size)]
    usage = _usage(inputs, max(1, len(emitted)))
    reason = script.finish_reason or ("TOOL_CALL" if script.tool_calls else "COMPLETE")
    reason = FINISH_REASONS.get(reason, reason)
    headers = _headers(is_stream(request), rng)
    if not is_stream(request):
        message: dict[str, Any] = {"role": "assistant"}
        if plan is not None:
            message["tool_plan"] = plan
        if calls:
            message["tool_calls"] = calls
        if text is not None:
            message["content"] = [{"type": "text", "text": text}]
        whole = {"id": message_id, "message": message, "finish_reason": reason, "usage": usage}
        return with_headers(Response(200, headers, dumps(whole), "OK"), script.headers)
    empty = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    start = {"id": message_id, "type": "message-start", "delta": {"message": empty}}
    middle = _events(script, plan, text, calls)
    if script.error_kind:  # the in-band error convention: cut halfway
        middle = middle[: len(middle) // 2]
        ending: dict[str, Any] = {"error": script.error_message, "finish_reason": "ERROR"}
    else:
        ending = {"finish_reason": reason, "usage": usage}
    events = [start, *middle, {"type": "message-end", "delta": ending}]
    payload = b"".join(sse(event) for event in events) + DONE
    return with_headers(Response(200, headers, payload, "OK"), script.headers)


DONE = b"data: [DONE]\n\n"


def sse(event: dict[str, Any]) -> bytes:
    """One named event, its name the data's type, as Cohere writes it."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + dumps(event) + b"\n\n"


DIALECT = Dialect(
    name="cohere",
    routes=(
        Route("POST", "/v2/chat", "chat"),
        # Cohere-compatible gateways and proxies under a prefix.
        Route("POST", "{prefix*}/v2/chat", "chat"),
    ),
    framing=SSE,
    is_stream=is_stream,
    identity=identity,
    check=check,
    error=error,
    synthesize=synthesize,
    limits=script_sizes(),
    base_path="",
    # The cohere SDK reads CO_API_URL once, when its client module is first imported.
    environment=(("CO_API_URL", "{url}"), ("CO_API_KEY", "tapedeck-test-key")),
    rules=RULES,
    upstreams=(Upstream("cohere", "https://api.cohere.com", key=ApiKey(("CO_API_KEY",))),),
    midstream_error=conformance.midstream_error,
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    conformance=conformance.CONFORMANCE,
    # Cohere keys are 40 letters and digits with no prefix: only their variable names them.
    secret_patterns=(
        SecretPattern.of(
            "Cohere API key", r"CO_API_KEY[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9]{40})\b"
        ),
    ),
)
