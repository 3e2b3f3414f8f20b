"""The Bedrock stream rules enforced: one pass over the frames of a binary AWS event stream.

Beside ``bedrock`` (which serves the routes, synthesizes, and hands ``check`` to one of
these checkers); imports only ``model``, the event-stream framing and the rule table
(``rules.py``), whose sentences the findings are worded in. In the flow this sits
off to the side: it judges a stream already sent or recorded, so it must never change,
answer or re-frame one, and never raise on a broken one (a broken stream is what it is
for; what it finds comes back as Violations). ``ConverseChecker`` walks a
``converse-stream`` (messageStart -> blocks -> messageStop -> metadata); ``InvokeChecker``
walks ``invoke-with-response-stream`` chunks, whose ``bytes`` hold the model's own events.
Both share the frame rules (CRCs, message types, exceptions) in ``_Checker``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.dialects._kit.rules import Findings
from mockserver.dialects._kit.wire import short
from mockserver.dialects.bedrock.rules import (
    CONVERSE_EVENTS,
    CONVERSE_EXCEPTIONS,
    FRAME_RULES,
    INVOKE_EXCEPTIONS,
    RULES,
    STOP_REASONS,
)
from mockserver.framing import aws_eventstream
from mockserver.model import Event, Violation


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


class _Checker:
    """One pass over the frames: the frame rules here, each event's payload to ``on_event``,
    ``end`` for what must have come. An exception, or a frame botocore fails on, ends the
    stream for the client: what is missing after it is not blamed, and after a broken frame
    only the framing of the rest is judged."""

    events: frozenset[str] = frozenset()
    exceptions: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.findings = Findings(RULES)
        self.ended_at: int | None = None  # the exception frame that ended the stream
        self.broken = False

    def flag(self, rule: str, index: int, **details: Any) -> None:
        self.findings.flag(rule, index, **details)

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            if (problem := aws_eventstream.problem(event)) is not None:
                self.broken = True
                self.flag(FRAME_RULES.get(problem[0], "frame-truncated"), i, found=problem[1])
                continue
            if self.broken:
                continue  # botocore raised at the broken frame: the client reads no further
            kind = aws_eventstream.headers(event).get(":message-type")
            name = event.event
            if kind not in ("event", "exception", "error") or not name:
                self.flag("message-type", i, found=f"{kind!r} naming {name!r}")
            elif self.ended_at is not None:
                self.flag("event-after-exception", i, at=self.ended_at, found=f"{kind} {name}")
            elif kind == "error":
                self.ended_at = i
            elif name not in (known := self.exceptions if kind == "exception" else self.events):
                self.flag("event-type-unknown", i, want=", ".join(sorted(known)), found=name)
            elif not isinstance(payload := _json(event.data or ""), dict):
                self.flag("payload-not-json", i, found=short(event.data or ""))
            elif kind == "exception":
                self.ended_at = i
            else:
                self.on_event(i, name, payload)
        if self.ended_at is None and not self.broken:
            self.end()
        return self.violations()

    def on_event(self, i: int, name: str, payload: dict[str, Any]) -> None: ...

    def end(self) -> None: ...

    def violations(self) -> list[Violation]:
        """One Violation per rule, at its first event, counting the rest."""
        return self.findings.violations()


@dataclass
class _Block:
    kind: str | None = None  # the member its deltas carry (toolUse from a toolUse start)
    events: int = 0
    fragments: list[str] = field(default_factory=list)


_DELTA_SHAPES: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str),
    "toolUse": lambda v: isinstance(v, dict) and isinstance(v.get("input"), str),
    "reasoningContent": lambda v: isinstance(v, dict),
}


class ConverseChecker(_Checker):
    """messageStart -> blocks (an optional contentBlockStart, deltas, a contentBlockStop,
    one block at a time) -> messageStop -> metadata (wire-formats.md §10)."""

    events = CONVERSE_EVENTS
    exceptions = CONVERSE_EXCEPTIONS

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.start_at: int | None = None
        self.stop_at: int | None = None
        self.metadata_at: int | None = None
        self.blocks: list[_Block] = []
        self.open: int | None = None  # the block whose contentBlockStop is awaited

    def on_event(self, i: int, name: str, payload: dict[str, Any]) -> None:
        self.seen += 1
        if self.metadata_at is not None:
            self.flag("metadata-last", i, found=f"{name} after it (event {self.metadata_at})")
        elif name == "messageStart":
            if self.seen > 1:
                self.flag("message-start-first", i, found=f"messageStart as event {self.seen}")
            elif payload.get("role") != "assistant":
                self.flag("message-start-first", i, found=f"role {short(payload.get('role'))}")
            self.start_at = i if self.start_at is None else self.start_at
        elif self.seen == 1:
            self.flag("message-start-first", i, found=f"{name} first")
        if self.metadata_at is not None or name == "messageStart":
            return
        if name == "messageStop":
            self.message_stop(i, payload)
        elif name == "metadata":
            self.metadata(i, payload)
        elif self.stop_at is not None:
            self.flag("message-stop-once", i, found=f"{name} after it (event {self.stop_at})")
        else:
            self.block_event(i, name, payload)

    def block_event(self, i: int, name: str, payload: dict[str, Any]) -> None:
        n = payload.get("contentBlockIndex")
        if not isinstance(n, int) or not _count(n):
            self.flag("block-index-invalid", i, found=short(n) if n is not None else "none")
            return
        if n != self.open:
            if n != len(self.blocks):
                want = f"a new block {len(self.blocks)}"
                if self.open is not None:
                    want = f"block {self.open} or {want}"
                self.flag("block-order", i, want=want, found=f"{name} of block {n}")
                return
            if self.open is not None:  # the next block began: the open one never stopped
                self.flag("block-not-stopped", i, n=self.open, found=f"{name} of block {n}")
            self.blocks.append(_Block())
            self.open = n
        block = self.blocks[n]
        block.events += 1
        if name == "contentBlockStart":
            self.block_start(i, n, block, payload.get("start"))
        elif name == "contentBlockDelta":
            self.block_delta(i, n, block, payload.get("delta"))
        else:
            self.open = None
            joined = "".join(block.fragments)
            if block.kind == "toolUse" and joined and _json(joined) is None and joined != "null":
                self.flag("tool-input-invalid", i, n=n, found=short(joined))

    def block_start(self, i: int, n: int, block: _Block, start: Any) -> None:
        found = None
        if block.events > 1:
            found = "contentBlockStart after other events of the block"
        elif not isinstance(start, dict) or len(start) != 1:
            found = f"start {short(start)}"
        elif "toolUse" in start:
            tool = start["toolUse"] if isinstance(start["toolUse"], dict) else {}
            if missing := [k for k in ("toolUseId", "name") if not tool.get(k)]:
                found = f"a toolUse start without {' or '.join(missing)}"
        if found:
            self.flag("block-start-invalid", i, n=n, found=found)
        elif isinstance(start, dict):
            block.kind = next(iter(start))

    def block_delta(self, i: int, n: int, block: _Block, delta: Any) -> None:
        member = next(iter(delta)) if isinstance(delta, dict) and len(delta) == 1 else None
        if member is None or not _DELTA_SHAPES.get(member, lambda v: True)(delta[member]):
            self.flag("delta-invalid", i, found=short(delta))
        elif member != (block.kind or member) or (member == "toolUse" and block.kind is None):
            self.flag("delta-kind-mismatch", i, want=block.kind or "non-tool", n=n, found=member)
        else:
            block.kind = member
            if member == "toolUse":
                block.fragments.append(delta[member]["input"])

    def message_stop(self, i: int, payload: dict[str, Any]) -> None:
        if self.stop_at is not None:
            self.flag("message-stop-once", i, found=f"another after event {self.stop_at}")
            return
        self.stop_at = i
        if self.open is not None:
            self.flag("block-not-stopped", i, n=self.open, found="messageStop first")
            self.open = None
        reason = payload.get("stopReason")
        if not isinstance(reason, str) or reason not in STOP_REASONS:  # a list is unhashable
            self.flag("stop-reason-invalid", i, found=short(reason))
        elif reason == "tool_use" and all(block.kind != "toolUse" for block in self.blocks):
            self.flag("stop-reason-invalid", i, found="tool_use without a toolUse block")

    def metadata(self, i: int, payload: dict[str, Any]) -> None:
        self.metadata_at = i
        if self.stop_at is None:
            self.flag("message-stop-once", i, found="metadata first")
            self.stop_at = i  # reported: the end does not ask for it again
        usage, metrics = payload.get("usage"), payload.get("metrics")
        names = ("inputTokens", "outputTokens", "totalTokens")
        if not (isinstance(usage, dict) and all(_count(usage.get(k)) for k in names)) or not (
            isinstance(metrics, dict) and _count(metrics.get("latencyMs"))
        ):
            self.flag(
                "metadata-invalid", i, found=f"usage {short(usage)}, metrics {short(metrics)}"
            )
            return
        cache = [usage.get(k) for k in ("cacheReadInputTokens", "cacheWriteInputTokens")]
        parts = [usage["inputTokens"], usage["outputTokens"], *(c for c in cache if _count(c))]
        if usage["totalTokens"] != sum(parts):
            want = " + ".join(map(str, parts))
            self.flag("usage-arithmetic", i, want=want, found=usage["totalTokens"])

    def end(self) -> None:
        if self.seen == 0:
            self.flag("message-start-first", -1, found="no event")
        if self.open is not None:
            self.flag("block-not-stopped", -1, n=self.open, found="the end")
        if self.stop_at is None:
            self.flag("message-stop-once", -1, found="none")
        if self.metadata_at is None:
            self.flag("metadata-last", -1, found="none")


class InvokeChecker(_Checker):
    """``chunk`` events whose ``bytes`` decode to the model's own JSON events; for an
    Anthropic model those run message_start ... message_stop."""

    events = frozenset({"chunk"})
    exceptions = INVOKE_EXCEPTIONS

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[tuple[int, dict[str, Any]]] = []

    def on_event(self, i: int, name: str, payload: dict[str, Any]) -> None:
        raw = payload.get("bytes")
        try:
            decoded = _json(base64.b64decode(raw, validate=True).decode()) if raw else None
        except (ValueError, TypeError):  # binascii.Error and UnicodeDecodeError included
            decoded = None
        if isinstance(decoded, dict):
            self.chunks.append((i, decoded))
        else:
            self.flag("chunk-invalid", i, found=short(payload))

    def end(self) -> None:
        if not self.chunks:
            return
        types = [(i, chunk.get("type")) for i, chunk in self.chunks]
        if any(kind == "message_start" for _, kind in types):  # an Anthropic model's events
            for want, (i, kind) in (("message_start", types[0]), ("message_stop", types[-1])):
                where = "first" if want == "message_start" else "last"
                again = [j for j, k in types if k == want][1:]
                if kind != want:
                    self.flag("anthropic-order", i, want=f"{want} {where}", found=repr(kind))
                elif again:
                    found = f"another at event {again[0]}"
                    self.flag("anthropic-order", again[0], want=f"{want} {where}", found=found)
        i, last = self.chunks[-1]
        metrics = last.get("amazon-bedrock-invocationMetrics")
        names = ("inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency")
        if not (isinstance(metrics, dict) and all(_count(metrics.get(k)) for k in names)):
            self.flag("invocation-metrics-missing", i, found=short(metrics))
