"""The rules every OpenAI chunk stream obeys, as one table, and the one pass that checks them.

Where it sits: a dialect's ``check`` hands a recorded or live SSE stream here after
framing has cut it into events (chat and legacy Completions subclass ``StreamChecker``
for what their choices carry, and add their rules to ``STREAM_RULES``). It reads events
and returns violations; wire helpers (ids, headers, errors, usage objects) live in
``common`` and the kit's ``wire``, which this module only borrows from.

What it must never do: synthesize or alter bytes, raise on a malformed stream (a bad
stream is a finding, not a crash), or change a rule id or sentence: the bundled
cassettes, the knobs in ``pytest_plugin`` and users' reports all pin them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.rules import Findings, Rule, RuleTable
from mockserver.dialects._kit.wire import short
from mockserver.dialects.openai.common import include_usage
from mockserver.model import Event, Request, Violation

ORDERING = frozenset({"ordering"})
TERMINATION = frozenset({"termination"})
USAGE = frozenset({"usage"})

STREAM_RULES = RuleTable(
    Rule(
        "data-not-json",
        "Every data event is JSON, except the terminal [DONE].",
        "expected a JSON chunk or [DONE], found {found}",
    ),
    Rule(
        "event-without-data",
        "No block has event:, id: or retry: without data: (the openai SDK fails on it); "
        "comment-only keep-alive blocks are fine.",
        "expected a data: line in a non-comment block, found only {found}",
    ),
    Rule(
        "done-missing",
        "The stream ends with data: [DONE], unless a mid-stream error ended it.",
        "expected data: [DONE] as the last event, found the end without it",
        TERMINATION,
    ),
    Rule(
        "data-after-done",
        "No data event, not even a second [DONE], follows [DONE].",
        "expected nothing after [DONE] at event {at}, found {found}",
        TERMINATION,
    ),
    Rule(
        "event-after-error",
        "A mid-stream error (a top-level error key, or event: error) ends the stream: only "
        "[DONE] may follow it.",
        "expected the stream to end after the error at event {at}, found {found}",
        ORDERING,
    ),
    Rule(
        "chunk-shape",
        "Every chunk is a JSON object whose choices is a list of objects with integer indexes "
        "(len(chunk.choices) crashes otherwise).",
        "expected an object with a list of choices with integer indexes, found {found}",
    ),
    Rule(
        "chunk-identity-changed",
        "id, model and created are the same on every chunk; Azure's leading prompt-filter "
        "chunk (id '', created 0) is exempt.",
        "expected {was} as on event {at}, found {found}",
    ),
    Rule(
        "object-not-chunk",
        "object names the endpoint's chunk type (the SDK's stream helper drops other chunks); "
        "Azure's leading prompt-filter chunk is exempt.",
        "expected object {want!r}, found {found!r}",
    ),
    Rule(
        "finish-reason-repeated",
        "finish_reason is non-null at most once per choice index.",
        "expected one finish_reason for choice {n}, found another after the one at event {at}",
        ORDERING,
    ),
    Rule(
        "finish-reason-missing",
        "Every choice index gets a finish_reason, unless a mid-stream error ended the stream.",
        "expected a finish_reason for choice {n}, found none",
        ORDERING,
    ),
    Rule(
        "usage-chunk-missing",
        "With include_usage, a usage chunk (choices == [] and a usage object) arrives; not "
        "repeated when usage-on-choices-chunk fired.",
        "expected a usage chunk since include_usage was set, found none",
        USAGE,
    ),
    Rule(
        "usage-chunk-duplicate",
        "At most one usage chunk.",
        "expected one usage chunk, found another after event {at}",
        USAGE,
    ),
    Rule(
        "usage-chunk-not-last",
        "No chunk with choices follows the usage chunk, which so comes after every "
        "finish_reason (choice-less extras, e.g. moderation, may follow).",
        "expected only [DONE] after the usage chunk at event {at}, found a chunk with choices",
        ORDERING | USAGE,
    ),
    Rule(
        "usage-on-choices-chunk",
        "With include_usage, no chunk with choices carries a usage object (the LiteLLM proxy "
        "bug: clients read usage where choices == []).",
        "expected usage on its own chunk with choices == [], found it on a chunk with choices",
        USAGE,
    ),
    Rule(
        "usage-null-missing",
        "With include_usage, every other chunk carries 'usage': null, key present (Ollama- "
        "and OpenRouter-style servers omit it).",
        "expected 'usage': null on every chunk but the usage chunk, found no usage key",
        USAGE,
    ),
    Rule(
        "usage-unrequested",
        "Without include_usage in the request, no usage chunk is sent, and no usage rides on "
        "a chunk that finishes no choice (usage on a finish chunk, unasked, is tolerated: "
        "Mistral and Groq send it there, and a client reading the last chunk gets it once).",
        "expected no usage {where} since include_usage was not set, found {found}",
        USAGE,
    ),
    Rule(
        "usage-arithmetic",
        "A usage object has integer token counts and total_tokens = prompt_tokens + "
        "completion_tokens.",
        "{found}",
        USAGE,
    ),
)
"""The rules every OpenAI chunk stream obeys, whatever its choices carry; the dialects add
theirs (``chat.RULES``, ``completions.RULES``). Groups: ``ordering`` (chunk order),
``termination`` (``[DONE]``), ``usage`` (the include_usage contract)."""


def usage_problem(usage: Any) -> str | None:
    """Why a usage object's numbers do not add up, or None when they do."""
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    counts = [usage.get(name) for name in names] if isinstance(usage, dict) else [None] * 3
    prompt, completion, total = (c if type(c) is int and c >= 0 else -1 for c in counts)
    if min(prompt, completion, total) < 0:
        return f"expected integer {', '.join(names)} in the usage object, found {short(usage)}"
    if total != prompt + completion:
        return f"expected total_tokens = {prompt} + {completion}, found {total}"
    return None


def _finishes_none(choices: list[dict[str, Any]]) -> bool:
    return all(choice.get("finish_reason") is None for choice in choices)


class StreamChecker:
    """One pass over a chunk stream, collecting findings worded by ``table``.

    Subclasses see each choice through ``on_choice`` (before its finish_reason is taken
    into account), each finish through ``on_finish``, and unfinished choices at the end
    through ``on_unfinished``; their rules join ``STREAM_RULES`` in the table they pass.
    """

    def __init__(self, request: Request | None, chunk_object: str, table: RuleTable) -> None:
        self.include_usage = include_usage(request)
        self.chunk_object = chunk_object
        self.findings = Findings(table)
        self.done_at: int | None = None
        self.error_at: int | None = None
        self.usage_at: int | None = None
        self.usage_on_choices = False
        self.first: tuple[int, dict[str, Any]] | None = None
        self.finished: dict[int, int | None] = {}  # choice index -> event of its finish

    def flag(self, rule: str, index: int, **details: Any) -> None:
        self.findings.flag(rule, index, **details)

    def on_choice(self, i: int, n: int, choice: dict[str, Any]) -> None: ...

    def on_finish(self, i: int, n: int) -> None: ...

    def on_unfinished(self, n: int) -> None: ...

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            data = event.data
            if data is None:
                fields = [("event", event.event), ("id", event.id), ("retry", event.retry)]
                if named := [f"{name}: {value}" for name, value in fields if value is not None]:
                    self.flag("event-without-data", i, found=", ".join(named))
            elif self.done_at is not None:
                self.flag("data-after-done", i, at=self.done_at, found=short(data))
            elif data.startswith("[DONE]"):  # the openai SDK's own test
                self.done_at = i
            elif self.error_at is not None:
                self.flag("event-after-error", i, at=self.error_at, found=short(data))
            else:
                try:
                    chunk = json.loads(data)
                except (ValueError, RecursionError):
                    chunk = None
                    self.flag("data-not-json", i, found=short(data))
                if event.event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                    self.error_at = i  # the SDK raises here: nothing else in it reaches users
                elif chunk is not None:
                    self.chunk(i, chunk)
        self.end()
        return self.violations()

    def chunk(self, i: int, chunk: Any) -> None:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not all(
            isinstance(c, dict) and type(c.get("index")) is int for c in choices
        ):
            self.flag("chunk-shape", i, found=short(chunk))
            return
        usage = chunk.get("usage")
        prefilter = (  # Azure's: empty choices, no usage, before any model chunk
            self.first is None
            and not choices
            and usage is None
            and ("prompt_filter_results" in chunk or "prompt_annotations" in chunk)
        )
        if not prefilter:
            self.same_stream(i, chunk)
        if usage is not None and (problem := usage_problem(usage)):
            self.flag("usage-arithmetic", i, found=problem)
        if not choices and usage is not None:
            if self.usage_at is not None:
                self.flag("usage-chunk-duplicate", i, at=self.usage_at)
            elif self.include_usage is False:
                self.flag("usage-unrequested", i, where="chunk", found="one")
            self.usage_at = self.usage_at if self.usage_at is not None else i
        elif choices and self.usage_at is not None:
            self.flag("usage-chunk-not-last", i, at=self.usage_at)
        elif self.include_usage and choices and usage is not None:
            self.usage_on_choices = True
            self.flag("usage-on-choices-chunk", i)
        elif self.include_usage and "usage" not in chunk and not prefilter:
            self.flag("usage-null-missing", i)
        elif self.include_usage is False and usage is not None and _finishes_none(choices):
            # Unasked usage on a finish chunk is Mistral's and Groq's way (the recordings
            # win); on any other chunk no server in the corpus sends it, and clients that
            # add up per-chunk usage (LangChain's chunk merging) would count it twice.
            found = "it on a chunk that finishes no choice"
            self.flag("usage-unrequested", i, where="outside a finish chunk", found=found)
        for choice in choices:
            n = choice["index"]
            self.finished.setdefault(n, None)
            self.on_choice(i, n, choice)
            if choice.get("finish_reason") is None:
                continue
            if (at := self.finished[n]) is not None:
                self.flag("finish-reason-repeated", i, n=n, at=at)
            else:
                self.finished[n] = i
                self.on_finish(i, n)

    def same_stream(self, i: int, chunk: dict[str, Any]) -> None:
        if chunk.get("object") != self.chunk_object:
            self.flag("object-not-chunk", i, want=self.chunk_object, found=chunk.get("object"))
        if self.first is None:
            self.first = (i, chunk)
            return
        at, first = self.first
        if changed := [k for k in ("id", "model", "created") if chunk.get(k) != first.get(k)]:
            was = " and ".join(f"{k} {first.get(k)!r}" for k in changed)
            found = " and ".join(f"{k} {chunk.get(k)!r}" for k in changed)
            self.flag("chunk-identity-changed", i, was=was, at=at, found=found)

    def end(self) -> None:
        if self.error_at is not None:
            return  # the error is why anything after it is missing
        if self.done_at is None:
            self.flag("done-missing", -1)
        for n, at in sorted(self.finished.items()):
            if at is None:
                self.flag("finish-reason-missing", -1, n=n)
                self.on_unfinished(n)
        if self.include_usage and self.usage_at is None and not self.usage_on_choices:
            self.flag("usage-chunk-missing", -1)

    def violations(self) -> list[Violation]:
        """One Violation per rule, at its first event, counting the rest: a report stays
        readable when every chunk of a stream breaks the same rule."""
        return self.findings.violations()
