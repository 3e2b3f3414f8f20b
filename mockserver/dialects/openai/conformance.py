"""What ``tapedeck check`` needs to speak OpenAI chat, legacy completions and Responses to a
proxy: the client's request, the upstream's in-band error frame, and summaries of what
came back (text, tool calls, finish reasons, usage) in protocol-neutral terms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.summary import Call, Key, Summary, as_list, counts, event_json, obj
from mockserver.dialects.contract import Conformance
from mockserver.model import Event, Request

ERROR_MESSAGE = "The server had an error while processing your request."


def chat_body(
    prompt: str, model: str, tools: tuple[str, ...], n: int, include_usage: bool | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in tools
        ]
    if n > 1:
        body["n"] = n
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    return {**body, "stream": True}


def responses_body(
    prompt: str, model: str, tools: tuple[str, ...], n: int, include_usage: bool | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": prompt}
    if tools:
        body["tools"] = [{"type": "function", "name": name, "parameters": {}} for name in tools]
    return {**body, "stream": True}


def chunk_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """OpenAI-compatible servers' mid-stream error: a chunk with a top-level ``error``; the
    stream then ends without ``[DONE]``."""
    error = {
        "message": message or ERROR_MESSAGE,
        "type": kind or "server_error",
        "param": None,
        "code": None,
    }
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def responses_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    data = {
        "type": "error",
        "code": kind or "server_error",
        "message": message or ERROR_MESSAGE,
        "param": None,
        "sequence_number": sequence_number,
    }
    return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"


def openai_chunks(events: Sequence[Event]) -> Summary:
    """Chat Completions and legacy Completions chunks (``delta`` or ``text`` choices)."""
    out = Summary()
    seen: dict[int, int] = {}
    for event in events:
        if event.data is not None and event.data.startswith("[DONE]"):
            out.done = True
            out.keys.append(("done",))
            continue
        chunk = event_json(event)
        if not isinstance(chunk, dict):
            out.keys.append(("other", len(out.keys)))
            continue
        if chunk.get("error") or event.event == "error":
            out.error = True
            out.keys.append(("error",))
            continue
        choices = as_list(chunk.get("choices"))
        if isinstance(chunk.get("model"), str):
            out.model = out.model or chunk["model"]
        if isinstance(chunk.get("id"), str):
            out.ids.add(chunk["id"])
        if (
            usage := counts(
                chunk.get("usage"), ("prompt_tokens", "completion_tokens", "total_tokens")
            )
        ) is not None:
            out.usage = usage
            out.usage_on_choices = out.usage_on_choices or bool(choices)
        key: Key = ("usage",) if usage else ("other", len(out.keys))
        for choice in choices:
            if not isinstance(choice, dict) or type(choice.get("index")) is not int:
                continue
            n = choice["index"]
            delta = obj(choice.get("delta")) or choice  # legacy completions: text on the choice
            out.add_text(n, delta.get("content", delta.get("text")))
            if delta.get("content") or delta.get("text") or delta.get("tool_calls"):
                out.fields = out.fields or frozenset(chunk)
            for t, call in enumerate(delta.get("tool_calls") or []):
                if isinstance(call, dict):
                    _openai_call(out, n, call.get("index", t), call)
            seen[n] = seen.get(n, 0) + 1
            if choice.get("finish_reason") is not None:
                out.finish(n, choice["finish_reason"])
            else:
                out.finishes.setdefault(n, None)
            if not usage:  # a usage chunk is that, wherever a proxy put the usage
                key = ("finish", n) if choice.get("finish_reason") else ("choice", n, seen[n])
        out.keys.append(key)
    return out


def _openai_call(out: Summary, n: int, t: Any, call: dict[str, Any]) -> None:
    record = out.calls.setdefault((n, t if type(t) is int else 0), Call())
    function = obj(call.get("function"))
    record.name = record.name or function.get("name")
    record.id = record.id or call.get("id")
    record.add(function.get("arguments"), len(out.keys))


def openai_json(body: bytes) -> Summary:
    """A non-streamed chat completion (a proxy may ask its upstream for one)."""
    out = Summary(done=True)
    try:
        whole = json.loads(body)
    except ValueError:
        return out
    if not isinstance(whole, dict):
        return out
    out.model = whole.get("model") if isinstance(whole.get("model"), str) else None
    out.usage = counts(whole.get("usage"), ("prompt_tokens", "completion_tokens", "total_tokens"))
    for choice in whole.get("choices") or []:
        n, message = choice.get("index", 0), choice.get("message") or {}
        out.add_text(n, message.get("content", choice.get("text")))
        for t, call in enumerate(message.get("tool_calls") or []):
            _openai_call(out, n, t, call)
        out.finish(n, choice.get("finish_reason"))
    return out


def responses_stream(events: Sequence[Event]) -> Summary:
    out = Summary()
    calls: dict[str, int] = {}  # item id -> tool ordinal
    for event in events:
        data = event_json(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str):
            out.keys.append(("other", len(out.keys)))
            continue
        key = (kind, sum(1 for k in out.keys if k[0] == kind))
        item = obj(data.get("item"))
        response = obj(data.get("response"))
        if kind in ("error", "response.failed"):
            out.error = True
        if response:
            out.model = out.model or response.get("model")
            out.ids.add(str(response.get("id")))
        if kind == "response.output_text.delta":
            out.add_text(0, data.get("delta"))
            out.fields = out.fields or frozenset(data)
        elif kind == "response.output_item.added" and item.get("type") == "function_call":
            calls[str(item.get("id"))] = len(calls)
            out.calls[(0, len(calls) - 1)] = Call(item.get("name"), item.get("call_id"))
        elif kind == "response.function_call_arguments.delta" and data.get("item_id") in calls:
            out.calls[(0, calls[data["item_id"]])].add(data.get("delta"), len(out.keys))
        elif kind in ("response.completed", "response.incomplete"):
            out.done = True
            out.usage = counts(
                response.get("usage"), ("input_tokens", "output_tokens", "total_tokens")
            )
            status = (
                "tool_calls" if calls and kind == "response.completed" else response.get("status")
            )
            out.finish(0, status)
        out.keys.append(key)
    return out


CHAT = Conformance(openai_chunks, chat_body, openai_json, choices=True, usage_option=True)
COMPLETIONS = Conformance(openai_chunks)
RESPONSES = Conformance(responses_stream, responses_body)
