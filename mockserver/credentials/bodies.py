"""Secrets in a body: found with their place (a JSON path, a line of a stream), and
cut out with every other byte kept, so an error keeps its indentation and a stream its
frames."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mockserver.credentials.shapes import (
    FIELDS,
    PATTERNS,
    PLACEHOLDER,
    Finding,
    is_placeholder,
    normalized,
)
from mockserver.credentials.text import names_a_field, scan, scrub
from mockserver.dialects.contract import SecretPattern


def _strings(value: Any, path: str, named: bool) -> Iterator[tuple[str, str, bool]]:
    """(path, string, whether a credential field holds it) for every string in a JSON
    value, depth first. Only a field's own string counts as named: under ``password`` an
    object is a JSON schema's description of one, not a password."""
    if isinstance(value, str):
        yield path, value, named
    elif named and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, str(value), named  # a PIN is a number
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}", normalized(str(key)) in FIELDS)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]", False)


def find_in_json(value: Any, where: str, known: Iterable[str] = ()) -> list[Finding]:
    """The secrets in a parsed JSON value, each with its path (``{where} $.error.message``):
    the string of a credential field, and the shapes inside every other string."""
    known = tuple(known)
    found = []
    for path, text, named in _strings(value, "$", False):
        if named and text and not is_placeholder(text):
            found.append(Finding("secret field", f"{where} {path}", text))
        elif not named:
            found += [
                Finding(hit.kind, f"{where} {path}", text[hit.start : hit.end])
                for hit in scan(text, known)
            ]
    return found


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _text(body: bytes) -> str | None:
    """The body as text, or None for a binary body (a length-prefixed, checksummed frame
    such as an event-stream message holds NUL bytes): changing it would break its framing."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def find_in_body(body: bytes, where: str, known: Iterable[str] = ()) -> list[Finding]:
    """The secrets in a body, located by JSON path for a JSON body, by line (and the JSON
    path inside it) for SSE or NDJSON, by line for other text, and by byte offset in a
    binary body (which ``scrub_body`` cannot change)."""
    known = tuple(known)
    text = _text(body)
    if text is None:
        loose = body.decode("latin-1")
        return [
            Finding(hit.kind, f"{where} (binary) byte {hit.start}", loose[hit.start : hit.end])
            for hit in scan(loose, known)
        ]
    document = _json(text) if text.lstrip()[:1] in ("{", "[") else None
    if document is not None:
        return find_in_json(document, where, known)
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        data = line[5:] if line.startswith("data:") else line
        parsed = _json(data) if data.lstrip()[:1] in ("{", "[") else None
        if parsed is not None:
            found += find_in_json(parsed, f"{where} line {number}", known)
        else:
            found += [
                Finding(hit.kind, f"{where} line {number}", line[hit.start : hit.end])
                for hit in scan(line, known)
            ]
    return found


def scrub_json(
    value: Any,
    known: Iterable[str] = (),
    fields: frozenset[str] = FIELDS,
    placeholder: str = PLACEHOLDER,
    patterns: tuple[SecretPattern, ...] = PATTERNS,
    keep: Callable[[str], bool] = is_placeholder,
) -> Any:
    """A parsed JSON value without secrets: credential fields' strings and numbers replaced
    (but the strings ``keep`` accepts), shapes and ``known`` secrets cut out of every other
    string."""
    known = tuple(known)

    def clean(item: Any, secret: bool) -> Any:
        if isinstance(item, dict):
            return {k: clean(v, normalized(str(k)) in fields) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v, False) for v in item]
        if isinstance(item, str):
            if secret:
                return item if not item or keep(item) else placeholder
            return scrub(item, scan(item, known, fields, patterns, keep), placeholder)
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
        return placeholder if secret and numeric else item

    return clean(value, False)


def scrub_body(
    body: bytes,
    known: Iterable[str] = (),
    fields: frozenset[str] = FIELDS,
    placeholder: str = PLACEHOLDER,
    patterns: tuple[SecretPattern, ...] = PATTERNS,
    keep: Callable[[str], bool] = is_placeholder,
) -> bytes:
    """The body without secrets, every other byte as it was: each secret is cut out of the
    text where it stands, so a JSON error keeps its indentation and an SSE stream its
    frames. Where that cannot clear a JSON body (an escaped secret, a number under
    ``password``), the parsed body is cleaned and written again as JSON. A binary body is
    returned unchanged (see ``_text``)."""
    known = tuple(known)
    text = _text(body)
    if text is None:
        return body
    named = names_a_field(text, fields)  # once: a long stream takes a while to read
    hits = scan(text, known, fields if named else frozenset(), patterns, keep)
    cleaned = scrub(text, hits, placeholder)
    if not hits and not named and not _ESCAPED_ASCII.search(text):
        # Nothing a search of the text misses could be there either: no credential field
        # (whose value may not be a string), no escaped character (a secret spelled so).
        return body  # the common case, and the cheap one: matching runs this on every body
    document = _json(text) if text.lstrip()[:1] in ("{", "[") else None
    if document is None:
        return body if cleaned == text else cleaned.encode("utf-8")
    again = _json(cleaned)
    clean = scrub_json(again, known, fields, placeholder, patterns, keep)
    if again is not None and clean == again:
        return body if cleaned == text else cleaned.encode("utf-8")
    return json.dumps(scrub_json(document, known, fields, placeholder, patterns, keep)).encode()


# An ASCII character written as a JSON escape ("\/", "\u0041"): a secret spelled so hides
# from a search of the text, not from a search of the parsed value.
_ESCAPED_ASCII = re.compile(r"\\(?:/|u00[0-7])")
