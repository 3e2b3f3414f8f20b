"""Secrets in a text: where each one stands (``scan``), and the text without them
(``scrub``). The text may be anything: a header value, a URL, a log line, a JSON or SSE
body, where a credential field's string value counts too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mockserver.credentials.shapes import (
    FIELDS,
    PATTERNS,
    PLACEHOLDER,
    is_placeholder,
    normalized,
)
from mockserver.dialects.contract import SecretPattern


@dataclass(frozen=True, slots=True)
class Hit:
    """A secret found in a text: ``text[start:end]``."""

    kind: str
    start: int
    end: int


_JSON_KEY = re.compile(r'"([\w-]{1,80})"\s*:')
_JSON_PAIR = re.compile(r'"([\w-]{1,80})"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


def scan(
    text: str,
    known: Iterable[str] = (),
    fields: frozenset[str] = FIELDS,
    patterns: tuple[SecretPattern, ...] = PATTERNS,
    keep: Callable[[str], bool] = is_placeholder,
) -> list[Hit]:
    """Every secret in ``text``, left to right, none overlapping: the shapes of
    ``patterns``, the string values of JSON ``fields`` (``"api_key": "..."``, at any
    depth, inside an SSE line too) but those ``keep`` accepts (placeholders, by default),
    and each ``known`` secret (a request's own key, wherever it is echoed)."""
    hits: list[Hit] = []
    low = text.lower() if any(pattern.hints for pattern in patterns) else text
    for pattern in patterns:
        if pattern.hints and not any(hint in low for hint in pattern.hints):
            continue  # most texts hold no hint at all: a substring test is far cheaper
        group = "secret" if "secret" in pattern.regex.groupindex else 0
        for match in pattern.regex.finditer(text):
            start, end = match.span(group)
            if start < end and not is_placeholder(text[start:end]):
                hits.append(Hit(pattern.kind, start, end))
    if names_a_field(text, fields):
        for match in _JSON_PAIR.finditer(text):
            start, end = match.span(2)
            if normalized(match.group(1)) in fields and not keep(text[start:end]):
                hits.append(Hit(f"secret field {match.group(1)!r}", start, end))
    for secret in known:
        if len(secret) >= 8:
            start = text.find(secret)
            while start >= 0:
                hits.append(Hit("credential sent with the request", start, start + len(secret)))
                start = text.find(secret, start + len(secret))
    return _apart(hits)


def _apart(hits: list[Hit]) -> list[Hit]:
    """Left to right, the longest first where two start together; overlaps dropped."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, h.start - h.end)):
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
        elif hit.end > kept[-1].end:  # overlapping: one span covering both
            kept[-1] = Hit(kept[-1].kind, kept[-1].start, hit.end)
    return kept


def scrub(text: str, hits: list[Hit], placeholder: str = PLACEHOLDER) -> str:
    """``text`` with each hit (from ``scan``) replaced by ``placeholder``."""
    if not hits:
        return text
    parts, at = [], 0
    for hit in hits:
        parts += [text[at : hit.start], placeholder]
        at = hit.end
    return "".join(parts) + text[at:]


def names_a_field(text: str, fields: frozenset[str]) -> bool:
    """Does ``text`` hold a JSON key naming one of ``fields``? (A cheap first look.)"""
    keys = set(_JSON_KEY.findall(text)) if fields else ()  # a stream repeats its few keys
    return any(normalized(key) in fields for key in keys)
