"""The Cohere v2 chat event stream (``POST /v2/chat`` with ``stream: true``) judged in one
pass: a state machine over the events, worded by the rule table in ``rules.py``.

Beside ``cohere.dialect``: ``check`` judges any SSE stream of Cohere's named events off to
the side of the flow. What the recordings show: every event has an ``event:`` line equal
to its data's ``type``; ``message-start`` first; content blocks and tool calls open, take
deltas and end by index; the tool plan precedes the tool calls; citations come in
start/end pairs; one ``message-end`` carries ``delta.finish_reason`` and ``delta.usage``;
then ``data: [DONE]`` ends the stream.

A message-end whose finish_reason is ERROR or TIMEOUT is Cohere's in-band error (its
``delta.error`` says why): the generation broke off, so blocks may still be open and usage
may be missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.dialects._kit.rules import Findings
from mockserver.dialects._kit.wire import short
from mockserver.dialects.cohere.rules import BROKEN_OFF, FINISH_REASONS, RULES
from mockserver.model import Event, Request, Violation

__all__ = ["RULES", "check"]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message(payload: dict[str, Any]) -> dict[str, Any]:
    """``delta.message`` of an event, or {} when it has none."""
    return _obj(_obj(payload.get("delta")).get("message"))


def _count(value: Any) -> bool:
    # The SDK types the counts as floats; the recordings send integers.
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _usage_ok(usage: Any) -> bool:
    """delta.usage with billed_units and/or tokens, each holding both counts."""
    if not isinstance(usage, dict):
        return False
    parts = [usage[k] for k in ("billed_units", "tokens") if k in usage]
    return bool(parts) and all(
        isinstance(p, dict) and _count(p.get("input_tokens")) and _count(p.get("output_tokens"))
        for p in parts
    )


@dataclass
class _Open:
    """An open content block or tool call."""

    index: int
    kind: str
    at: int
    fragments: list[str] = field(default_factory=list)
    flagged: bool = False


@dataclass
class _Track:
    """Content blocks, or tool calls: each opens, takes deltas and ends by its index."""

    what: str  # "content block" or "tool call"
    rule: str  # its rules are named after it: content-* or tool-call-*
    open: _Open | None = None
    next: int = 0

    def expected(self, event: str) -> str:
        if self.open is None:
            return f"no {event} while no {self.what} is open"
        return f"a {event} for {self.what} {self.open.index}, the open one"


class _Checker:
    """One pass over a stream: the state between events, findings worded by RULES."""

    def __init__(self) -> None:
        self.found = Findings(RULES)
        self.started: int | None = None
        self.early = False  # message-start-not-first already said
        self.ended: int | None = None
        self.done: int | None = None
        self.content = _Track("content block", "content")
        self.calls = _Track("tool call", "tool-call")
        self.first_call: int | None = None
        self.citation: int | None = None  # the index of the open one

    def shape(self, i: int, expected: str, payload: Any) -> None:
        self.found.flag("event-shape", i, expected=expected, found=short(payload))

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            if event.data is None:
                if event.event is not None:
                    found = f"event: {event.event} alone"
                    self.found.flag("data-not-json", i, expected="a data line", found=found)
                continue  # a comment-only block is a keep-alive every SSE client skips
            if self.done is not None:
                self.found.flag("event-after-done", i, at=self.done, found=short(event.data))
                continue
            if event.data == "[DONE]":
                self.on_done(i)
                continue
            try:
                payload = json.loads(event.data)
            except (ValueError, RecursionError):
                payload = None
            kind = payload.get("type") if isinstance(payload, dict) else None
            if not isinstance(payload, dict) or not isinstance(kind, str):
                expected = "a JSON object with a type"
                self.found.flag("data-not-json", i, expected=expected, found=short(event.data))
                continue
            if event.event is None:
                self.found.flag("event-name-missing", i, kind=kind)
            elif event.event != kind:
                expected = f"event: {kind}"
                self.found.flag("event-name-mismatch", i, expected=expected, found=event.event)
            self.on_event(i, kind, payload)
        self.end()
        return self.found.violations()

    def on_event(self, i: int, kind: str, payload: dict[str, Any]) -> None:
        if self.ended is not None:
            self.found.flag("event-after-message-end", i, at=self.ended, found=kind)
            return
        if kind == "message-start":
            self.message_start(i, payload)
            return
        if self.started is None and not self.early:
            self.early = True
            found = f"{kind} before it"
            self.found.flag("message-start-not-first", i, expected="message-start", found=found)
        handler = HANDLERS.get(kind)
        if handler is not None:
            handler(self, i, payload)
        # Other types (the SDK knows "debug") are skipped: newer servers may add some.

    def message_start(self, i: int, payload: dict[str, Any]) -> None:
        if self.started is not None:
            expected = f"one message-start (event {self.started})"
            self.found.flag("message-start-not-first", i, expected=expected, found="a second")
            return
        self.started = i
        if not isinstance(payload.get("id"), str) or "message" not in _obj(payload.get("delta")):
            self.shape(i, "an id and delta.message", payload)

    def start(self, track: _Track, i: int, index: int, kind: str) -> _Open:
        """A content block or tool call opens: whatever was open should have ended."""
        self.unended(i, f"{track.rule}-start {index}")
        if index != track.next:
            rule = f"{track.rule}-index-not-contiguous"
            self.found.flag(rule, i, expected=track.next, found=index)
        track.open, track.next = _Open(index, kind, i), index + 1
        return track.open

    def named(self, track: _Track, i: int, index: int, event: str) -> _Open | None:
        """The open block a delta or end names, or None (flagged) when it names another."""
        if track.open is None or track.open.index != index:
            rule = f"{track.rule}-not-open"
            self.found.flag(rule, i, expected=track.expected(event), found=index)
            return None
        return track.open

    def content_start(self, i: int, payload: dict[str, Any]) -> None:
        index, kind = payload.get("index"), _obj(_message(payload).get("content")).get("type")
        if type(index) is not int or not isinstance(kind, str):
            self.shape(i, "an index and a typed delta.message.content", payload)
        else:
            self.start(self.content, i, index, kind)

    def content_delta(self, i: int, payload: dict[str, Any]) -> None:
        index, content = payload.get("index"), _obj(_message(payload).get("content"))
        texts = [k for k in ("text", "thinking") if isinstance(content.get(k), str)]
        if type(index) is not int or not texts:
            self.shape(i, "an index and delta.message.content with text or thinking", payload)
            return
        block = self.named(self.content, i, index, "content-delta")
        if block is not None and block.kind in ("text", "thinking") and block.kind not in texts:
            expected = f"{block.kind} in a delta of {block.kind} block {index}"
            self.found.flag("delta-type-mismatch", i, expected=expected, found=" and ".join(texts))

    def content_end(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if type(index) is not int:
            self.shape(i, "an integer index", payload)
        elif self.named(self.content, i, index, "content-end") is not None:
            self.content.open = None

    def tool_plan_delta(self, i: int, payload: dict[str, Any]) -> None:
        if not isinstance(_message(payload).get("tool_plan"), str):
            self.shape(i, "delta.message.tool_plan", payload)
        elif self.first_call is not None:
            self.found.flag("tool-plan-late", i, at=self.first_call)

    def tool_call_start(self, i: int, payload: dict[str, Any]) -> None:
        index, call = payload.get("index"), _message(payload).get("tool_calls")
        if type(index) is not int or not isinstance(call, dict):
            self.shape(i, "an index and delta.message.tool_calls", payload)
            return
        function = _obj(call.get("function"))
        named = isinstance(function.get("name"), str) and function["name"] != ""
        if not (isinstance(call.get("id"), str) and call.get("type") == "function" and named):
            expected = "an id, type function and function.name"
            self.found.flag("tool-call-incomplete", i, expected=expected, found=short(call))
        opened = self.start(self.calls, i, index, "function")
        if isinstance(function.get("arguments"), str):
            opened.fragments.append(function["arguments"])
        self.first_call = i if self.first_call is None else self.first_call

    def tool_call_delta(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        function = _obj(_obj(_message(payload).get("tool_calls")).get("function"))
        if type(index) is not int or not isinstance(function.get("arguments"), str):
            self.shape(i, "an index and delta.message.tool_calls.function.arguments", payload)
        elif (call := self.named(self.calls, i, index, "tool-call-delta")) is not None:
            call.fragments.append(function["arguments"])

    def tool_call_end(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if type(index) is not int:
            self.shape(i, "an integer index", payload)
            return
        call = self.named(self.calls, i, index, "tool-call-end")
        if call is None:
            return
        text = "".join(call.fragments)
        if text.strip():
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict):
                self.found.flag("tool-arguments-invalid", i, number=index, found=short(text))
        self.calls.open = None

    def citation_start(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if type(index) is not int or not isinstance(_message(payload).get("citations"), dict):
            self.shape(i, "an index and delta.message.citations", payload)
            return
        self.unpaired(i, f"citation-start {index}")
        self.citation = index

    def citation_end(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if type(index) is not int:
            self.shape(i, "an integer index", payload)
        elif self.citation != index:
            found = f"citation-end {index}"
            if self.citation is None:
                expected = "no citation-end while no citation is open"
                self.found.flag("citation-not-paired", i, expected=expected, found=found)
            self.unpaired(i, found)
        self.citation = None

    def unpaired(self, i: int, found: str) -> None:
        if self.citation is not None:
            expected = f"the citation-end of citation {self.citation}"
            self.found.flag("citation-not-paired", i, expected=expected, found=found)

    def message_end(self, i: int, payload: dict[str, Any]) -> None:
        self.ended = i
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            self.shape(i, "a delta object", payload)
            delta = {}
        if delta.get("error") is not None and not isinstance(delta["error"], str):
            self.shape(i, "delta.error as a string", delta)
        reason = delta.get("finish_reason")
        if not isinstance(reason, str):
            self.found.flag("finish-reason-missing", i, found=short(delta))
        elif reason not in FINISH_REASONS:
            self.found.flag("finish-reason-unknown", i, found=repr(reason))
        elif reason == "TOOL_CALL" and self.first_call is None:
            self.found.flag("finish-reason-mismatch", i)
        broken_off = isinstance(reason, str) and reason in BROKEN_OFF
        if not broken_off:
            self.unended(i, "message-end")
            self.unpaired(i, "message-end")
        if not (broken_off and "usage" not in delta) and not _usage_ok(delta.get("usage")):
            self.found.flag("usage-missing", i, found=short(delta.get("usage")))

    def on_done(self, i: int) -> None:
        if self.ended is None:
            self.unended(i, "data: [DONE]")
            self.found.flag("message-end-missing", i, where="data: [DONE]")
        self.done = i

    def unended(self, i: int, where: str) -> None:
        """Flag the open content block or tool call (once each): something else came."""
        for track in (self.content, self.calls):
            block = track.open
            if block is not None and not block.flagged:
                block.flagged = True
                rule = f"{track.rule}-not-ended"
                self.found.flag(rule, i, number=block.index, at=block.at, found=where)

    def end(self) -> None:
        if self.started is None and not self.early:
            self.found.flag("message-start-not-first", -1, expected="message-start", found="none")
        if self.ended is None and self.done is None:
            self.unended(-1, "the end")
            self.found.flag("message-end-missing", -1, where="the end")
        if self.done is None:
            where = "the end without it" if self.ended is None else "the end after message-end"
            self.found.flag("done-missing", -1, found=where)


HANDLERS = {
    "content-start": _Checker.content_start,
    "content-delta": _Checker.content_delta,
    "content-end": _Checker.content_end,
    "tool-plan-delta": _Checker.tool_plan_delta,
    "tool-call-start": _Checker.tool_call_start,
    "tool-call-delta": _Checker.tool_call_delta,
    "tool-call-end": _Checker.tool_call_end,
    "citation-start": _Checker.citation_start,
    "citation-end": _Checker.citation_end,
    "message-end": _Checker.message_end,
}


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest. No rule
    depends on what was asked, so ``request`` may be None."""
    return _Checker().run(events)
