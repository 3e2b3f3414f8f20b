"""What ``tapedeck check`` needs to speak Anthropic Messages to a proxy: the client's
request and headers, the upstream's ``event: error`` frame, and a protocol-neutral summary
of a Messages stream.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.summary import Call, Key, Summary, counts, event_json
from mockserver.dialects.contract import Conformance
from mockserver.model import Event, Request


def request_body(
    prompt: str, model: str, tools: tuple[str, ...], n: int, include_usage: bool | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
    }
    if tools:
        body["tools"] = [{"name": name, "input_schema": {"type": "object"}} for name in tools]
    return {**body, "stream": True}


def client_headers(api_key: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {api_key}",
        "x-api-key": api_key,
        "anthropic-version": "2023-06-01",
    }


def midstream_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """Anthropic's in-band error: ``event: error``, then the connection ends (no
    ``message_stop``)."""
    error = {"type": kind or "overloaded_error", "message": message or "Overloaded"}
    data = {"type": "error", "error": error}
    return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"


def summarize(events: Sequence[Event]) -> Summary:
    out = Summary()
    tools: dict[int, int] = {}  # block index -> tool ordinal
    for event in events:
        data = event_json(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str):
            out.keys.append(("other", len(out.keys)))
            continue
        key: Key = (kind, sum(1 for k in out.keys if k[0] == kind))
        if kind == "error":
            out.error = True
        elif kind == "message_start":
            message = data.get("message") or {}
            out.model, out.ids = message.get("model"), {str(message.get("id"))}
            usage = message.get("usage") or {}
            out.usage = counts(
                {**usage, "output_tokens": 0}, ("input_tokens", "output_tokens", None)
            )
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                tools[data.get("index", 0)] = len(tools)
                out.calls[(0, len(tools) - 1)] = Call(block.get("name"), block.get("id"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            out.add_text(0, delta.get("text"))
            if isinstance(delta.get("partial_json"), str) and data.get("index") in tools:
                out.calls[(0, tools[data["index"]])].add(delta["partial_json"], len(out.keys))
            out.fields = out.fields or frozenset(data)
        elif kind == "message_delta":
            out.finish(0, (data.get("delta") or {}).get("stop_reason"))
            given = out.usage[0] if out.usage else 0
            usage = {"input_tokens": given, **(data.get("usage") or {})}
            out.usage = counts(usage, ("input_tokens", "output_tokens", None)) or out.usage
        elif kind == "message_stop":
            out.done = True
        out.keys.append(key)
    return out


CONFORMANCE = Conformance(summarize, request_body, client_headers=client_headers)
