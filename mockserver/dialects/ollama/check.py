"""The rules of Ollama's NDJSON streams (``/api/chat``, ``/api/generate``) as one pass
over the lines: wire-formats.md §8 and §12.9, sdk-behaviour.md §2.4 (the ollama client
``json.loads`` every line, so a blank line or an SSE ``data:`` prefix crashes it), and the
corpus recordings (ollama/native-*-stream-ndjson), which pass every rule.

The ``ollama`` dialect module re-exports ``RULES`` and ``check``; ``endpoint`` (which
endpoint a path names, prefix allowed) lives here because the rules depend on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit.rules import Findings, Rule, RuleTable
from mockserver.dialects._kit.wire import short
from mockserver.model import Event, Request, Violation

ENDPOINTS = {
    "/api/chat": "chat",
    "/api/generate": "generate",
    "/api/embed": "embed",
    "/api/embeddings": "embeddings",
    "/api/tags": "tags",
}
"""Path suffix -> endpoint; a prefix in front (``OLLAMA_HOST=http://h:p/ollama``) is fine."""

METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)

RULES = RuleTable(
    Rule(
        "line-blank",
        "No blank line: the ollama client json.loads every line and fails on it.",
        "expected one JSON object per line, found a blank line",
    ),
    Rule(
        "line-not-json",
        "Every line is one standalone JSON object (no SSE data: prefix, no JSON spread over "
        "several lines).",
        "expected one JSON object per line, found {found}",
    ),
    Rule(
        "line-unterminated",
        "Every line ends with a newline (checked when the raw bytes are known).",
        "expected a newline at the end of the line, found {found} without one",
    ),
    Rule(
        "done-not-boolean",
        "Every object carries done, true or false.",
        "expected done: true or false, found {found}",
    ),
    Rule(
        "done-missing",
        "The last object has done: true, unless an error line ended the stream.",
        "expected a last object with done: true, found the end without one",
    ),
    Rule(
        "line-after-done",
        "Exactly one object has done: true, and nothing follows it.",
        "expected nothing after the done: true object at event {at}, found {found}",
    ),
    Rule(
        "line-after-error",
        'An error line ({"error": ...}) ends the stream.',
        "expected nothing after the error line at event {at}, found {found}",
    ),
    Rule(
        "done-reason-early",
        "Objects with done: false carry no done_reason.",
        "expected no done_reason before done: true, found {found}",
    ),
    Rule(
        "eval-count-missing",
        "The done: true object carries eval_count (prompt_eval_count may be missing: Ollama "
        "omits it when the prompt was cached).",
        "expected eval_count on the done: true object, found none",
    ),
    Rule(
        "metric-invalid",
        "Counts and durations (total_duration, load_duration, prompt_eval_count, "
        "prompt_eval_duration, eval_count, eval_duration) are non-negative integers, durations "
        "in nanoseconds.",
        "expected {key} to be a non-negative integer, found {found}",
    ),
    Rule(
        "message-role-missing",
        "Every /api/chat object has a message object with a string role (the client's "
        "ChatResponse requires it); the role repeats on every chunk.",
        "expected a message object with a string role, found {found}",
    ),
    Rule(
        "text-not-string",
        "message.content, message.thinking, response and thinking are strings when present.",
        "expected {key} to be a string, found {found}",
    ),
    Rule(
        "tool-call-shape",
        "A tool call arrives whole as {function: {name, arguments}}, arguments a JSON object "
        "(not OpenAI's JSON string).",
        "expected a whole tool call with function.name and an object function.arguments, "
        "found {found}",
    ),
    Rule(
        "model-changed",
        "model is the same on every object of a stream.",
        "expected model {was} as on event {at}, found {found}",
    ),
)
"""Every rule ``check`` enforces: its id, what it requires, and what a violation says."""


def endpoint(request: Request) -> str:
    """chat, generate, embed, embeddings or tags ("" for another path)."""
    path = re.sub(r"/{2,}", "/", request.path.split("#", 1)[0]).rstrip("/")
    return next((name for suffix, name in ENDPOINTS.items() if path.endswith(suffix)), "")


class _Checker:
    """One pass over the lines of a stream, collecting findings in RULES' words."""

    def __init__(self, request: Request | None) -> None:
        self.kind = endpoint(request) if request is not None else ""
        self.findings = Findings(RULES)
        self.done_at: int | None = None
        self.error_at: int | None = None
        self.model: tuple[int, Any] | None = None

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            self.line(i, event)
        if self.done_at is None and self.error_at is None:
            self.findings.flag("done-missing", -1)
        return self.findings.violations()

    def line(self, i: int, event: Event) -> None:
        data = event.data or ""
        if event.raw and not event.raw.endswith(b"\n"):
            self.findings.flag("line-unterminated", i, found=short(data))
        if not data.strip():
            self.findings.flag("line-blank", i)
        elif self.error_at is not None:
            self.findings.flag("line-after-error", i, at=self.error_at, found=short(data))
        elif self.done_at is not None:
            self.findings.flag("line-after-done", i, at=self.done_at, found=short(data))
        else:
            try:
                chunk = json.loads(data)
            except (ValueError, RecursionError):
                chunk = None
            if not isinstance(chunk, dict):
                self.findings.flag("line-not-json", i, found=short(data))
            elif "error" in chunk:
                self.error_at = i  # the client raises ResponseError here
            else:
                self.chunk(i, chunk)

    def chunk(self, i: int, chunk: dict[str, Any]) -> None:
        done = chunk.get("done")
        if type(done) is not bool:
            self.findings.flag(
                "done-not-boolean", i, found=short(done) if "done" in chunk else "no done"
            )
        if self.model is None:
            self.model = (i, chunk.get("model"))
        elif chunk.get("model") != self.model[1]:
            at, was = self.model
            self.findings.flag(
                "model-changed", i, was=short(was), at=at, found=short(chunk.get("model"))
            )
        for key in METRICS:
            value = chunk.get(key)
            if key in chunk and not (type(value) is int and value >= 0):
                self.findings.flag("metric-invalid", i, key=key, found=short(value))
        kind = self.kind if self.kind in ("chat", "generate") else ""
        if kind == "chat" or (not kind and "message" in chunk):
            self.message(i, chunk.get("message"))
        else:
            self.texts(i, chunk, ("response", "thinking"), "")
        if done is True:
            self.done_at = i
            if "eval_count" not in chunk:
                self.findings.flag("eval-count-missing", i)
        elif chunk.get("done_reason") is not None:
            self.findings.flag("done-reason-early", i, found=short(chunk["done_reason"]))

    def texts(self, i: int, owner: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
        for key in keys:
            if owner.get(key) is not None and not isinstance(owner[key], str):
                self.findings.flag("text-not-string", i, key=where + key, found=short(owner[key]))

    def message(self, i: int, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            self.findings.flag("message-role-missing", i, found=short(message))
        if not isinstance(message, dict):
            return
        self.texts(i, message, ("content", "thinking"), "message.")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            self.findings.flag("tool-call-shape", i, found=short(calls))
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(function, dict)
                and isinstance(function.get("name"), str)
                and function["name"]
                and isinstance(function.get("arguments"), dict)
            ):
                self.findings.flag("tool-call-shape", i, found=short(call))


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one NDJSON stream, in one pass; never raises. A rule broken
    on many lines is reported once, at its first line, with a count of the rest."""
    return _Checker(request).run(events)
