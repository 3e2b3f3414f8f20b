"""What ``tapedeck check`` needs to speak Cohere v2 chat to a proxy: the client's request,
the upstream's in-band error, and a protocol-neutral summary of a stream or a body.

Cohere's finish reasons are given in OpenAI chat's words (``Summary`` compares them so),
and the tool plan counts as the answer's text: it is what Cohere says in a tool turn, where
other protocols put their text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.summary import Call, Key, Summary, counts, event_json, obj
from mockserver.dialects._kit.wire import dumps
from mockserver.dialects.contract import Conformance
from mockserver.model import Event, Request

IN_OPENAI_WORDS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
BROKEN_OFF = ("ERROR", "TIMEOUT")
USAGE = ("input_tokens", "output_tokens", None)


def request_body(
    prompt: str, model: str, tools: tuple[str, ...], n: int, include_usage: bool | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in tools
        ]
    return {**body, "stream": True}


def midstream_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """Cohere's in-band error: a message-end saying ERROR (``kind``: another finish reason,
    such as ERROR_TOXIC), with the reason in ``delta.error``; the stream then ends as every
    Cohere stream does, with [DONE]."""
    delta = {
        "error": message or "The server had an error while processing your request.",
        "finish_reason": kind or "ERROR",
    }
    data = dumps({"type": "message-end", "delta": delta})
    return b"event: message-end\ndata: " + data + b"\n\ndata: [DONE]\n\n"


def _usage(usage: Any) -> tuple[int, int, int] | None:
    """The billed counts (what a bill, and a proxy's usage, is about), else the token counts."""
    usage = obj(usage)
    return counts(usage.get("billed_units"), USAGE) or counts(usage.get("tokens"), USAGE)


def _finish(out: Summary, delta: dict[str, Any]) -> None:
    reason = delta.get("finish_reason")
    if reason in BROKEN_OFF or isinstance(delta.get("error"), str):
        out.error = True
    out.finish(0, IN_OPENAI_WORDS.get(reason, reason) if isinstance(reason, str) else None)
    out.usage = _usage(delta.get("usage")) or out.usage


def summarize(events: Sequence[Event]) -> Summary:
    out = Summary()
    for event in events:
        if event.data == "[DONE]":
            out.done = True
            out.keys.append(("done",))
            continue
        data = event_json(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str):
            out.keys.append(("other", len(out.keys)))
            continue
        key: Key = (kind, sum(1 for k in out.keys if k[0] == kind))
        message = obj(obj(data.get("delta")).get("message"))
        index: int = data["index"] if type(data.get("index")) is int else 0
        if kind == "message-start":
            out.ids.add(str(data.get("id")))
        elif kind == "content-delta":
            out.add_text(0, obj(message.get("content")).get("text"))
            out.fields = out.fields or frozenset(data)
        elif kind == "tool-plan-delta":
            out.add_text(0, message.get("tool_plan"))
        elif kind == "tool-call-start":
            call = obj(message.get("tool_calls"))
            function = obj(call.get("function"))
            out.calls[(0, index)] = Call(function.get("name"), call.get("id"))
            out.calls[(0, index)].add(function.get("arguments") or None, len(out.keys))
        elif kind == "tool-call-delta" and (0, index) in out.calls:
            function = obj(obj(message.get("tool_calls")).get("function"))
            out.calls[(0, index)].add(function.get("arguments"), len(out.keys))
        elif kind == "message-end":
            _finish(out, obj(data.get("delta")))
            key = ("finish", 0)
        out.keys.append(key)
    return out


def summarize_body(body: bytes) -> Summary:
    """A non-streamed answer (a proxy may ask its upstream for one)."""
    out = Summary(done=True)
    try:
        whole = json.loads(body)
    except ValueError:
        return out
    if not isinstance(whole, dict):
        return out
    out.ids.add(str(whole.get("id")))
    message = obj(whole.get("message"))
    out.add_text(0, message.get("tool_plan"))
    for block in message.get("content") or []:
        out.add_text(0, obj(block).get("text"))
    for t, call in enumerate(message.get("tool_calls") or []):
        function = obj(obj(call).get("function"))
        out.calls[(0, t)] = Call(function.get("name"), obj(call).get("id"))
        out.calls[(0, t)].add(function.get("arguments"), 0)
    _finish(out, whole)
    return out


CONFORMANCE = Conformance(summarize, request_body, summarize_body)
