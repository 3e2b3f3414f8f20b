"""The Gemini stream rules: one pass over the events of an SSE or JSON-array stream.

Beside ``dialect`` (which serves the routes and synthesizes); imports only ``model``, the
kit and ``common``. The framing rules come from google-genai's parser (sdk-behaviour.md
§2.3: a line that is not ``data: `` + JSON raises ``UnknownApiResponseError``) and from
the array form's syntax; the chunk rules from wire-formats.md §7 and §12.8, checked
against every recording (a rule that fired on one was wrong, and was changed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.rules import Findings, Rule, RuleTable
from mockserver.dialects._kit.wire import short
from mockserver.dialects.gemini.common import field, target
from mockserver.model import Event, Request, Violation

RULES = RuleTable(
    Rule(
        "line-not-data",
        "Every non-blank SSE line is 'data: ' with the space: google-genai raises on a comment, "
        "an event:, id: or retry: line, and on 'data:' without the space.",
        "expected only 'data: ' lines, found {found}",
    ),
    Rule(
        "done-sentinel",
        "No data: [DONE]: a Gemini stream just ends, and google-genai fails to parse [DONE] as "
        "JSON.",
        "expected the stream to just end, found data: [DONE]",
    ),
    Rule(
        "array-punctuation",
        "A JSON-array stream opens with '[', puts a ',' before every later element and nothing "
        "but ']' after the last one.",
        "expected {want}, found {found}",
    ),
    Rule(
        "array-not-closed",
        "A JSON-array stream ends with its closing ']' (clients that parse the array, such as "
        "ijson, raise on a cut one).",
        "expected the closing ']' at the end, found {found}",
    ),
    Rule(
        "chunk-not-json",
        "Every chunk is JSON text (google-genai parses each with json.loads).",
        "expected a JSON chunk, found {found}",
    ),
    Rule(
        "chunk-shape",
        "Every chunk is a JSON object; candidates, when present, a list of objects with integer "
        "indexes whose content.parts is a list of objects.",
        "expected {want}, found {found}",
    ),
    Rule(
        "event-after-error",
        "A mid-stream error (a chunk with an 'error' key, which google-genai raises) ends the "
        "stream.",
        "expected the stream to end after the error at event {at}, found {found}",
    ),
    Rule(
        "usage-missing",
        "Every chunk carries usageMetadata: Gemini sends the running counts on each chunk.",
        "expected usageMetadata on every chunk, found a chunk without it",
    ),
    Rule(
        "usage-arithmetic",
        "usageMetadata counts are non-negative integers and totalTokenCount = promptTokenCount "
        "+ candidatesTokenCount + thoughtsTokenCount + toolUsePromptTokenCount (absent counts "
        "are 0).",
        "expected {want}, found {found}",
    ),
    Rule(
        "usage-final-not-largest",
        "The last chunk's totalTokenCount, the complete count, is the largest of the stream.",
        "expected the last totalTokenCount to be the largest, found {last} after {most} at "
        "event {at}",
    ),
    Rule(
        "finish-reason-not-last",
        "A candidate's finishReason comes on its last chunk(s): later chunks of that candidate "
        "carry no content and no other finishReason.",
        "expected nothing more for candidate {n} after its finishReason at event {at}, found "
        "{found}",
    ),
    Rule(
        "finish-reason-missing",
        "Every candidate gets a finishReason by the end of the stream, unless a mid-stream error "
        "ended it.",
        "expected a finishReason for candidate {n}, found none",
    ),
    Rule(
        "function-call-incomplete",
        "A functionCall arrives whole: a non-empty name and args (when present) a JSON object, "
        "unless the request asked streamFunctionCallArguments.",
        "expected a whole functionCall with a name and object args, found {found}",
    ),
    Rule(
        "response-id-changed",
        "responseId and modelVersion are the same on every chunk.",
        "expected {was} as on event {at}, found {found}",
    ),
)
"""Every rule ``check`` enforces: its id (a Violation's rule), what it requires, and what a
violation says."""

_LINE = re.compile(rb"\r\n|\r|\n")
_COUNTS: tuple[str, ...] = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
_COUNTS += ("toolUsePromptTokenCount",)
_QUIET_PART_KEYS = frozenset({"text", "thought", "thoughtSignature"})


def is_sse(request: Request | None, events: Sequence[Event]) -> bool:
    """SSE when the stream request says ``alt=sse``; without a Gemini stream request,
    unless the first event opens a JSON array."""
    if request is not None and target(request)[1] == "streamGenerateContent":
        return request.query_value("alt") == "sse"
    first = next((e.raw.lstrip() for e in events if e.raw.strip()), b"")
    return not first.startswith(b"[")


def streamed_arguments(request: Request | None) -> bool:
    body = request.json if request is not None else None
    path = ("toolConfig", "functionCallingConfig", "streamFunctionCallArguments")
    return field(body, *path) is True


def _has_content(part: Any) -> bool:
    if not isinstance(part, dict):
        return True
    return bool(part.get("text")) or any(key not in _QUIET_PART_KEYS for key in part)


class _Checker:
    def __init__(self, request: Request | None, events: Sequence[Event]) -> None:
        self.events = events
        self.sse = is_sse(request, events)
        self.fragments_ok = streamed_arguments(request)
        self.found = Findings(RULES)
        self.error_at: int | None = None
        self.finished: dict[int, tuple[int, Any] | None] = {}  # candidate -> (event, reason)
        self.first: tuple[int, dict[str, Any]] | None = None
        self.most: tuple[int, int] | None = None  # (event, largest total so far)
        self.last_total: tuple[int, int] | None = None

    def run(self) -> list[Violation]:
        for i, event in enumerate(self.events):
            if self.sse:
                self.lines(i, event)
            elif event.raw:
                self.punctuation(i, event)
            data = event.data
            if data is None or (self.sse and data.strip() == "[DONE]"):
                if data is not None:
                    self.found.flag("done-sentinel", i)
                continue
            if self.error_at is not None:
                self.found.flag("event-after-error", i, at=self.error_at, found=short(data))
                continue
            try:
                chunk = json.loads(data)
            except (ValueError, RecursionError):
                self.found.flag("chunk-not-json", i, found=short(data))
                continue
            if isinstance(chunk, dict) and "error" in chunk:
                self.error_at = i
            else:
                self.chunk(i, chunk)
        self.end()
        return self.found.violations()

    def lines(self, i: int, event: Event) -> None:
        if event.raw:
            lines = [line for line in _LINE.split(event.raw) if line]
            bad = [line.decode("utf-8", "replace") for line in lines if line[:6] != b"data: "]
        else:  # an Event built by hand: judge its fields
            bad = [f":{c}" for c in event.comments]
            bad += [f"{k}: {v}" for k, v in (("event", event.event), ("id", event.id)) if v]
            bad += [f"retry: {event.retry}"] if event.retry is not None else []
        if bad:
            self.found.flag("line-not-data", i, found=short(bad[0]))

    def punctuation(self, i: int, event: Event) -> None:
        raw = event.raw.strip(b" \t\r\n")
        if event.data is not None:
            ok = raw.startswith(b"[" if i == 0 else b",")
            want = "'[' before the first element" if i == 0 else "',' before the element"
        else:  # the closing frame: only ']' ('[]' for an empty array), at the end
            ok = raw in (b"[]" if i == 0 else b"]", b"") and i == len(self.events) - 1
            want = "only ']' after the last element"
        if not ok:
            found = short(raw.decode("utf-8", "replace")[:30])
            self.found.flag("array-punctuation", i, want=want, found=found)

    def chunk(self, i: int, chunk: Any) -> None:
        candidates = chunk.get("candidates", []) if isinstance(chunk, dict) else None
        if not isinstance(candidates, list) or not all(_shaped(c) for c in candidates):
            want = "an object" if not isinstance(chunk, dict) else "candidates with a list of parts"
            self.found.flag("chunk-shape", i, want=want, found=short(chunk))
            return
        self.same_stream(i, chunk)
        self.usage(i, chunk.get("usageMetadata"))
        for position, candidate in enumerate(candidates):
            n = candidate.get("index", position)
            parts = (candidate.get("content") or {}).get("parts") or []
            for part in parts:
                call = part.get("functionCall")
                if "functionCall" in part and not self.fragments_ok and not _whole(call):
                    self.found.flag("function-call-incomplete", i, found=short(call))
            reason = candidate.get("finishReason")
            done = self.finished.setdefault(n, None)
            if done is not None:
                content = [p for p in parts if _has_content(p)]
                if content or (reason is not None and reason != done[1]):
                    found = short(content[0]) if content else f"finishReason {reason!r}"
                    self.found.flag("finish-reason-not-last", i, n=n, at=done[0], found=found)
            elif reason is not None:
                self.finished[n] = (i, reason)

    def same_stream(self, i: int, chunk: dict[str, Any]) -> None:
        if self.first is None:
            self.first = (i, chunk)
            return
        at, first = self.first
        keys = ("responseId", "modelVersion")
        if changed := [k for k in keys if chunk.get(k) != first.get(k)]:
            was = " and ".join(f"{k} {first.get(k)!r}" for k in changed)
            found = " and ".join(f"{k} {chunk.get(k)!r}" for k in changed)
            self.found.flag("response-id-changed", i, was=was, at=at, found=found)

    def usage(self, i: int, usage: Any) -> None:
        if usage is None:
            self.found.flag("usage-missing", i)
            self.last_total = None
            return
        counts = [usage.get(k, 0) if isinstance(usage, dict) else None for k in _COUNTS]
        total = usage.get("totalTokenCount", 0) if isinstance(usage, dict) else None
        if not all(type(c) is int and c >= 0 for c in [*counts, total]):
            self.found.flag("usage-arithmetic", i, want="integer token counts", found=short(usage))
            self.last_total = None
            return
        assert isinstance(total, int)
        if total != sum(c for c in counts if isinstance(c, int)):
            terms = " + ".join(str(c) for c in counts)
            self.found.flag("usage-arithmetic", i, want=f"totalTokenCount = {terms}", found=total)
        self.last_total = (i, total)
        if self.most is None or total > self.most[1]:
            self.most = (i, total)

    def end(self) -> None:
        if not self.sse and self.events and self.events[-1].raw:
            end = self.events[-1]
            if end.data is not None or not end.raw.rstrip(b" \t\r\n").endswith(b"]"):
                tail = end.raw[-20:].decode("utf-8", "replace")
                self.found.flag("array-not-closed", -1, found=f"the end after {tail!r}")
        if self.error_at is not None:
            return
        last, most = self.last_total, self.most
        if last is not None and most is not None and last[1] < most[1]:
            at, total = last
            self.found.flag("usage-final-not-largest", at, last=total, most=most[1], at=most[0])
        for n, done in sorted(self.finished.items()):
            if done is None:
                self.found.flag("finish-reason-missing", -1, n=n)


def _shaped(candidate: Any) -> bool:
    if not isinstance(candidate, dict):
        return False
    if "index" in candidate and type(candidate["index"]) is not int:
        return False
    content = candidate.get("content")
    if content is None:
        return True
    parts = content.get("parts") if isinstance(content, dict) else None
    return isinstance(content, dict) and (
        parts is None or (isinstance(parts, list) and all(isinstance(p, dict) for p in parts))
    )


def _whole(call: Any) -> bool:
    return (
        isinstance(call, dict)
        and isinstance(call.get("name"), str)
        and bool(call["name"])
        and isinstance(call.get("args", {}), dict)
    )


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest."""
    return _Checker(request, events).run()
