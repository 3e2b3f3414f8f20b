"""The Bedrock stream rules as data: each rule's id, what it requires and what a violation
says, and the vocabularies they name (event and exception types, stop reasons, the
framing's kinds of broken frame).

Read by ``check.py``, which enforces them, by the dialect (``Dialect.rules``) for docs and
reports, and by ``knobs.py``, whose mutations break each one. Rule ids and messages are
public: tests/test_bedrock*.py and the recordings pin them, so rename none.
"""

from __future__ import annotations

from mockserver.dialects._kit.rules import Rule, RuleTable

RULES = RuleTable(
    Rule(
        "frame-truncated",
        "Every frame is a whole message: a 12-byte prelude and as many bytes as it states.",
        "expected a whole message, found {found}",
    ),
    Rule(
        "prelude-crc",
        "Every prelude's CRC32 matches its first 8 bytes (else no length after it can be trusted).",
        "expected a prelude whose CRC32 matches, found {found}",
    ),
    Rule(
        "prelude-length",
        "Every prelude's lengths agree: the total holds the headers, the two CRCs, and no more "
        "than the frame.",
        "expected prelude lengths that fit the frame, found {found}",
    ),
    Rule(
        "message-crc",
        "Every message's CRC32 matches the bytes before it (botocore raises ChecksumMismatch "
        "otherwise).",
        "expected a message whose CRC32 matches, found {found}",
    ),
    Rule(
        "headers-malformed",
        "Every header block decodes: names and typed values inside the block.",
        "expected a header block that decodes, found {found}",
    ),
    Rule(
        "message-type",
        ":message-type is event (naming :event-type), exception (naming :exception-type) or error "
        "(naming :error-code).",
        "expected :message-type event, exception or error with its type header, found {found}",
    ),
    Rule(
        "payload-not-json",
        "Every event and exception payload is a JSON object.",
        "expected a JSON object, found {found}",
    ),
    Rule(
        "event-type-unknown",
        "Every event and exception type is one the endpoint's stream defines (botocore silently "
        "drops unknown events).",
        "expected one of {want}, found {found}",
    ),
    Rule(
        "event-after-exception",
        "An exception (or error) frame ends the stream: nothing follows.",
        "expected nothing after the exception at event {at}, found {found}",
    ),
    Rule(
        "message-start-first",
        "messageStart, with role assistant, is the first event, once.",
        "expected one messageStart with role assistant first, found {found}",
    ),
    Rule(
        "block-index-invalid",
        "Every block event carries contentBlockIndex, an integer >= 0.",
        "expected an integer contentBlockIndex >= 0, found {found}",
    ),
    Rule(
        "block-order",
        "Blocks run one at a time, in index order from 0: a block's events come between its first "
        "event and its contentBlockStop, none after.",
        "expected an event of {want}, found {found}",
    ),
    Rule(
        "block-start-invalid",
        "contentBlockStart comes first in its block, with start holding one member; a toolUse "
        "start names toolUseId and name.",
        "expected block {n} to open with one start member, found {found}",
    ),
    Rule(
        "delta-invalid",
        "contentBlockDelta.delta holds one member: text a string, toolUse an object with input a "
        "string, reasoningContent an object.",
        "expected a delta with one valid member, found {found}",
    ),
    Rule(
        "delta-kind-mismatch",
        "A block's deltas are all of one kind, toolUse deltas only in a block a toolUse start "
        "opened.",
        "expected {want} deltas in block {n}, found {found}",
    ),
    Rule(
        "tool-input-invalid",
        "A toolUse block's input fragments join to JSON (or to nothing), checked at its "
        "contentBlockStop.",
        "expected JSON input for the tool of block {n}, found {found}",
    ),
    Rule(
        "block-not-stopped",
        "Every block gets its contentBlockStop before messageStop.",
        "expected contentBlockStop of block {n}, found {found}",
    ),
    Rule(
        "message-stop-once",
        "messageStop comes exactly once, after every block event; only metadata follows it.",
        "expected one messageStop after the blocks, found {found}",
    ),
    Rule(
        "stop-reason-invalid",
        "messageStop.stopReason is a StopReason of the service model, and tool_use only when a "
        "toolUse block was sent.",
        "expected a StopReason, found {found}",
    ),
    Rule(
        "metadata-last",
        "metadata comes exactly once, after messageStop, as the last event.",
        "expected one metadata event, last, after messageStop, found {found}",
    ),
    Rule(
        "metadata-invalid",
        "metadata carries usage with integer inputTokens, outputTokens and totalTokens, and "
        "metrics with an integer latencyMs.",
        "expected integer usage counts and metrics.latencyMs, found {found}",
    ),
    Rule(
        "usage-arithmetic",
        "totalTokens = inputTokens + outputTokens + cacheReadInputTokens + cacheWriteInputTokens "
        "(absent counts as 0).",
        "expected totalTokens = {want}, found {found}",
    ),
    Rule(
        "chunk-invalid",
        'Every chunk payload is {"bytes": <base64>} of a JSON object.',
        "expected bytes holding base64 of a JSON object, found {found}",
    ),
    Rule(
        "anthropic-order",
        "An Anthropic model's chunks open with message_start and end with message_stop, each once.",
        "expected one {want}, found {found}",
    ),
    Rule(
        "invocation-metrics-missing",
        "The last chunk carries amazon-bedrock-invocationMetrics with integer inputTokenCount, "
        "outputTokenCount, invocationLatency, firstByteLatency.",
        "expected amazon-bedrock-invocationMetrics with integer counts on the last chunk, found "
        "{found}",
    ),
)
"""Every rule ``check`` enforces: its id, what it requires, and what a violation says
(what was expected, then what was found)."""

CONVERSE_EVENTS = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop"}
    | {"metadata"}
)
CONVERSE_EXCEPTIONS = frozenset(
    {"internalServerException", "modelStreamErrorException", "validationException"}
    | {"throttlingException", "serviceUnavailableException"}
)
INVOKE_EXCEPTIONS = CONVERSE_EXCEPTIONS | {"modelTimeoutException"}
STOP_REASONS = frozenset(
    {"end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened"}
    | {"content_filtered", "malformed_model_output", "malformed_tool_use"}
    | {"model_context_window_exceeded"}
)
FRAME_RULES = {
    "truncated": "frame-truncated",
    "prelude-crc": "prelude-crc",
    "prelude-length": "prelude-length",
    "message-crc": "message-crc",
    "headers": "headers-malformed",
}
"""The framing's kinds of broken frame (aws_eventstream.PROBLEMS) as rule ids."""
