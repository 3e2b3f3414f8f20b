"""The Responses API's stream rules as one table: each rule's id, what it requires and
what a violation says (wire-formats.md §5 and §12.7, and the openai SDK's stream helper).

Where it sits: ``responses_check`` words its findings with this table and the dialect
publishes it (``Dialect.rules``). Groups: ``ordering`` (events in the protocol's order),
``termination`` (how the stream ends), ``usage`` (the usage object).

What it must never do: change a rule id; users' reports and ignore lists pin them.
"""

from __future__ import annotations

from mockserver.dialects._kit.rules import Rule, RuleTable

ORDERING = frozenset({"ordering"})
TERMINATION = frozenset({"termination"})
USAGE = frozenset({"usage"})

RULES = RuleTable(
    Rule(
        "data-not-json",
        "Every data event is JSON, except a trailing [DONE] (OpenRouter).",
        "expected a JSON event or a final [DONE], found {found}",
    ),
    Rule(
        "event-without-data",
        "No block has event:, id: or retry: without data: (the openai SDK fails on it); "
        "comment-only keep-alive blocks are fine.",
        "expected a data: line in a non-comment block, found only {found}",
    ),
    Rule(
        "event-shape",
        "Every event is a JSON object with a string type; item events carry integer output_index "
        "and part indexes, and string deltas.",
        "expected {want}, found {found}",
    ),
    Rule(
        "event-name-mismatch",
        "An event: line, when present, names the data's type (OpenRouter sends none, which is "
        "fine).",
        "expected event: {want} as the data's type, found event: {found}",
    ),
    Rule(
        "sequence-number-order",
        "sequence_number starts at 0 and grows by 1 per event.",
        "expected sequence_number {want}, found {found}",
        ORDERING,
    ),
    Rule(
        "sequence-number-missing",
        "Either every event carries an integer sequence_number or, as on servers predating it, "
        "none does.",
        "expected {want} as on the first event, found {found}",
    ),
    Rule(
        "created-not-first",
        "response.created is the first event, and only the first (the SDK's stream helper raises "
        "otherwise); an error event may replace it.",
        "expected response.created {want}, found {found}",
        ORDERING,
    ),
    Rule(
        "in-progress-missing",
        "response.in_progress (after response.queued, in background mode) comes before the first "
        "output item and the terminal event.",
        "expected response.in_progress before {found}, found none",
        ORDERING,
    ),
    Rule(
        "response-id-changed",
        "Every lifecycle event (created, in_progress, completed...) carries the same response.id "
        "(the SDK raises otherwise).",
        "expected response.id {want} as at event {at}, found {found}",
    ),
    Rule(
        "terminal-missing",
        "The stream ends with response.completed, response.failed or response.incomplete, unless "
        "an error event ended it.",
        "expected a terminal response event last, found {found}",
        TERMINATION,
    ),
    Rule(
        "terminal-status",
        "The terminal event's response.status names the event: completed, failed or incomplete.",
        "expected status {want!r} on {kind}, found {found}",
    ),
    Rule(
        "event-after-end",
        "The terminal event, or an error event, ends the stream: only data: [DONE] may follow it.",
        "expected the stream to end after event {at}, found {found}",
        TERMINATION,
    ),
    Rule(
        "data-after-done",
        "Nothing but comments follows data: [DONE].",
        "expected nothing after [DONE] at event {at}, found {found}",
        TERMINATION,
    ),
    Rule(
        "usage-missing",
        "response.completed and response.incomplete carry a usage object (Responses has no "
        "include_usage: usage always comes last).",
        "expected a usage object on {kind}, found {found}",
        USAGE,
    ),
    Rule(
        "usage-arithmetic",
        "Usage has integer counts with total_tokens = input_tokens + output_tokens, and "
        "cached/reasoning details within them.",
        "{found}",
        USAGE,
    ),
    Rule(
        "index-order",
        "Each response.output_item.added takes the next output_index (0, 1, 2...), and each "
        "content or summary part the next index within its item.",
        "expected {what} {want} on {kind}, found {found}",
        ORDERING,
    ),
    Rule(
        "item-not-open",
        "Every event of an output item comes between its response.output_item.added and its "
        "response.output_item.done.",
        "expected {kind} while output item {n} is open, found it {found}",
        ORDERING,
    ),
    Rule(
        "part-not-open",
        "Every delta, .done and annotation of a content or summary part comes between the part's "
        ".added and .done.",
        "expected {kind} while {part} of output item {n} is open, found it {found}",
        ORDERING,
    ),
    Rule(
        "left-open",
        "Every part is done before its item, and every item before response.completed.",
        "expected {what} done before {when}, found it still open",
        ORDERING,
    ),
    Rule(
        "item-identity-changed",
        "An item's events name it by its id (item_id), and response.output_item.done repeats the "
        "added item's type, id and call_id.",
        "expected {what} {want!r} as added at event {at}, found {found}",
    ),
    Rule(
        "event-wrong-item-type",
        "Text and refusal events target message items, argument events function_call items, "
        "reasoning events reasoning items.",
        "expected {kind} on a {want} item, found output item {n} is a {found!r}",
    ),
    Rule(
        "done-text-mismatch",
        "Each .done event's full text (text, arguments, refusal, part, item) equals the part's "
        "initial text plus its deltas.",
        "expected {field} {want} (the initial text plus deltas) on {kind}, found {found}",
    ),
    Rule(
        "tool-arguments-invalid",
        "A function_call's final arguments parse as JSON.",
        "expected JSON arguments for output item {n}, found {found}",
    ),
    Rule(
        "final-output-mismatch",
        "The terminal response's output repeats the streamed items: same count, types, texts, "
        "names and arguments.",
        "expected the {kind} output to repeat the streamed items, found {found}",
    ),
)
"""Every rule ``check`` enforces; a Violation's rule is one of these."""
