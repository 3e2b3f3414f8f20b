"""The Anthropic Messages event stream's rules, as one state machine.

Beside ``anthropic`` (the dialect) so that any carrier of Claude's events can reuse it:
``MessageChecker.message_event`` judges the decoded events (message_start, the content
blocks, message_delta, message_stop, ping, error) whatever framed them; ``run`` adds the
SSE layer (``event:`` names, JSON data). Rules: wire-formats.md §6 and §12.6, the
anthropic SDK's parser and stream helper (sdk-behaviour.md §2.2), and the corpus, which
wins: blocks without deltas (redacted thinking, server tool results), pings inside blocks,
padded data lines and an empty first ``partial_json`` are all legal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.dialects._kit.rules import Findings, Rule, RuleTable
from mockserver.dialects._kit.wire import short
from mockserver.model import Event, Request, Violation

RULES = RuleTable(
    Rule(
        "event-name-missing",
        "Every event carries an event: line (the anthropic SDK silently drops an event without "
        "one).",
        "expected event: {kind} before the data, found none",
    ),
    Rule(
        "event-name-mismatch",
        "The event: name equals the data's type.",
        "expected event: {kind}, found event: {found}",
    ),
    Rule(
        "data-not-json",
        "Every event's data is a JSON object with a string type; an event: line without data "
        "is legal only for ping.",
        "expected a JSON object with a type, found {found}",
    ),
    Rule(
        "event-shape",
        "Known events carry their fields: an integer index on content_block_*, a typed "
        "content_block and delta with their string payload, a message object, and an error "
        "object with type and message.",
        "expected {want}, found {found}",
    ),
    Rule(
        "message-start-not-first",
        "message_start is the first event (pings and an error aside) and comes once.",
        "expected one message_start before anything else, found {found}",
    ),
    Rule(
        "ping-outside-message",
        "ping comes only between message_start and message_stop.",
        "expected ping inside the message, found one {where}",
    ),
    Rule(
        "block-index-not-contiguous",
        "content_block_start indexes run 0, 1, 2... with no gap or repeat.",
        "expected index {want}, found index {found}",
    ),
    Rule(
        "block-not-open",
        "A content_block_delta or content_block_stop names the open block.",
        "expected {want}, found one for block {found}",
    ),
    Rule(
        "block-not-stopped",
        "Each block is stopped before the next block starts, before message_delta and before "
        "the stream ends (blocks never interleave).",
        "expected content_block_stop for block {n} (started at event {at}), found {found} first",
    ),
    Rule(
        "block-after-message-delta",
        "No content block starts after message_delta.",
        "expected no block after message_delta, found {found}",
    ),
    Rule(
        "delta-type-mismatch",
        "A delta fits its block: text_delta and citations_delta in text, input_json_delta in "
        "tool_use and server_tool_use, thinking_delta and signature_delta in thinking.",
        "expected a delta fit for a {block} block, found {found}",
    ),
    Rule(
        "tool-input-invalid",
        "A tool block's input_json_delta fragments join to valid JSON (none, or only empty "
        "ones, mean {}).",
        "expected JSON input for block {n}, found {found}",
    ),
    Rule(
        "signature-missing",
        "A thinking block ends signed: a signature_delta after its last thinking_delta (or a "
        "signature already in its content_block_start).",
        "expected a signature ending block {n}, found none",
    ),
    Rule(
        "stop-reason-missing",
        "A message_delta with a non-null stop_reason comes before message_stop.",
        "expected a message_delta with a stop_reason, found {found}",
    ),
    Rule(
        "message-delta-repeated",
        "There is exactly one message_delta.",
        "expected one message_delta, found a second one",
    ),
    Rule(
        "usage-missing",
        "message_start's message.usage and message_delta's usage are objects with integer "
        "token counts (the SDK's stream helper crashes without them).",
        "expected usage with integer token counts in {where}, found {found}",
    ),
    Rule(
        "output-tokens-decreased",
        "message_delta.usage.output_tokens is cumulative: at least message_start's.",
        "expected output_tokens of at least {least}, found {found}",
    ),
    Rule(
        "message-stop-missing",
        "The stream ends with message_stop, unless an error event ended it.",
        "expected message_stop last, found the end without it",
    ),
    Rule(
        "event-after-message-stop",
        "Nothing follows message_stop.",
        "expected the end after event {at}, found {found}",
    ),
    Rule(
        "event-after-error",
        "An error event ends the stream.",
        "expected the end at the error (event {at}), found {found}",
    ),
)
"""Every rule ``check`` enforces: its id (a Violation's rule), what it requires, and what a
violation says."""

PAYLOADS: dict[str, tuple[str, type[object]]] = {
    "text_delta": ("text", str),
    "citations_delta": ("citation", dict),
    "input_json_delta": ("partial_json", str),
    "thinking_delta": ("thinking", str),
    "signature_delta": ("signature", str),
}
"""The field each known delta type carries, and its JSON type."""

FITS: dict[str, Callable[[str], bool]] = {
    "text_delta": lambda block: block == "text",
    "citations_delta": lambda block: block == "text",
    "input_json_delta": lambda block: block.endswith("tool_use"),  # + mcp_tool_use (beta)
    "thinking_delta": lambda block: block == "thinking",
    "signature_delta": lambda block: block == "thinking",
}


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


@dataclass
class _Block:
    index: int
    kind: str
    at: int
    signed: bool
    fragments: list[str] = field(default_factory=list)
    flagged: bool = False


class MessageChecker:
    """One pass over a stream, collecting findings."""

    def __init__(self) -> None:
        self.found = Findings(RULES)
        self.started: int | None = None
        self.early = False  # message-start-not-first already said
        self.stopped: int | None = None
        self.failed: int | None = None
        self.delta_at: int | None = None
        self.start_output: int | None = None
        self.next_index = 0
        self.block: _Block | None = None

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            if event.data is None and event.event is None:
                continue  # a comment-only keep-alive: every SSE client skips it
            if self.failed is not None:
                self.message_event(i, f"event: {event.event}" if event.event else "data", {})
                continue
            if event.data is None:  # the SDK skips such a ping, and raises on such an error
                if event.event != "ping":
                    self.found.flag("data-not-json", i, found=f"event: {event.event} alone")
                if event.event in ("ping", "error"):
                    self.message_event(i, event.event, {})
                continue
            try:
                payload = json.loads(event.data)
            except (ValueError, RecursionError):
                payload = None
            kind = payload.get("type") if isinstance(payload, dict) else None
            if not isinstance(payload, dict) or not isinstance(kind, str):
                self.found.flag("data-not-json", i, found=short(event.data))
                continue
            if event.event is None:
                self.found.flag("event-name-missing", i, kind=kind)
            elif event.event != kind:
                self.found.flag("event-name-mismatch", i, kind=kind, found=event.event)
            self.message_event(i, "error" if event.event == "error" else kind, payload)
        self.end()
        return self.found.violations()

    def message_event(self, i: int, kind: str, payload: dict[str, Any]) -> None:
        """Judge one decoded event of type ``kind``; unknown types are skipped (Anthropic's
        versioning policy), except that nothing but a ping or an error precedes message_start."""
        if self.failed is not None:
            self.found.flag("event-after-error", i, at=self.failed, found=kind)
        elif kind == "error":
            error = payload.get("error")
            if payload.get("type") == "error" and not (
                isinstance(error, dict)
                and isinstance(error.get("type"), str)
                and isinstance(error.get("message"), str)
            ):
                want = "an error object with type and message"
                self.found.flag("event-shape", i, want=want, found=short(payload))
            self.failed = i
        elif kind == "ping":
            if self.started is None or self.stopped is not None:
                where = "before message_start" if self.started is None else "after message_stop"
                self.found.flag("ping-outside-message", i, where=where)
        elif self.stopped is not None:
            self.found.flag("event-after-message-stop", i, at=self.stopped, found=kind)
        elif kind == "message_start":
            self.message_start(i, payload)
        else:
            if self.started is None and not self.early:
                self.early = True
                self.found.flag("message-start-not-first", i, found=f"{kind} before it")
            handler = getattr(self, kind, None) if kind in HANDLED else None
            if handler is not None:
                handler(i, payload)

    def message_start(self, i: int, payload: dict[str, Any]) -> None:
        if self.started is not None:
            self.found.flag("message-start-not-first", i, found="a second one")
            return
        self.started = i
        message = payload.get("message")
        if not isinstance(message, dict):
            self.found.flag("event-shape", i, want="a message object", found=short(payload))
            return
        usage = message.get("usage")
        if isinstance(usage, dict) and _count(usage.get("input_tokens")):
            self.start_output = usage.get("output_tokens")
        if not _count(self.start_output):
            self.start_output = None
            self.found.flag("usage-missing", i, where="message_start's message", found=short(usage))

    def content_block_start(self, i: int, payload: dict[str, Any]) -> None:
        index, block = payload.get("index"), payload.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if type(index) is not int or not isinstance(block, dict) or not isinstance(kind, str):
            want = "an index and a typed content_block"
            self.found.flag("event-shape", i, want=want, found=short(payload))
            return
        if self.delta_at is not None:
            self.found.flag("block-after-message-delta", i, found=kind)
        if self.block is not None:
            self.unstopped(i, f"block {index} starts")
        if index != self.next_index:
            self.found.flag("block-index-not-contiguous", i, want=self.next_index, found=index)
        signature = block.get("signature")
        self.block = _Block(index, kind, i, isinstance(signature, str) and signature != "")
        self.next_index = index + 1

    def content_block_delta(self, i: int, payload: dict[str, Any]) -> None:
        index, delta = payload.get("index"), payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if type(index) is not int or not isinstance(delta, dict) or not isinstance(kind, str):
            want = "an integer index and a typed delta"
            self.found.flag("event-shape", i, want=want, found=short(payload))
            return
        name, wanted = PAYLOADS.get(kind, ("", object))
        if name and not isinstance(delta.get(name), wanted):
            self.found.flag("event-shape", i, want=f"{name} in the {kind}", found=short(delta))
            return
        block = self.block
        if block is None or block.index != index:
            self.found.flag("block-not-open", i, want=self.open_block("delta"), found=index)
            return
        fits = FITS.get(kind)
        if fits is not None and not fits(block.kind):
            self.found.flag("delta-type-mismatch", i, block=block.kind, found=kind)
        elif kind == "input_json_delta":
            block.fragments.append(delta["partial_json"])
        elif kind in ("thinking_delta", "signature_delta"):
            block.signed = kind == "signature_delta"

    def content_block_stop(self, i: int, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if type(index) is not int:
            self.found.flag("event-shape", i, want="an integer index", found=short(payload))
            return
        block = self.block
        if block is None or block.index != index:
            self.found.flag("block-not-open", i, want=self.open_block("stop"), found=index)
            return
        text = "".join(block.fragments)
        if text:
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                self.found.flag("tool-input-invalid", i, n=index, found=short(text))
        if block.kind == "thinking" and not block.signed:
            self.found.flag("signature-missing", i, n=index)
        self.block = None

    def message_delta(self, i: int, payload: dict[str, Any]) -> None:
        if self.delta_at is not None:
            self.found.flag("message-delta-repeated", i)
        else:
            self.delta_at = i
        if self.block is not None:
            self.unstopped(i, "message_delta")
        delta, usage = payload.get("delta"), payload.get("usage")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not isinstance(reason, str):
            self.found.flag("stop-reason-missing", i, found=short(delta))
        if not (isinstance(usage, dict) and _count(usage.get("output_tokens"))):
            self.found.flag("usage-missing", i, where="message_delta", found=short(usage))
        elif self.start_output is not None and usage["output_tokens"] < self.start_output:
            found = usage["output_tokens"]
            self.found.flag("output-tokens-decreased", i, least=self.start_output, found=found)

    def message_stop(self, i: int, payload: dict[str, Any]) -> None:
        if self.block is not None:
            self.unstopped(i, "message_stop")
        if self.delta_at is None:
            self.found.flag("stop-reason-missing", i, found="message_stop first")
        self.stopped = i

    def open_block(self, what: str) -> str:
        if self.block is None:
            return f"no {what} while no block is open"
        return f"a {what} for block {self.block.index}, the open one"

    def unstopped(self, i: int, where: str) -> None:
        block = self.block
        if block is not None and not block.flagged:
            block.flagged = True
            self.found.flag("block-not-stopped", i, n=block.index, at=block.at, found=where)

    def end(self) -> None:
        if self.failed is not None:
            return  # the error is why anything after it is missing
        if self.started is None and not self.early:
            self.found.flag("message-start-not-first", -1, found="none")
        if self.stopped is None:
            self.unstopped(-1, "the end")
            if self.delta_at is None and self.started is not None:
                self.found.flag("stop-reason-missing", -1, found="none")
            self.found.flag("message-stop-missing", -1)


HANDLED = frozenset(
    {
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest. The
    request is not needed: no Anthropic rule depends on what was asked."""
    return MessageChecker().run(events)
