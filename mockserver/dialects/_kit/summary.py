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


def counts(usage: Any, names: tuple[str, str, str | None]) -> tuple[int, int, int] | None:
    if not isinstance(usage, dict):
        return None
    given, taken = usage.get(names[0]), usage.get(names[1])
    if type(given) is not int or type(taken) is not int:
        return None
    total = usage.get(names[2]) if names[2] else None
    return given, taken, total if type(total) is int else given + taken


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def event_json(event: Event) -> Any:
    try:
        return json.loads(event.data) if event.data is not None else None
    except ValueError:
        return None
