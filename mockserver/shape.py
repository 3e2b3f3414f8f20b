"""The shape of an answer, not its text: what ``tapedeck drift`` compares between a
recording and a live upstream's answer to the same request.

Where it sits: off to the side of the flow, beside validation; it reads the model and a
dialect's framing (``Dialect.framing_for``) and nothing else. It knows no protocol by name:

- an event's type is its ``event:`` name (SSE, AWS event stream), else the ``type`` or
  ``object`` field of its JSON, else ``data`` (JSON without either), else its text when
  short (``[DONE]``);
- the order of event types counts, repeats do not: the order in which the types first
  appear is compared, so ``delta`` x N, or a second content block after the first, is no
  change (and a type that now comes before another it came after is);
- usage is whatever sits under a key named ``usage`` or ``usageMetadata``, at any depth; a
  finish reason the string under ``finish_reason``, ``stop_reason``, ``done_reason`` (or
  their camelCase spellings). Where usage sits is read in order with the finish reasons,
  so a usage chunk that moves before the finish, or onto it, is a change.

Two answers to one request differ in text, ids and counts, never in these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mockserver.dialects.contract import Dialect
from mockserver.model import Event, Request, Response, header

__all__ = ["Difference", "Shape", "compare", "shape_of"]

_USAGE = re.compile(r"(?i)\Ausage(?:_?metadata)?\Z")
_FINISH = re.compile(r"(?i)\A(?:finish|stop|done)_?reason\Z")
_MAX_DEPTH = 64  # deeper JSON is no protocol's shape, and a bound keeps the walk cheap
_MAX_BLOCK = 8  # the longest repeated block of event types folded into one
_SHOWN = 8  # paths listed per difference line


@dataclass(frozen=True, slots=True)
class Shape:
    """What an answer looks like: status, content type, event types in the order they
    first appear, the JSON field paths and value types per event type, where usage sits
    (per event carrying it or a finish reason, in order, repeats folded), the finish
    reasons (in order, runs folded)."""

    status: int
    content_type: str
    events: tuple[str, ...] = ()
    fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    types: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    """(event type, path): the JSON types seen there, null aside (a field that is null
    in one answer and a string in the next is one field)."""
    usage: tuple[str, ...] = ()
    finish: tuple[str, ...] = ()


Change = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a live answer differs from its recording: ``removed field`` ...; the detail
    shows the evidence (the paths, or what was and what is)."""

    change: Change
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.change} {self.what}: {self.detail}"


def shape_of(dialect: Dialect | None, request: Request, response: Response) -> Shape:
    """The shape of ``response`` to ``request``: a successful stream event by event (as the
    dialect frames it), any other answer as one event (its whole body)."""
    content_type = (header(response.headers, "content-type") or "").partition(";")[0]
    streaming = dialect is not None and 200 <= response.status < 300 and dialect.is_stream(request)
    if dialect is not None and streaming:
        events = dialect.framing_for(request).events(response.body)
    else:
        text = response.body.decode("utf-8", errors="replace")
        events = (Event(data=text),) if text.strip() else ()
    labels: list[str] = []
    fields: dict[str, set[str]] = {}
    types: dict[tuple[str, str], set[str]] = {}
    usage: list[str] = []
    finish: list[str] = []
    for event in events:
        if event.data is None:  # a keep-alive comment, the end of a JSON array
            continue
        value = _json(event.data)
        label = _label(event, value)
        labels.append(label)
        paths = fields.setdefault(label, set())
        for path, kind in _walk(value, "", 0):
            paths.add(path)
            if kind != "null":
                types.setdefault((label, path), set()).add(kind)
        marks = _marks(value)
        finish += [f"{path}={reason}" for path, reason in marks.finishes]
        if marks.usage or marks.finishes:
            usage.append(f"{label}: " + "; ".join(marks.usage + marks.finish_at()))
    return Shape(
        status=response.status,
        content_type=content_type.strip().lower(),
        events=tuple(dict.fromkeys(labels)),
        fields={label: frozenset(paths) for label, paths in fields.items()},
        types={key: frozenset(kinds) for key, kinds in types.items()},
        usage=_folded(usage),
        finish=_folded(finish, block=1),
    )


def compare(old: Shape, new: Shape) -> list[Difference]:
    """How ``new`` differs from ``old`` (the recording); none when only text, ids and
    counts changed. A changed status says it all: the rest would only follow from it."""
    if old.status != new.status:
        return [Difference("changed", "status", f"was {old.status}, now {new.status}")]
    found: list[Difference] = []
    # A recording without headers (some tools drop them) says nothing of the content type.
    if old.content_type and old.content_type != new.content_type:
        shown = new.content_type or "(none)"
        found.append(Difference("changed", "content type", f"was {old.content_type}, now {shown}"))
    gone = [t for t in old.events if t not in new.events]
    came = [t for t in new.events if t not in old.events]
    found += [Difference("removed", "event type", name) for name in gone]
    found += [Difference("added", "event type", name) for name in came]
    kept = [t for t in old.events if t not in gone]
    if kept != [t for t in new.events if t not in came]:
        detail = f"was {_arrows(old.events)}; now {_arrows(new.events)}"
        found.append(Difference("changed", "event order", detail))
    for label in kept:
        before, after = old.fields.get(label, frozenset()), new.fields.get(label, frozenset())
        if removed := sorted(before - after):
            found.append(Difference("removed", f"fields of {label}", _listed(removed)))
        if added := sorted(after - before):
            found.append(Difference("added", f"fields of {label}", _listed(added)))
        for path in sorted(before & after):
            was, now = old.types.get((label, path)), new.types.get((label, path))
            if was and now and not was & now:  # a type in common: the field still takes it
                detail = f"{path} was {'/'.join(sorted(was))}, now {'/'.join(sorted(now))}"
                found.append(Difference("changed", f"field type of {label}", detail))
    if old.usage != new.usage:
        detail = f"was {_arrows(old.usage)}; now {_arrows(new.usage)}"
        found.append(Difference("changed", "usage placement", detail))
    if old.finish != new.finish:
        detail = f"was {_arrows(old.finish)}; now {_arrows(new.finish)}"
        found.append(Difference("changed", "finish reasons", detail))
    return found


def _json(data: str) -> Any:
    if data.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _label(event: Event, value: Any) -> str:
    if event.event:
        return event.event
    if isinstance(value, dict):
        for key in ("type", "object"):
            if isinstance(value.get(key), str) and value[key]:
                return str(value[key])
    if value is not None:
        return "data"
    text = event.data.strip() if event.data else ""
    return text if 0 < len(text) <= 20 else "text"


def _walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, str]]:
    """(path, JSON type) of every value below the top: ``choices[].delta.content``."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            yield inner, _kind(item)
            yield from _walk(item, inner, depth + 1)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                yield from _walk(item, f"{path}[]", depth + 1)
            else:
                yield f"{path}[]", _kind(item)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


@dataclass(frozen=True, slots=True)
class _Marks:
    usage: list[str]
    finishes: list[tuple[str, str]]

    def finish_at(self) -> list[str]:
        return [f"finish ({path})" for path, _ in self.finishes]


def _marks(value: Any) -> _Marks:
    """Where an event's usage sits (``usage``, ``usage null``, ``usage (choices empty)``:
    a usage of its own beside an empty list) and its finish reasons."""
    marks = _Marks([], [])
    empty = sorted(k for k, v in value.items() if v == []) if isinstance(value, dict) else []
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        pairs: list[tuple[str, Any]] = []
        if isinstance(item, dict):
            pairs = [(f"{path}.{k}" if path else str(k), v) for k, v in item.items()]
        elif isinstance(item, list):
            pairs = [(f"{path}[]", v) for v in item]
        for inner, child in reversed(pairs):
            key = inner.rpartition(".")[2]
            if _USAGE.match(key):
                beside = f" ({', '.join(empty)} empty)" if empty and child is not None else ""
                marks.usage.append(inner + (" null" if child is None else beside))
            elif _FINISH.match(key) and isinstance(child, str) and child:
                marks.finishes.append((inner, child))
            else:
                stack.append((child, inner, depth + 1))
    return marks


def _folded(items: Sequence[str], block: int = _MAX_BLOCK) -> tuple[str, ...]:
    """Repeats counted once: a run (A A A: A), then a block repeated at once (A B A B: A
    B), up to ``block`` items long."""
    out = [item for i, item in enumerate(items) if i == 0 or items[i - 1] != item]
    changed = True
    while changed:
        changed = False
        for size in range(2, min(block, len(out) // 2) + 1):
            i = 0
            while i + 2 * size <= len(out):
                if out[i : i + size] == out[i + size : i + 2 * size]:
                    del out[i + size : i + 2 * size]
                    changed = True
                else:
                    i += 1
    return tuple(out)


def _arrows(items: Sequence[str]) -> str:
    return " → ".join(items) if items else "(none)"


def _listed(paths: Sequence[str]) -> str:
    """The paths, those under another one listed left out (``usage`` stands for
    ``usage.prompt_tokens``, ``choices[].delta`` for ``choices[].delta.content``)."""
    listed = set(paths)
    top = [
        p
        for p in paths
        if not any(p[len(q) : len(q) + 1] in (".", "[") and p.startswith(q) for q in listed)
    ]
    more = len(top) - _SHOWN
    return ", ".join(top[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
