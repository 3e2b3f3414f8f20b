"""Secrets in cassettes already on disk: find them (``tapedeck lint``) and remove them in
place (``tapedeck redact``).

Where it sits: beside the cassette reader, at the disk end of the flow. It works on the
file's own document, not on Exchange values, so that a cassette keeps its form when a
secret leaves it: vcrpy's ``body.string`` or the old httpx ``content``, pydantic-ai's
``parsed_body``, gzip or deflate bodies stored as ``!!binary``, JSON or YAML. What a
secret looks like is ``credentials``'s business.

What it must never do: print a secret whole (``Finding`` shows it masked); change a byte
of a file that holds none; change any value but a secret (a rewritten document must load
back equal to the cleaned one, or the file is left alone); leave a half-written file.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import yaml

from mockserver import cassettes, credentials, storage
from mockserver.credentials import Finding
from mockserver.errors import CassetteFormatError

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["Sweep", "find_secrets", "redact_file"]

_NO_WRAP = 1 << 30


@dataclass(frozen=True, slots=True)
class Sweep:
    """One file swept: the secrets found, those still in it because they cannot be cut
    out (inside a binary, checksummed body), and whether it was rewritten."""

    path: Path
    found: tuple[Finding, ...]
    left: tuple[Finding, ...]
    rewritten: bool

    @property
    def removed(self) -> tuple[Finding, ...]:
        """What left the file (would leave it, when nothing was written)."""
        return tuple(finding for finding in self.found if finding not in self.left)


def find_secrets(path: str | os.PathLike[str]) -> list[Finding]:
    """Every secret in a cassette file, each with its source (``file#index``), where it
    is (``request header Authorization``, ``response body $.error.message``) and what."""
    return list(redact_file(path, write=False).found)


def redact_file(path: str | os.PathLike[str], *, write: bool = True) -> Sweep:
    """Remove every secret from a cassette file, atomically; a file without one is not
    touched. ``write=False`` only reports what would be removed."""
    target = Path(path)
    if not write:
        return _redact(target, write=False)
    # Under the recorders' lock on the folder: an append that lands between our read and
    # our rename would otherwise be lost.
    with storage.locked(target.parent):
        return _redact(target, write=True)


def _redact(target: Path, *, write: bool) -> Sweep:
    data = target.read_bytes()
    # First as Tapedeck reads it: a broken file, or a YAML bomb, is refused with a clear
    # CassetteFormatError before it is parsed again here as a plain document.
    cassettes.loads(data, str(target))
    as_json, document = _parse(data)
    found = _sweep(document, str(target), fix=write)
    if not write or not found:
        return Sweep(target, tuple(found), (), False)
    left = _sweep(document, str(target), fix=False)
    if document == _parse(data)[1]:  # all of it inside bodies that cannot change
        return Sweep(target, tuple(found), tuple(left), False)
    text = _serialize(document, data, as_json, str(target))
    cassettes.loads(text, str(target))  # still a cassette Tapedeck (and vcrpy) reads
    storage.replace(target, text.encode("utf-8"))
    return Sweep(target, tuple(found), tuple(left), True)


def _parse(data: bytes) -> tuple[bool, Any]:
    if data.lstrip()[:1] == b"{":
        with contextlib.suppress(ValueError):
            return True, json.loads(data)
    return False, yaml.load(data, Loader=_SafeLoader)


def _sweep(document: Any, source: str, *, fix: bool) -> list[Finding]:
    found: list[Finding] = []
    for index, item in enumerate(document.get("interactions") or []):
        found += _interaction(item, f"{source}#{index}", fix)
    return found


def _interaction(item: dict[str, Any], source: str, fix: bool) -> list[Finding]:
    request, response = item["request"], item["response"]
    found: list[Finding] = []
    known: list[str] = []  # what the headers carry: cut out wherever it is echoed
    for side, part in (("request", request), ("response", response)):
        found += _headers(part, side, known, fix)
    uri = request["uri"]
    hits = credentials.scan(uri, known)
    found += [Finding(h.kind, "request uri", uri[h.start : h.end]) for h in hits]
    if fix:
        request["uri"] = credentials.scrub(uri, hits)
    for side, part in (("request", request), ("response", response)):
        found += _body(part, side, _headers_of(part), tuple(known), fix)
    return [Finding(f.kind, f.where, f.secret, source) for f in found]


def _headers_of(part: dict[str, Any]) -> dict[str, Any]:
    headers = part.get("headers")
    return headers if isinstance(headers, dict) else {}


def _values(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


def _as_text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _headers(part: dict[str, Any], side: str, known: list[str], fix: bool) -> list[Finding]:
    headers = _headers_of(part)
    found: list[Finding] = []
    for name in list(headers):
        where = f"{side} header {name}"
        kind = credentials.header_kind(str(name))
        values = [_as_text(value) for value in _values(headers[name])]
        if kind is not None:
            secrets = [v for v in values if v.strip() and not credentials.is_placeholder(v)]
            found += [Finding(kind, where, value) for value in secrets]
            known += [token for value in secrets for token in credentials.tokens(name, value)]
            if fix and secrets:
                del headers[name]  # as the Recorder does: a credential header is not kept
            continue
        shapes = [
            Finding(h.kind, where, value[h.start : h.end])
            for value in values
            for h in credentials.scan(value)
        ]
        if fix and shapes:
            cleaned = [_cleaned_header(value) for value in _values(headers[name])]
            headers[name] = cleaned if isinstance(headers[name], list) else cleaned[0]
        found += shapes
    return found


def _cleaned_header(value: Any) -> Any:
    text = _as_text(value)
    cleaned = credentials.scrub(text, credentials.scan(text))
    return cleaned.encode("latin-1") if isinstance(value, bytes) else cleaned


# Where a cassette keeps a body, in the layouts cassettes.loads reads: the slot's holder
# (the request, or the response's ``body`` mapping) and its key.
def _slot(part: dict[str, Any], side: str) -> tuple[dict[str, Any], str]:
    if part.get("body") is None and "parsed_body" in part:
        return part, "parsed_body"
    if side == "request":
        return part, "body"
    if "status" not in part and "status_code" in part:  # vcrpy's old httpx layout
        return part, "content"
    body = part.get("body")
    return (body, "string") if isinstance(body, dict) else (part, "body")


def _body(
    part: dict[str, Any], side: str, headers: dict[str, Any], known: tuple[str, ...], fix: bool
) -> list[Finding]:
    holder, key = _slot(part, side)
    stored = holder.get(key)
    where = f"{side} body"
    if key == "parsed_body":
        found = credentials.find_in_json(stored, where, known)
        if fix and found:
            holder[key] = credentials.scrub_json(stored, known)
        return found
    if not isinstance(stored, (str, bytes)) or not stored:
        return []
    raw = stored.encode("utf-8", "surrogatepass") if isinstance(stored, str) else stored
    codings = _codings(headers)
    try:
        body = _decoded(raw, codings)
    except (OSError, EOFError, zlib.error, ValueError):
        return []  # not what its Content-Encoding says: cassettes.loads reports it
    found = credentials.find_in_body(body, where, known)
    if fix and found:
        cleaned = credentials.scrub_body(body, known)
        if cleaned != body:
            encoded = _encoded(cleaned, codings)
            holder[key] = encoded if isinstance(stored, bytes) else encoded.decode("utf-8")
    return found


def _codings(headers: dict[str, Any]) -> list[str]:
    return [
        coding.strip().lower()
        for name, raw in headers.items()
        if str(name).lower() == "content-encoding"
        for value in _values(raw)
        for coding in _as_text(value).split(",")
        if coding.strip().lower() not in ("", "identity")
    ]


_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "gzip": (gzip.decompress, lambda data: gzip.compress(data, mtime=0)),
    "x-gzip": (gzip.decompress, lambda data: gzip.compress(data, mtime=0)),
    "deflate": (zlib.decompress, zlib.compress),
}
with contextlib.suppress(ImportError):
    _brotli = importlib.import_module("brotli")
    _CODECS["br"] = (_brotli.decompress, _brotli.compress)


def _decoded(body: bytes, codings: list[str]) -> bytes:
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding not in _CODECS:
            raise ValueError(coding)  # cassettes.loads says which codings it reads
        body = _CODECS[coding][0](body)
    return body


def _encoded(body: bytes, codings: list[str]) -> bytes:
    for coding in codings:
        body = _CODECS[coding][1](body)
    return body


class _Block(str):
    """A multi-line string to write as a literal block (``|``), as Tapedeck writes bodies."""


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    _Block, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", str(data), "|")
)


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    return _Block(value) if isinstance(value, str) and "\n" in value else value


# The ways cassettes are written: vcrpy's (PyYAML's defaults: sorted keys, 80 columns),
# Tapedeck's (file order, literal blocks for multi-line bodies, no wrapping), pydantic-ai's
# (blocks, 120 columns), and PyYAML's own choices in file order. A rewritten file keeps the
# one that writes it as it was, so that its diff shows the secrets leaving, nothing else.
_STYLES: tuple[Callable[[Any], str], ...] = (
    lambda doc: yaml.dump(doc, Dumper=_Dumper),
    lambda doc: yaml.dump(
        _blocks(doc), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=_NO_WRAP
    ),
    lambda doc: yaml.dump(_blocks(doc), Dumper=_Dumper, allow_unicode=True, width=120),
    lambda doc: yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=_NO_WRAP),
    lambda doc: yaml.dump(doc, Dumper=_Dumper, allow_unicode=True),
)


def _serialize(document: Any, original: bytes, as_json: bool, source: str) -> str:
    """The document as text that loads back equal to it, written the way ``original`` was:
    vcrpy's JSON layout for a JSON cassette, else the YAML style that best writes the
    original document again."""
    if as_json:
        return json.dumps(document, indent=4) + "\n"
    before = original.decode("utf-8", "replace")
    lines = before.splitlines()
    _, old = _parse(original)

    def likeness(style: Callable[[Any], str]) -> float:
        again = style(old)
        return (
            2.0
            if again == before
            else SequenceMatcher(None, lines, again.splitlines()).quick_ratio()
        )

    for style in sorted(_STYLES, key=likeness, reverse=True):
        text = style(document)
        if yaml.load(text, Loader=_SafeLoader) == document:
            return text
    raise CassetteFormatError(  # pragma: no cover - PyYAML writes what it reads
        source, None, "cannot be written back unchanged but for its secrets: left as it was"
    )
