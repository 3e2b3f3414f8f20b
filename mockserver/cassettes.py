"""vcrpy YAML cassettes (format version 1) to and from ``tuple[Exchange, ...]``.

Where it sits: the disk end of the flow. ``load``/``loads`` turn a cassette written by
vcrpy, pytest-recording, pydantic-ai or Tapedeck into frozen Exchange values for the
Library; ``dump``/``dumps`` write exchanges back, redacted and atomically, in a layout
vcrpy itself loads and replays; ``append`` adds one interaction for the Recorder without
rewriting the file (``storage`` does the file work).

A cassette the Recorder grows puts ``version: 1`` first, so that each interaction is
appended at the end, and follows each with an ``# end of interaction`` line: what is
after the last such line was cut short while being written, and is not read.

What it must never do: serve or send HTTP (it knows YAML and vcrpy's layout, nothing
else); write a secret (``redaction.redact`` runs before any text exists); leave a half-written
cassette behind; hand out a compressed body (Response.body is always the decoded bytes,
so nobody downstream has to guess).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml

from mockserver import safe_yaml, storage
from mockserver.errors import CassetteFormatError, CassetteNotFoundError
from mockserver.model import Exchange, Headers, Request, Response, Timing
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact

try:
    from yaml import CSafeDumper as _SafeDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]

__all__ = ["append", "dump", "dumps", "from_bytes", "load", "loads"]

_FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding"})
_NO_WRAP = 1 << 30  # folded long lines are legal YAML but unreadable in a diff
_GROWING = "version: 1\ninteractions:\n"
_END = "# end of interaction\n"
_DOCUMENT_END = "...\n"


class _Bad(Exception):
    """A problem inside one interaction; ``loads`` adds the file and the index."""


def _expected(what: str, expected: str, value: Any) -> NoReturn:
    shown = repr(value)
    shown = shown[:60] + "..." if len(shown) > 60 else shown
    found = "nothing (null)" if value is None else f"{type(value).__name__} {shown}"
    raise _Bad(f"{what}: expected {expected}, found {found}")


def load(path: str | os.PathLike[str], name: str | None = None) -> tuple[Exchange, ...]:
    """Read a cassette file; each Exchange's source is ``name#index`` (``name``: how
    messages call the file, by default ``path`` as given)."""
    where = os.fspath(path)
    shown = where if name is None else name
    try:
        data = Path(where).read_bytes()
    except FileNotFoundError:
        raise CassetteNotFoundError(
            f"no cassette file at {where} (looked at {os.path.abspath(where)}): check the "
            "path, or record it first with a record mode that writes (once, all)"
        ) from None
    return from_bytes(data, shown)


def from_bytes(data: bytes, name: str) -> tuple[Exchange, ...]:
    """What ``load`` makes of a cassette file's bytes (``name``: how messages call it): the
    index cache keys its work by the very bytes it parsed."""
    return loads(storage.complete(data, _GROWING.encode(), _END.encode(), name), name)


def loads(text: str | bytes, source: str) -> tuple[Exchange, ...]:
    """Parse cassette text; ``source`` names the file in messages and in Exchange.source."""
    try:
        document = _parse(text, source)
        if not isinstance(document, dict):
            _expected("top level", "a mapping with an `interactions` list", document)
        if document.get("version", 1) != 1:
            _expected("version", "version 1 (the vcrpy format)", document["version"])
        items = document.get("interactions")
        if not isinstance(items, list):
            _expected("interactions", "an `interactions` list", items)
    except _Bad as exc:
        raise CassetteFormatError(source, None, str(exc)) from None
    exchanges = []
    for index, item in enumerate(items):
        try:
            exchanges.append(_exchange(item, f"{source}#{index}"))
        except _Bad as exc:
            raise CassetteFormatError(source, index, str(exc)) from None
    return tuple(exchanges)


def _parse(text: str | bytes, source: str) -> Any:
    if text.lstrip()[:1] in ("{", b"{"):
        # vcrpy's json serializer; JSON escapes such as "\/" are not YAML, so try JSON first
        with contextlib.suppress(ValueError):
            return json.loads(text)
    try:
        return safe_yaml.load(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = f"expected a YAML (or JSON) cassette, found invalid YAML{where}: {exc.problem}"
        raise CassetteFormatError(source, None, problem) from exc
    except yaml.YAMLError as exc:
        raise CassetteFormatError(source, None, f"expected YAML text, found: {exc}") from exc


def _exchange(item: Any, source: str) -> Exchange:
    if not isinstance(item, dict):
        _expected("interaction", "a mapping with `request` and `response`", item)
    for key in ("request", "response"):
        if not isinstance(item.get(key), dict):
            _expected(key, f"a `{key}` mapping", item.get(key))
    request = _request(item["request"])
    response, timing = _response(item["response"])
    return Exchange(request, response, source, timing)


def _request(raw: dict[str, Any]) -> Request:
    method, uri = raw.get("method"), raw.get("uri")
    if not isinstance(method, str) or not method:
        _expected("request", "a `method` string", method)
    if not isinstance(uri, str) or not uri:
        _expected("request", "a `uri` string", uri)
    headers = _headers(raw.get("headers"), "request")
    if raw.get("body") is None and "parsed_body" in raw:  # pydantic-ai's serializer
        parsed: Any = raw["parsed_body"]
        body, headers = _dumped(parsed, "request"), _without(headers, "content-encoding")
    else:
        body, headers = _decode(_bytes(raw.get("body"), "request body"), headers, "request")
        parsed = _json(body)
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise _Bad(f"request uri: expected a URL, found {uri!r} ({exc})") from None
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
    return Request(method.upper(), parts.path or "/", query, headers, body, parsed, origin)


def _response(raw: dict[str, Any]) -> tuple[Response, Timing | None]:
    legacy = "status" not in raw and "status_code" in raw  # vcrpy's old httpx layout
    status = {"code": raw["status_code"]} if legacy else raw.get("status")
    if not isinstance(status, dict):
        _expected("response", "`status: {code, message}`", status)
    code, reason = status.get("code"), status.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        _expected("response status code", "an integer", code)
    headers = _headers(raw.get("headers"), "response")
    if not legacy and raw.get("body") is None and "parsed_body" in raw:
        body = _dumped(raw["parsed_body"], "response")
        headers = _without(headers, "content-encoding")
    else:
        stored = raw.get("content") if legacy else raw.get("body")
        stored = stored.get("string") if isinstance(stored, dict) else stored
        body, headers = _decode(_bytes(stored, "response body.string"), headers, "response")
    response = Response(code, headers, body, "" if reason is None else str(reason))
    return response, _timing(raw.get("tapedeck"))


def _dumped(parsed: Any, where: str) -> bytes:
    try:  # the same spelling pydantic-ai's own loader gives back
        return json.dumps(parsed).encode()
    except (TypeError, ValueError):
        _expected(f"{where} parsed_body", "JSON data (mappings, lists, strings, numbers)", parsed)


def _headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        _expected(f"{where} headers", "a mapping of names to lists of strings", raw)
    pairs = []
    for name, values in raw.items():
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, bytes):  # boto3 recordings store values as !!binary
                value = value.decode("latin-1")  # HTTP's own header charset
            elif isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                _expected(f"{where} header {name!r}", "a string or a list of strings", value)
            pairs.append((str(name), value))
    return tuple(pairs)


def _without(headers: Headers, name: str) -> Headers:
    return tuple(pair for pair in headers if pair[0].lower() != name)


def _bytes(value: Any, what: str) -> bytes:
    if value is None or isinstance(value, bytes):
        return value or b""
    if not isinstance(value, str):
        _expected(what, "a string, !!binary bytes or null", value)
    return value.encode("utf-8", "surrogatepass")


def _decode(body: bytes, headers: Headers, where: str) -> tuple[bytes, Headers]:
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for coding in value.split(",")
    ]
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding not in ("", "identity"):
            body = _decompress(body, coding, where)
    return body, (_without(headers, "content-encoding") if codings else headers)


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)  # zlib-wrapped, as the RFC says
    except zlib.error:
        return zlib.decompress(body, -zlib.MAX_WBITS)  # raw, as some servers send


try:
    _DECODERS: dict[str, Any] = {"br": importlib.import_module("brotli").decompress}
except ImportError:
    _DECODERS = {}
_DECODERS.update({"gzip": gzip.decompress, "x-gzip": gzip.decompress, "deflate": _inflate})


def _decompress(body: bytes, coding: str, where: str) -> bytes:
    if coding not in _DECODERS:
        _expected(f"{where} Content-Encoding", "gzip, deflate or br (br needs brotli)", coding)
    try:
        return bytes(_DECODERS[coding](body))
    except Exception as exc:
        raise _Bad(
            f"{where} body: expected {coding} data (the Content-Encoding header says so), "
            f"found {len(body)} bytes starting {body[:12]!r} that do not decompress ({exc})"
        ) from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None


def _timing(raw: Any) -> Timing | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        _expected("response tapedeck", "a mapping {headers, events}", raw)
    head, events = raw.get("headers"), raw.get("events", [])
    if not isinstance(head, (int, float)) or isinstance(head, bool):
        _expected("response tapedeck.headers", "seconds (a number)", head)
    if not isinstance(events, list) or not all(
        isinstance(event, (int, float)) and not isinstance(event, bool) for event in events
    ):
        _expected("response tapedeck.events", "a list of seconds (numbers)", events)
    return Timing(float(head), tuple(float(event) for event in events))


def dumps(exchanges: Sequence[Exchange], *, redaction: Redaction = DEFAULT_REDACTION) -> str:
    """vcrpy YAML v1 text for the exchanges, redacted; bodies load back byte-identical."""
    items = [_item(redact(exchange, redaction)) for exchange in exchanges]
    if not items:
        return "interactions: []\nversion: 1\n"
    # A list under a top-level key is laid out as a list of its own would be; after a
    # block that keeps trailing newlines (|+), libyaml ends the document with "...".
    ended = any(item.endswith(_DOCUMENT_END) for item in items)
    text = "".join(item.removesuffix(_DOCUMENT_END) for item in items)
    return "interactions:\n" + text + "version: 1\n" + (_DOCUMENT_END if ended else "")


def dump(
    exchanges: Sequence[Exchange],
    path: str | os.PathLike[str],
    *,
    redaction: Redaction = DEFAULT_REDACTION,
) -> None:
    """Write a cassette atomically (creating folders): readers see old or new, never half."""
    data = dumps(exchanges, redaction=redaction).encode("utf-8")
    target = Path(path)
    with storage.locked(target.parent):
        storage.replace(target, data)


def append(
    path: str | os.PathLike[str],
    exchange: Exchange,
    *,
    redaction: Redaction = DEFAULT_REDACTION,
    replace: bool = False,
    name: str | None = None,
) -> None:
    """Add ``exchange`` at the end of the cassette (created if missing; replaced by this
    one interaction when ``replace``), redacted, under the lock on its folder. ``name``:
    how messages call the file.

    A cassette written this way grows by one write of one interaction, whatever its size;
    one in another layout (vcrpy's, ``dump``'s) is rewritten whole once, in this one."""
    target = Path(path)
    item = _growing_item(redact(exchange, redaction)).encode("utf-8")
    with storage.locked(target.parent):
        if not replace and storage.append(target, item, _GROWING.encode(), _END.encode()):
            return
        existing = () if replace or not target.exists() else load(target, name)
        earlier = "".join(_growing_item(redact(e, redaction)) for e in existing)
        storage.replace(target, (_GROWING + earlier).encode("utf-8") + item)


def _growing_item(exchange: Exchange) -> str:
    return _item(exchange).removesuffix(_DOCUMENT_END) + _END


def _item(exchange: Exchange) -> str:
    """One interaction as a YAML list item, checked to load back with the same bodies."""
    # Per body: 0 = literal block if multi-line, 1 = the style PyYAML picks, 2 = !!binary.
    # PyYAML's own checks miss a few cases (\x85, line separators...), so reload and see,
    # with an end line after it, as a growing cassette has.
    levels = {0: 0, 1: 0}
    for _ in range(3):
        text = yaml.dump(
            [_interaction(exchange, levels)],
            Dumper=_Dumper,
            allow_unicode=True,
            sort_keys=False,
            width=_NO_WRAP,
        )
        try:
            grown = _GROWING + text.removesuffix(_DOCUMENT_END) + _END
            back: Sequence[Exchange] = loads(grown, "<dumps>")
        except CassetteFormatError:
            back = ()
        bad = [side for side in (0, 1) if not back or _body(back[0], side) != _body(exchange, side)]
        if not bad:
            return text
        for side in bad:
            levels[side] += 1
    raise AssertionError("unreachable: !!binary bodies always load back")  # pragma: no cover


class _Block(str):
    """A body to try as a literal block scalar (``|``) so SSE streams stay readable."""


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # anchors (&id001) would only confuse a reader of the cassette


def _represent_block(dumper: _Dumper, data: _Block) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


_Dumper.add_representer(_Block, _represent_block)


def _body(exchange: Exchange, side: int) -> bytes:
    return exchange.request.body if side == 0 else exchange.response.body


def _stored(body: bytes, level: int) -> str | bytes:
    if level >= 2:
        return body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    return _Block(text) if level == 0 and "\n" in text else text


def _header_map(headers: Headers, dropped: frozenset[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() not in dropped:
            grouped.setdefault(name, []).append(value)
    return grouped


def _interaction(exchange: Exchange, levels: dict[int, int]) -> Any:
    request, response = exchange.request, exchange.response
    uri = (request.origin or "http://127.0.0.1") + "/" + request.path.removeprefix("/")
    if request.query:
        uri += "?" + urlencode(request.query)
    body = _stored(request.body, levels[0]) if request.body else None
    stored: dict[str, Any] = {
        # request bodies are stored decoded too, so a content-encoding header would lie
        "request": {
            "body": body,
            "headers": _header_map(request.headers, frozenset({"content-encoding"})),
            "method": request.method,
            "uri": uri,
        },
        "response": {
            "status": {"code": response.status, "message": response.reason},
            "headers": _header_map(response.headers, _FRAMING),
            "body": {"string": _stored(response.body, levels[1])},
        },
    }
    if (timing := exchange.timing) is not None:
        stored["response"]["tapedeck"] = {"headers": timing.headers, "events": list(timing.events)}
    return stored
