"""OpenAI Responses API (``POST /v1/responses``), and the servers that copy it: Azure
OpenAI, OpenRouter (``/api/v1/responses``), Bedrock Mantle (``/openai/v1/responses``).

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
for the Library, ``synthesize`` answers a Script, ``error`` gives misses OpenAI's error
shape, and ``check`` (in ``_openai_responses_check``) judges any stream of typed events
off to the side.

Reasoning in a Script: a text starting with ``<think>…</think>`` makes a ``reasoning``
item first, whose one summary part says what is between the tags; the rest of the text
is the message. ``finish_reason`` picks the terminal event: ``length`` or
``max_output_tokens`` -> ``response.incomplete`` (reason ``max_output_tokens``),
``content_filter`` -> ``response.incomplete`` (reason ``content_filter``), ``failed`` ->
``response.failed`` carrying ``error_message``; anything else -> ``response.completed``.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from typing import Any

from mockserver.dialects._kit import wire
from mockserver.dialects._kit.limits import script_sizes
from mockserver.dialects._kit.wire import DEFAULT_TEXT
from mockserver.dialects.contract import Route
from mockserver.dialects.openai import common, conformance, knobs_responses
from mockserver.dialects.openai.recipes_responses import RECIPES
from mockserver.dialects.openai.responses_check import RULES, check
from mockserver.model import Identity, Request, Response, Script

VOLATILE_FIELDS: dict[str, str] = {
    "user": "an end-user tag for abuse monitoring; the answer does not depend on it",
    "metadata": "labels for dashboards and stored responses, never seen by the model",
    "store": "whether OpenAI keeps the response for later retrieval; the answer is the same",
    "prompt_cache_key": "a cache routing hint; it changes latency and cached_tokens only",
    "prompt_cache_retention": "how long a prompt cache lives; latency and cost only",
    "prompt_cache_options": "prompt cache tuning; latency and cost only",
    "safety_identifier": "a hashed end-user id for safety monitoring",
    "stream_options.include_obfuscation": "random padding on deltas, ignored by clients",
}
DEFAULTS: dict[str, Any] = {
    "stream": False,
    "background": False,
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "truncation": "disabled",
}
"""Request fields whose default value, spelled out, asks for the same answer as left out."""

__all__ = [
    "DEFAULT_TEXT",
    "DIALECT",
    "RULES",
    "VOLATILE_FIELDS",
    "check",
    "error",
    "identity",
    "synthesize",
]


def is_stream(request: Request) -> bool:
    return isinstance(request.json, dict) and request.json.get("stream") is True


def identity(request: Request) -> Identity:
    """The body minus VOLATILE_FIELDS and spelled-out DEFAULTS (see
    ``common.body_identity``), with Azure's deployment and api-version; a string ``input``
    is shorthand for one user message, and a message item with a role needs no type."""
    body = request.json
    if isinstance(body, dict) and "input" in body:
        given = body["input"]
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given
        if isinstance(items, list):
            items = [
                {k: v for k, v in item.items() if k != "type"}
                if isinstance(item, dict) and item.get("type") == "message" and "role" in item
                else item
                for item in items
            ]
        request = replace(request, json={**body, "input": items})
    return common.body_identity(request, VOLATILE_FIELDS, DEFAULTS)


def error(status: int, message: str, kind: str) -> Response:
    """OpenAI's error envelope as the Responses endpoint writes it: 2-space indent, no
    trailing newline, no Go escaping (corpus: openai-responses/error-401-*), with the
    headers, reason and request id of the shared OpenAI error."""
    shared = common.error(status, message, kind)
    code = common.error_code(status, kind)
    fields = {"message": message, "type": kind, "param": None, "code": code}
    body = json.dumps({"error": fields}, indent=2, ensure_ascii=False).encode("utf-8", "replace")
    return Response(shared.status, shared.headers, body, shared.reason)


# --- synthesize -------------------------------------------------------------------------

THINK = re.compile(r"<think>(.*?)</think>", re.S)
INCOMPLETE = {
    "length": "max_output_tokens",
    "max_output_tokens": "max_output_tokens",
    "content_filter": "content_filter",
}
"""Script finish reasons that end the answer with response.incomplete, and its reason."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


class _Stream:
    """The events of one synthesized answer, numbered as they are added, keys as OpenAI
    writes them since 2026 (``type`` first, the rest sorted); and the finished items."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.events: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> None:
        fields["sequence_number"] = len(self.events)
        self.events.append({"type": kind, **dict(sorted(fields.items()))})

    def open(self, item: dict[str, Any]) -> dict[str, Any]:
        self.add("response.output_item.added", item=item, output_index=len(self.items))
        return {"item_id": item["id"], "output_index": len(self.items)}

    def close(self, item: dict[str, Any]) -> None:
        self.add("response.output_item.done", item=item, output_index=len(self.items))
        self.items.append(item)

    def text(
        self, kind: str, at: dict[str, Any], text: str, field: str = "text", **extra: Any
    ) -> int:
        """``kind``.delta per piece of ``text``, then ``kind``.done; how many pieces."""
        pieces = wire.pieces(text, self.size)
        for piece in pieces:
            self.add(kind + ".delta", **at, delta=piece, **extra)
        self.add(kind + ".done", **at, **extra, **{field: text})
        return len(pieces)

    def reasoning(self, item: dict[str, Any], summary: str) -> int:
        at = {**self.open(item), "summary_index": 0}
        part = {"type": "summary_text", "text": ""}
        self.add("response.reasoning_summary_part.added", **at, part=part)
        pieces = self.text("response.reasoning_summary_text", at, summary)
        part = {**part, "text": summary}
        self.add("response.reasoning_summary_part.done", **at, part=part)
        self.close({**item, "summary": [part]})
        return pieces

    def message(self, item: dict[str, Any], text: str, status: str) -> int:
        at = {"content_index": 0, **self.open(item)}
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        self.add("response.content_part.added", **at, part=part)
        pieces = self.text("response.output_text", at, text, logprobs=[])
        part = {**part, "text": text}
        self.add("response.content_part.done", **at, part=part)
        self.close({**item, "status": status, "content": [part]})
        return pieces

    def function_call(self, item: dict[str, Any], arguments: str) -> int:
        at = self.open(item)
        pieces = self.text("response.function_call_arguments", at, arguments, "arguments")
        self.close({**item, "status": "completed", "arguments": arguments})
        return pieces

    def body(self) -> bytes:
        return b"".join(
            b"event: " + e["type"].encode() + b"\ndata: " + wire.dumps(e) + b"\n\n"
            for e in self.events
        )


def synthesize(request: Request, script: Script) -> Response:
    """OpenAI's answer to ``script``, streamed when the request asks for a stream.

    Items in OpenAI's order: reasoning (from ``<think>…</think>``), the message, then one
    function_call per tool call. Token rule: output_tokens counts the pieces emitted
    (reasoning, text and argument pieces of ``chunk_size`` characters), reasoning_tokens
    the reasoning ones; input_tokens is the script's, else an estimate from the request's
    instructions and input.
    """
    if script.status >= 400:
        kind = script.error_kind or common.default_error_kind(script.status)
        response = error(script.status, script.error_message, kind)
        if script.status == 429:
            extra = (("retry-after", "1"), *common.rate_limit_headers(0, True))
            response = wire.with_headers(response, extra)
        return wire.with_headers(response, script.headers)
    body = _obj(request.json)
    rng = random.Random(script.seed)
    prefix = _hex(rng, 18)  # OpenAI's ids of one response share a prefix

    def new_id(kind: str) -> str:
        return f"{kind}_{prefix}{_hex(rng, 32)}"

    response_id, created_at = new_id("resp"), wire.created(rng)
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    summary = None
    if text is not None and (think := THINK.match(text)):
        summary, text = think.group(1), text[think.end() :]
    reason = INCOMPLETE.get(script.finish_reason or "")
    terminal = "incomplete" if reason else "completed"
    terminal = "failed" if script.finish_reason == "failed" else terminal
    out = _Stream(script.chunk_size)
    for kind in ("response.created", "response.in_progress"):
        out.add(kind, response=_response(body, response_id, created_at, "in_progress"))
    thoughts = pieces = 0
    if summary is not None:
        item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": []}
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = "gAAAAA" + wire.random_id(rng, "", 120)
        thoughts = out.reasoning(item, summary)
    if text is not None and (text or not script.tool_calls):
        item = {"id": new_id("msg"), "type": "message", "status": "in_progress"}
        item.update(content=[], role="assistant")
        pieces += out.message(item, text, "completed" if terminal == "completed" else "incomplete")
    for call in script.tool_calls:
        item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress"}
        call_id = call.id or wire.random_id(rng, "call_", 24)
        item.update(arguments="", call_id=call_id, name=call.name)
        pieces += out.function_call(item, call.arguments)
    prompt = script.prompt_tokens
    if prompt is None:
        prompt = common.estimate_prompt_tokens([body.get("instructions"), body.get("input")])
    total = prompt + pieces + thoughts
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": pieces + thoughts,
        "output_tokens_details": {"reasoning_tokens": thoughts},
        "total_tokens": total,
    }
    final = _response(body, response_id, created_at, terminal, out.items, usage)
    if terminal == "failed":
        final["error"] = {"code": "server_error", "message": script.error_message}
    elif reason:
        final["incomplete_details"] = {"reason": reason}
    if is_stream(request):
        out.add("response." + terminal, response=final)
        payload, content_type = out.body(), "text/event-stream; charset=utf-8"
    else:
        payload, content_type = wire.dumps(final), "application/json"
    headers = common.success_headers(content_type, rng, total)
    return wire.with_headers(Response(200, headers, payload, "OK"), script.headers)


def _response(
    body: dict[str, Any],
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The response object in OpenAI's key order, echoing the request's parameters with
    OpenAI's defaults; ``output`` and ``usage`` are empty and null while in progress."""
    asked = _obj(body.get("reasoning"))
    tier = body.get("service_tier") or "auto"
    final = status != "in_progress"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": body.get("background") is True,
        "completed_at": created_at + 1 if final else None,
        "error": None,
        "frequency_penalty": 0.0,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"] if isinstance(body.get("model"), str) else "tapedeck",
        "output": output or [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "presence_penalty": 0.0,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": asked.get("effort"), "summary": asked.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default" if final and tier == "auto" else tier,
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium", **_obj(body.get("text"))},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


DIALECT = common.dialect(
    "openai_responses",
    (
        *common.routes("responses", "responses"),
        # AzureOpenAI posts Responses calls here (api-version in the query).
        Route("POST", "/openai/responses", "responses"),
    ),
    is_stream=is_stream,
    identity=identity,
    check=check,
    synthesize=synthesize,
    rules=RULES,
    recipes=RECIPES,
    limits=script_sizes(),
    midstream_error=conformance.responses_error,
    error=error,
    knobs=knobs_responses.KNOBS,
    conformance=conformance.RESPONSES,
)
