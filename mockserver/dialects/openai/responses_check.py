"""The Responses API stream validator: one pass over typed events, as a state machine of
output items and their content and summary parts.

Split from ``responses`` to keep each module readable; it imports only ``model``, the
kit and its rule table (``responses_rules``). The rules come from wire-formats.md §5 and §12.7
and from what the openai SDK's stream helper enforces (lib/streaming/responses); wherever
a rule disagreed with a real recording in the corpus, the recording won: OpenRouter sends
no ``event:`` lines, ends with ``data: [DONE]``, opens a content part for reasoning text
and closes an earlier item after a later one; Bedrock Mantle writes ``event:`` after
``data:``; the final output may rename an item (OpenRouter's reasoning id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.rules import Findings
from mockserver.dialects._kit.wire import short
from mockserver.dialects.openai.responses_rules import RULES
from mockserver.model import Event, Request, Violation

__all__ = ["RULES", "check"]

LIFECYCLE = ("response.created", "response.queued", "response.in_progress")
TERMINAL = ("response.completed", "response.failed", "response.incomplete")
# Event type -> (buffer, its index field, what it does, the field holding the whole text).
TEXT_EVENTS: dict[str, tuple[str, str | None, str, str | None]] = {
    "response.content_part.added": ("content", "content_index", "open", None),
    "response.content_part.done": ("content", "content_index", "close", None),
    "response.reasoning_summary_part.added": ("summary", "summary_index", "open", None),
    "response.reasoning_summary_part.done": ("summary", "summary_index", "close", None),
    "response.output_text.delta": ("content", "content_index", "delta", None),
    "response.output_text.done": ("content", "content_index", "done", "text"),
    "response.output_text.annotation.added": ("content", "content_index", "within", None),
    "response.refusal.delta": ("content", "content_index", "delta", None),
    "response.refusal.done": ("content", "content_index", "done", "refusal"),
    "response.reasoning_text.delta": ("content", "content_index", "delta", None),
    "response.reasoning_text.done": ("content", "content_index", "done", "text"),
    "response.reasoning_summary_text.delta": ("summary", "summary_index", "delta", None),
    "response.reasoning_summary_text.done": ("summary", "summary_index", "done", "text"),
    "response.function_call_arguments.delta": ("args", None, "delta", None),
    "response.function_call_arguments.done": ("args", None, "done", "arguments"),
}
ITEM_TYPES: dict[str, tuple[str, ...]] = {
    "response.output_text": ("message",),
    "response.output_text.annotation": ("message",),
    "response.refusal": ("message",),
    "response.content_part": ("message", "reasoning"),
    "response.function_call_arguments": ("function_call",),
    "response.reasoning_text": ("reasoning",),
    "response.reasoning_summary_part": ("reasoning",),
    "response.reasoning_summary_text": ("reasoning",),
}
"""Event type prefix -> the item types its events may target."""


def _text(part: Any, field: str | None = None) -> Any:
    if not isinstance(part, dict):
        return None
    return part.get(field) if field else part.get("text", part.get("refusal"))


def _digest(item: Any) -> tuple[Any, ...]:
    """What a client keeps of an item: its type and texts (ids may be rewritten)."""
    if not isinstance(item, dict):
        return (item,)
    kind = item.get("type")
    if kind == "function_call":
        return (kind, item.get("name"), item.get("arguments"))
    lists = [item.get(name) for name in ("summary", "content")]
    return (kind, *(_text(part) for parts in lists if isinstance(parts, list) for part in parts))


class _Item:
    """One output item while streaming: where it was added, its fields, its parts."""

    __slots__ = ("at", "done", "fields", "next", "parts")

    def __init__(self, at: int, fields: dict[str, Any]) -> None:
        self.at, self.fields = at, fields
        self.done: dict[str, Any] | None = None
        self.parts: dict[tuple[str, int], tuple[str, list[str]]] = {}  # key -> (state, text)
        self.next = {"content": 0, "summary": 0}


class _Checker:
    """One pass over the events, collecting findings worded by ``RULES``."""

    def __init__(self) -> None:
        self.findings = Findings(RULES)
        self.done_at: int | None = None
        self.end_at: int | None = None
        self.first: Any = None  # the first typed event's type
        self.numbered: bool | None = None
        self.last_seq: int | None = None
        self.skipped = 0  # events without a number since the last numbered one
        self.response_id: tuple[int, Any] | None = None
        self.in_progress = False
        self.items: dict[int, _Item] = {}
        self.next_item = 0

    def flag(self, rule: str, index: int, **details: Any) -> None:
        self.findings.flag(rule, index, **details)

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            data = event.data
            if data is None:
                fields = [("event", event.event), ("id", event.id), ("retry", event.retry)]
                if named := [f"{name}: {value}" for name, value in fields if value is not None]:
                    self.flag("event-without-data", i, found=", ".join(named))
            elif self.done_at is not None:
                self.flag("data-after-done", i, at=self.done_at, found=short(data))
            elif data.startswith("[DONE]"):
                self.done_at = i
            elif self.end_at is not None:
                self.flag("event-after-end", i, at=self.end_at, found=short(data))
            else:
                try:
                    obj = json.loads(data)
                except (ValueError, RecursionError):
                    self.flag("data-not-json", i, found=short(data))
                    continue
                kind = obj.get("type") if isinstance(obj, dict) else None
                if event.event == "error" or kind == "error":
                    self.end_at = i  # an error ends the stream, whatever its shape
                    continue
                if not isinstance(kind, str):
                    want = "an object with a string type"
                    self.flag("event-shape", i, want=want, found=short(obj))
                    continue
                if event.event is not None and event.event != kind:
                    self.flag("event-name-mismatch", i, want=kind, found=event.event)
                self.sequence(i, obj.get("sequence_number"))
                self.dispatch(i, kind, obj)
        if self.end_at is None:
            found = f"[DONE] at event {self.done_at}" if self.done_at is not None else "the end"
            self.flag("terminal-missing", -1, found=found)
        return self.findings.violations()

    def sequence(self, i: int, seq: Any) -> None:
        numbered = type(seq) is int
        if self.numbered is None:
            self.numbered = numbered
        elif numbered != self.numbered:
            want = "an integer sequence_number" if self.numbered else "no sequence_number"
            self.flag("sequence-number-missing", i, want=want, found=short(seq))
        if not numbered:
            self.skipped += 1  # counted, so one missing number does not shift the rest
            return
        want_seq = self.skipped + (0 if self.last_seq is None else self.last_seq + 1)
        if seq != want_seq:
            self.flag("sequence-number-order", i, want=want_seq, found=seq)
        self.last_seq, self.skipped = seq, 0

    def dispatch(self, i: int, kind: str, obj: dict[str, Any]) -> None:
        if self.first is None:
            self.first = kind
            if kind != "response.created":
                self.flag("created-not-first", i, want="first", found=kind)
        elif kind == "response.created":
            self.flag("created-not-first", i, want="only once", found="another")
        if kind in LIFECYCLE or kind in TERMINAL:
            response = obj.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            if self.response_id is None:
                self.response_id = (i, rid)
            elif rid != self.response_id[1]:
                at, want = self.response_id
                self.flag("response-id-changed", i, want=repr(want), at=at, found=repr(rid))
        self.in_progress = self.in_progress or kind == "response.in_progress"
        opens = kind == "response.output_item.added" or kind in TERMINAL
        if opens and not self.in_progress and self.first == "response.created":
            self.flag("in-progress-missing", i, found=kind)
            self.in_progress = True  # said once
        if kind in TERMINAL:
            self.terminal(i, kind, obj.get("response"))
        elif kind == "response.output_item.added":
            self.added(i, obj)
        elif "output_index" in obj or kind in TEXT_EVENTS or kind == "response.output_item.done":
            self.item_event(i, kind, obj)

    def terminal(self, i: int, kind: str, response: Any) -> None:
        self.end_at = i
        response = response if isinstance(response, dict) else {}
        want = kind.removeprefix("response.")
        if response.get("status") != want:
            self.flag(
                "terminal-status", i, want=want, kind=kind, found=repr(response.get("status"))
            )
        usage = response.get("usage")
        if not isinstance(usage, dict):
            if kind != "response.failed" or usage is not None:
                self.flag("usage-missing", i, kind=kind, found=short(usage))
        elif problem := _usage_problem(usage):
            self.flag("usage-arithmetic", i, found=problem)
        if kind == "response.failed":
            return  # a failure may cut items short, and its output need not repeat them
        if kind == "response.completed":
            for n, item in sorted(self.items.items()):
                if item.done is None:
                    self.flag("left-open", i, what=f"output item {n}", when=kind)
        output = response.get("output")
        if isinstance(output, list) and all(item.done is not None for item in self.items.values()):
            streamed = [_digest(self.items[n].done) for n in sorted(self.items)]
            final = [_digest(item) for item in output]
            pairs = enumerate(zip(streamed, final, strict=False))
            if (k := next((k for k, (a, b) in pairs if a != b), None)) is not None:
                found = f"item {k} {short(final[k])} for {short(streamed[k])}"
                self.flag("final-output-mismatch", i, kind=kind, found=found)
            elif len(final) != len(streamed):
                found = f"{len(final)} items for {len(streamed)} streamed"
                self.flag("final-output-mismatch", i, kind=kind, found=found)

    def added(self, i: int, obj: dict[str, Any]) -> None:
        n, item = obj.get("output_index"), obj.get("item")
        if (
            type(n) is not int
            or not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
        ):
            want = "an integer output_index and a typed item"
            self.flag("event-shape", i, want=want, found=short(obj))
            return
        kind = "response.output_item.added"
        if n != self.next_item:
            self.flag(
                "index-order", i, what="output_index", want=self.next_item, kind=kind, found=n
            )
        self.next_item = max(self.next_item, n + 1)
        if n not in self.items:
            self.items[n] = state = _Item(i, item)
            base = item.get("arguments")
            state.parts[("args", 0)] = ("open", [base if isinstance(base, str) else ""])

    def item_event(self, i: int, kind: str, obj: dict[str, Any]) -> None:
        n = obj.get("output_index")
        if type(n) is not int:
            self.flag("event-shape", i, want=f"an integer output_index on {kind}", found=repr(n))
            return
        item = self.items.get(n)
        if item is None or item.done is not None:
            state = "never added" if item is None else "after its done"
            self.flag("item-not-open", i, kind=kind, n=n, found=state)
            return
        added = item.fields
        if "item_id" in obj and obj["item_id"] != added.get("id"):
            self.flag(
                "item-identity-changed",
                i,
                what="item_id",
                want=added.get("id"),
                at=item.at,
                found=repr(obj["item_id"]),
            )
        allowed = ITEM_TYPES.get(kind.rsplit(".", 1)[0])
        if allowed and added["type"] not in allowed:
            want = " or ".join(allowed)
            self.flag("event-wrong-item-type", i, kind=kind, want=want, n=n, found=added["type"])
            return
        if kind == "response.output_item.done":
            self.item_done(i, n, item, obj.get("item"))
        elif kind in TEXT_EVENTS:
            self.text_event(i, kind, n, item, obj)

    def text_event(self, i: int, kind: str, n: int, item: _Item, obj: dict[str, Any]) -> None:
        buffer, index_field, action, field = TEXT_EVENTS[kind]
        k = obj.get(index_field) if index_field else 0
        if type(k) is not int:
            self.flag("event-shape", i, want=f"an integer {index_field} on {kind}", found=repr(k))
            return
        key, part_name = (buffer, k), f"{buffer} part {k}"
        state, text = item.parts.get(key, ("never added", []))
        if action == "open":
            if k != item.next[buffer]:
                what = index_field or ""
                self.flag("index-order", i, what=what, want=item.next[buffer], kind=kind, found=k)
            item.next[buffer] = max(item.next[buffer], k + 1)
            if key not in item.parts:
                base = _text(obj.get("part"))
                item.parts[key] = ("open", [base if isinstance(base, str) else ""])
            return
        if state != "open":
            found = "after its done" if state == "done" else "never added"
            self.flag("part-not-open", i, kind=kind, part=part_name, n=n, found=found)
            return
        if action == "delta":
            delta = obj.get("delta")
            if not isinstance(delta, str):
                self.flag("event-shape", i, want=f"a string delta on {kind}", found=repr(delta))
            text.append(delta if isinstance(delta, str) else "")
        elif action in ("done", "close"):
            whole = obj.get(field) if field else _text(obj.get("part"))
            self.same_text(i, kind, field or "part text", "".join(text), whole)
            if action == "close":
                item.parts[key] = ("done", text)

    def same_text(self, i: int, kind: str, field: str, want: str, found: Any) -> None:
        if found != want:
            self.flag(
                "done-text-mismatch",
                i,
                field=field,
                want=short(want),
                kind=kind,
                found=short(found),
            )

    def item_done(self, i: int, n: int, item: _Item, done: Any) -> None:
        kind = "response.output_item.done"
        if not isinstance(done, dict):
            self.flag("event-shape", i, want=f"an item object on {kind}", found=short(done))
            done = {}
        for name in ("type", "id", "call_id"):
            if done.get(name) != item.fields.get(name):
                want = item.fields.get(name)
                self.flag(
                    "item-identity-changed",
                    i,
                    what=name,
                    want=want,
                    at=item.at,
                    found=repr(done.get(name)),
                )
                break
        item.done = done
        for (buffer, k), (state, text) in sorted(item.parts.items()):
            if buffer == "args":
                if item.fields.get("type") == "function_call":
                    arguments = done.get("arguments")
                    self.same_text(i, kind, "item arguments", "".join(text), arguments)
                    try:
                        json.loads(arguments if isinstance(arguments, str) else "".join(text))
                    except (ValueError, RecursionError):
                        self.flag("tool-arguments-invalid", i, n=n, found=short(arguments))
                continue
            if state == "open":
                self.flag("left-open", i, what=f"{buffer} part {k} of output item {n}", when=kind)
            listed = done.get(buffer)
            if isinstance(listed, list) and k < len(listed):
                self.same_text(i, kind, f"item {buffer}[{k}] text", "".join(text), _text(listed[k]))


def _usage_problem(usage: dict[str, Any]) -> str | None:
    names = ("input_tokens", "output_tokens", "total_tokens")
    counts = [usage.get(name) for name in names]
    given, out, total = (c if type(c) is int and c >= 0 else -1 for c in counts)
    if min(given, out, total) < 0:
        return f"expected integer {', '.join(names)} in the usage object, found {short(usage)}"
    if total != given + out:
        return f"expected total_tokens = {given} + {out}, found {total}"
    for details, name, bound in (
        ("input_tokens_details", "cached_tokens", given),
        ("output_tokens_details", "reasoning_tokens", out),
    ):
        inner = usage.get(details)
        value = inner.get(name) if isinstance(inner, dict) else None
        if value is not None and not (type(value) is int and 0 <= value <= bound):
            return f"expected {details}.{name} an integer from 0 to {bound}, found {value!r}"
    return None


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest."""
    return _Checker().run(events)
