"""What a Cohere v2 chat stream must be: one table of rules (stable id, what it requires,
what a violation says), enforced by ``check.py``'s state machine.

The facts come from the real recordings (corpus: cohere/v2-chat-stream,
cohere/v2-chat-stream-tool-calls), which win over any document, then from the cohere SDK's
stream types (7.x: ``V2ChatStreamResponse``) and Cohere's streaming docs.
"""

from __future__ import annotations

from mockserver.dialects._kit.rules import Rule, RuleTable

__all__ = ["BROKEN_OFF", "FINISH_REASONS", "RULES"]

FINISH_REASONS = ("COMPLETE", "STOP_SEQUENCE", "MAX_TOKENS", "TOOL_CALL", "ERROR", "TIMEOUT")
"""Cohere v2's finish reasons (the SDK's ``ChatFinishReason``)."""

BROKEN_OFF = frozenset({"ERROR", "TIMEOUT"})

SAID = "expected {expected}, found {found}"

RULES = RuleTable(
    Rule(
        "event-name-missing",
        "Every JSON event carries an event: line naming its type, as Cohere sends it "
        "(clients that dispatch on the SSE event name see nothing without it).",
        "expected event: {kind} before the data, found none",
    ),
    Rule("event-name-mismatch", "The event: name equals the data's type.", SAID),
    Rule(
        "data-not-json",
        "Every event's data is a JSON object with a string type, or the data: [DONE] sentinel.",
        SAID,
    ),
    Rule(
        "event-shape",
        "Known events carry their fields: an integer index on content-*, tool-call-* and "
        "citation-*; message-start an id and delta.message; content-start a typed "
        "delta.message.content; content-delta its text or thinking; tool-plan-delta its "
        "tool_plan; tool-call-start and -delta delta.message.tool_calls (arguments a string); "
        "citation-start delta.message.citations; message-end a delta object.",
        SAID,
    ),
    Rule("message-start-not-first", "message-start is the first event and comes once.", SAID),
    Rule(
        "content-index-not-contiguous",
        "content-start indexes run 0, 1, 2... with no gap or repeat.",
        "expected index {expected}, found index {found}",
    ),
    Rule(
        "content-not-open",
        "A content-delta or content-end names the open content block.",
        "expected {expected}, found one for block {found}",
    ),
    Rule(
        "content-not-ended",
        "Each content block ends (content-end) before the next block or a tool call starts, "
        "before message-end (unless it says ERROR or TIMEOUT) and before the stream ends.",
        "expected content-end for block {number} (started at event {at}), found {found} first",
    ),
    Rule(
        "delta-type-mismatch",
        "A content-delta fits its block: text in a text block, thinking in a thinking block.",
        SAID,
    ),
    Rule(
        "tool-call-index-not-contiguous",
        "tool-call-start indexes run 0, 1, 2... with no gap or repeat.",
        "expected index {expected}, found index {found}",
    ),
    Rule(
        "tool-call-not-open",
        "A tool-call-delta or tool-call-end names the open tool call.",
        "expected {expected}, found one for tool call {found}",
    ),
    Rule(
        "tool-call-not-ended",
        "Each tool call ends (tool-call-end) before the next one or a content block starts, "
        "before message-end (unless it says ERROR or TIMEOUT) and before the stream ends.",
        "expected tool-call-end for tool call {number} (started at event {at}), "
        "found {found} first",
    ),
    Rule(
        "tool-call-incomplete",
        "tool-call-start carries the call's string id, type function and function.name.",
        SAID,
    ),
    Rule(
        "tool-arguments-invalid",
        "A tool call's arguments (tool-call-start's, then each tool-call-delta's) join to a "
        "JSON object, or to nothing.",
        "expected a JSON object of arguments for tool call {number}, found {found}",
    ),
    Rule(
        "tool-plan-late",
        "tool-plan-delta events come before the first tool call.",
        "expected the tool plan before the tool call at event {at}, found a tool-plan-delta "
        "after it",
    ),
    Rule(
        "citation-not-paired",
        "citation-start and citation-end come in pairs of one index: no citation starts while "
        "one is open, an end closes the open one, none is open at message-end.",
        SAID,
    ),
    Rule(
        "finish-reason-missing",
        "message-end's delta carries a string finish_reason.",
        "expected a finish_reason in message-end's delta, found {found}",
    ),
    Rule(
        "finish-reason-unknown",
        "finish_reason is one of " + ", ".join(FINISH_REASONS) + ".",
        "expected one of " + ", ".join(FINISH_REASONS) + ", found {found}",
    ),
    Rule(
        "finish-reason-mismatch",
        "finish_reason TOOL_CALL comes only after at least one tool call.",
        "expected a tool call before finish_reason TOOL_CALL, found none",
    ),
    Rule(
        "usage-missing",
        "message-end's delta.usage is an object whose billed_units and tokens (at least one "
        "of them) hold non-negative input_tokens and output_tokens; an ERROR or TIMEOUT end "
        "may leave usage out.",
        "expected delta.usage with input_tokens and output_tokens, found {found}",
    ),
    Rule(
        "message-end-missing",
        "message-end comes before data: [DONE] and before the stream ends.",
        "expected message-end before {where}, found none",
    ),
    Rule(
        "event-after-message-end",
        "Only data: [DONE] follows message-end (one message-end per stream).",
        "expected only data: [DONE] after message-end (event {at}), found {found}",
    ),
    Rule(
        "done-missing",
        "The stream ends with data: [DONE], as every recorded Cohere v2 stream does.",
        "expected data: [DONE] last, found {found}",
    ),
    Rule(
        "event-after-done",
        "Nothing follows data: [DONE].",
        "expected the end after data: [DONE] (event {at}), found {found}",
    ),
)
"""Every rule ``check`` enforces; a Violation's rule is one of these ids."""
