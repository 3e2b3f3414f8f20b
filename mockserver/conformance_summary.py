"""What a stream says, whatever its protocol: text and content fragments per choice, tool
calls, finish reasons, usage, model and ids. The conformance comparison puts the upstream's
summary beside the proxy's, so that a proxy translating OpenAI chat into Anthropic
messages (or back) is judged on meaning, not on bytes.

Each event also gets an alignment key (``("finish", 0)``, ``("usage",)``, ``("text", 0,
3)``...): the proxy's event and the upstream's with the same key are shown side by side
as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.model import Event

FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "completed": "stop",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "incomplete": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}
"""Finish reasons of every protocol, in OpenAI chat's words."""

Key = tuple[Any, ...]


@dataclass
class Call:
    name: str | None = None
    id: str | None = None
    fragments: list[str] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    """The event index of each argument fragment."""

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)

    def add(self, fragment: Any, at: int) -> None:
        if isinstance(fragment, str):
            self.fragments.append(fragment)
            self.at.append(at)


@dataclass
class Summary:
    texts: dict[int, str] = field(default_factory=dict)
    fragments: dict[int, list[str]] = field(default_factory=dict)
    calls: dict[tuple[int, int], Call] = field(default_factory=dict)
    finishes: dict[int, str | None] = field(default_factory=dict)
    usage: tuple[int, int, int] | None = None
    usage_on_choices: bool = False
    model: str | None = None
    ids: set[str] = field(default_factory=set)
    error: bool = False
    done: bool = False
    keys: list[Key] = field(default_factory=list)
    fields: frozenset[str] = frozenset()
    """Top-level keys of the first chunk that carries content."""
    at: dict[int, list[int]] = field(default_factory=dict)
    """Per choice, the event index of each text fragment."""

    def add_text(self, n: int, text: Any) -> None:
        if isinstance(text, str) and text:
            self.texts[n] = self.texts.get(n, "") + text
            self.fragments.setdefault(n, []).append(text)
            self.at.setdefault(n, []).append(len(self.keys))

    def finish(self, n: int, reason: Any) -> None:
        self.finishes[n] = FINISH.get(reason, reason) if isinstance(reason, str) else None

    def where(self, key: Key) -> int | None:
        return self.keys.index(key) if key in self.keys else None


def _counts(usage: Any, names: tuple[str, str, str | None]) -> tuple[int, int, int] | None:
    if not isinstance(usage, dict):
        return None
    given, taken = usage.get(names[0]), usage.get(names[1])
    if type(given) is not int or type(taken) is not int:
        return None
    total = usage.get(names[2]) if names[2] else None
    return given, taken, total if type(total) is int else given + taken


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json(event: Event) -> Any:
    try:
        return json.loads(event.data) if event.data is not None else None
    except ValueError:
        return None


def openai_chunks(events: Sequence[Event]) -> Summary:
    """Chat Completions and legacy Completions chunks (``delta`` or ``text`` choices)."""
    out = Summary()
    seen: dict[int, int] = {}
    for event in events:
        if event.data is not None and event.data.startswith("[DONE]"):
            out.done = True
            out.keys.append(("done",))
            continue
        chunk = _json(event)
        if not isinstance(chunk, dict):
            out.keys.append(("other", len(out.keys)))
            continue
        if chunk.get("error") or event.event == "error":
            out.error = True
            out.keys.append(("error",))
            continue
        choices = _list(chunk.get("choices"))
        if isinstance(chunk.get("model"), str):
            out.model = out.model or chunk["model"]
        if isinstance(chunk.get("id"), str):
            out.ids.add(chunk["id"])
        if (
            usage := _counts(
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
            delta = _obj(choice.get("delta")) or choice  # legacy completions: text on the choice
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
    function = _obj(call.get("function"))
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
    out.usage = _counts(whole.get("usage"), ("prompt_tokens", "completion_tokens", "total_tokens"))
    for choice in whole.get("choices") or []:
        n, message = choice.get("index", 0), choice.get("message") or {}
        out.add_text(n, message.get("content", choice.get("text")))
        for t, call in enumerate(message.get("tool_calls") or []):
            _openai_call(out, n, t, call)
        out.finish(n, choice.get("finish_reason"))
    return out


def anthropic(events: Sequence[Event]) -> Summary:
    out = Summary()
    tools: dict[int, int] = {}  # block index -> tool ordinal
    for event in events:
        data = _json(event)
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
            out.usage = _counts(
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
            out.usage = _counts(usage, ("input_tokens", "output_tokens", None)) or out.usage
        elif kind == "message_stop":
            out.done = True
        out.keys.append(key)
    return out


def responses(events: Sequence[Event]) -> Summary:
    out = Summary()
    calls: dict[str, int] = {}  # item id -> tool ordinal
    for event in events:
        data = _json(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str):
            out.keys.append(("other", len(out.keys)))
            continue
        key = (kind, sum(1 for k in out.keys if k[0] == kind))
        item = _obj(data.get("item"))
        response = _obj(data.get("response"))
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
            out.usage = _counts(
                response.get("usage"), ("input_tokens", "output_tokens", "total_tokens")
            )
            status = (
                "tool_calls" if calls and kind == "response.completed" else response.get("status")
            )
            out.finish(0, status)
        out.keys.append(key)
    return out


SUMMARIZERS: dict[str, Callable[[Sequence[Event]], Summary]] = {
    "openai_chat": openai_chunks,
    "openai_completions": openai_chunks,
    "anthropic": anthropic,
    "openai_responses": responses,
}


def summarize(dialect: str, events: Sequence[Event]) -> Summary | None:
    """The summary of a stream, or None for a protocol without a summarizer."""
    summarizer = SUMMARIZERS.get(dialect)
    return summarizer(events) if summarizer else None
