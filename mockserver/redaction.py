"""What to strip from an exchange before it is written, and the stripping itself.

Where it sits: just before the disk. The Recorder (through ``cassettes.dump``/``dumps``)
runs every exchange through ``redact`` before any cassette text exists, so a secret never
reaches a string, a temporary file or a cassette; ``redact_text`` does the same for the
messages the Recorder logs and answers with. It works on values only: it never reads or
writes files, and knows nothing of YAML or vcrpy. What a secret looks like is
``mockserver.credentials``'s business (and each dialect's, for its own keys).

What it must never do: let a credential through, wherever it hides (a header, the query,
the URL's userinfo, a JSON field at any depth of either body, an error echoing the key);
change anything it was not asked to strip (other headers, other bytes of a body, timing);
or touch a secret in a way a reader could undo (values are replaced by the placeholder,
never masked or hashed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mockserver import credentials
from mockserver.dialects.contract import SecretPattern
from mockserver.model import Exchange, Headers, Request

__all__ = ["DEFAULT_REDACTION", "Redaction", "for_identity", "redact", "redact_text"]


@dataclass(frozen=True, slots=True)
class Redaction:
    """What to strip before writing; names compare case-insensitively (query parameters
    and fields also ignoring ``-`` and ``_``).

    Redacted headers are removed; redacted query parameters and JSON fields (at any depth,
    in the request and the response body) keep their name and get ``placeholder`` as
    their value.
    """

    headers: frozenset[str] = frozenset()
    query_params: frozenset[str] = frozenset()
    body_fields: frozenset[str] = frozenset()
    placeholder: str = "REDACTED"
    filters: tuple[Callable[[Exchange], Exchange], ...] = ()
    """Custom filters, applied in order after the rules above: each takes the exchange
    and returns what may be written (the hook for anything the rules cannot name)."""
    detect: bool = True
    """Also strip what is recognizable without being named: every dialect's key shapes
    and the generic ones (``mockserver.credentials.PATTERNS``), headers whose name says
    credential, cookie or account id, the URL's userinfo, and the request's own
    credentials wherever the answer echoes them."""

    def extend(
        self,
        headers: Iterable[str] = (),
        query_params: Iterable[str] = (),
        body_fields: Iterable[str] = (),
        filters: Iterable[Callable[[Exchange], Exchange]] = (),
    ) -> Redaction:
        return replace(
            self,
            headers=self.headers | frozenset(headers),
            query_params=self.query_params | frozenset(query_params),
            body_fields=self.body_fields | frozenset(body_fields),
            filters=self.filters + tuple(filters),
        )


DEFAULT_REDACTION = Redaction(
    # The generic credential headers, and each protocol's own (Dialect.secret_headers).
    headers=credentials.HEADERS,
    query_params=credentials.PARAMS,
    body_fields=credentials.FIELDS,
)


@dataclass(frozen=True, slots=True)
class _Rules:
    """A Redaction made ready to apply: normalized names, the request's own credentials."""

    headers: frozenset[str]
    params: frozenset[str]
    fields: frozenset[str]
    placeholder: str
    detect: bool
    known: tuple[str, ...]

    @classmethod
    def of(cls, redaction: Redaction) -> _Rules:
        return cls(
            frozenset(name.lower() for name in redaction.headers),
            frozenset(credentials.normalized(name) for name in redaction.query_params),
            frozenset(credentials.normalized(name) for name in redaction.body_fields),
            redaction.placeholder,
            redaction.detect,
            (),
        )

    def knowing(self, request: Request, *, body: bool = True) -> _Rules:
        """These rules, also cutting out the credentials ``request`` carries (those of its
        body's credential fields too, unless ``body`` is false)."""
        return replace(self, known=_carried(request, self, body)) if self.detect else self

    @property
    def patterns(self) -> tuple[SecretPattern, ...]:
        return credentials.PATTERNS if self.detect else ()

    def secret_header(self, name: str) -> bool:
        low = name.lower()
        return low in self.headers or (self.detect and credentials.header_kind(low) is not None)

    def text(self, value: str) -> str:
        hits = credentials.scan(value, self.known, frozenset(), self.patterns)
        return credentials.scrub(value, hits, self.placeholder)

    def keeps(self, value: str) -> bool:
        """A credential field is replaced whatever it holds (even a value that looks like
        a placeholder, such as ``alice@example.com``), unless it holds the placeholder."""
        return value == self.placeholder

    def body(self, body: bytes) -> bytes:
        if not body or not (self.detect or self.fields):
            return body
        placeholder, patterns = self.placeholder, self.patterns
        return credentials.scrub_body(
            body, self.known, self.fields, placeholder, patterns, self.keeps
        )

    def headers_of(self, headers: Headers) -> Headers:
        return tuple((n, self.text(v)) for n, v in headers if not self.secret_header(n))


def _carried(request: Request, rules: _Rules, body: bool) -> tuple[str, ...]:
    """The secrets the request itself carries (its key, its cookies, the URL's password,
    credential fields of its body): whatever echoes them later is cut out too."""
    found: list[str] = []
    for name, value in request.headers:
        if rules.secret_header(name):
            found += credentials.tokens(name, value)
    found += [v for k, v in request.query if credentials.normalized(k) in rules.params]
    found.append(urlsplit(request.origin).password or "")
    if body and '"' in (text := request.body.decode("utf-8", "replace")):
        found += [
            text[h.start : h.end]
            for h in credentials.scan(text, (), rules.fields, ())
            if h.kind.startswith("secret field")
        ]
    return tuple(sorted({v for v in found if len(v) >= 8 and not credentials.is_placeholder(v)}))


def _without_userinfo(origin: str) -> str:
    parts = urlsplit(origin)
    if "@" not in parts.netloc:
        return origin
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact(exchange: Exchange, redaction: Redaction = DEFAULT_REDACTION) -> Exchange:
    """The exchange without the secrets ``redaction`` names or recognizes."""
    request, response = exchange.request, exchange.response
    rules = _Rules.of(redaction).knowing(request)
    placeholder = rules.placeholder
    query = tuple(
        (k, placeholder if credentials.normalized(k) in rules.params else rules.text(v))
        for k, v in request.query
    )
    body = rules.body(request.body)
    request = replace(
        request,
        headers=rules.headers_of(request.headers),
        query=query,
        body=body,
        json=request.json if body == request.body else _json(body),
        origin=_without_userinfo(request.origin) if rules.detect else request.origin,
    )
    response = replace(
        response, headers=rules.headers_of(response.headers), body=rules.body(response.body)
    )
    cleaned = replace(exchange, request=request, response=response)
    for custom in redaction.filters:
        cleaned = custom(cleaned)
    return cleaned


def redact_text(
    text: str, request: Request | None = None, redaction: Redaction = DEFAULT_REDACTION
) -> str:
    """A message (a log line, an error answer) without a secret: the shapes ``redaction``
    recognizes, and every credential ``request`` carried (a URL's ``?key=``, its key)."""
    rules = _Rules.of(redaction)
    rules = rules.knowing(request) if request is not None else rules
    hits = credentials.scan(text, rules.known, rules.fields, credentials.PATTERNS)
    return credentials.scrub(text, hits, rules.placeholder)


_DEFAULT = _Rules.of(DEFAULT_REDACTION)


def for_identity(request: Request) -> Request:
    """The request as matching sees it: the body without the secrets a recording of it
    would have lost, so a redacted recording still matches the request that made it (and
    one sent with another key). The same request when it held none."""
    if not request.body:
        return request
    # Its body's own fields are cut out where they stand: no need to look for echoes.
    body = _DEFAULT.knowing(request, body=False).body(request.body)
    return request if body == request.body else replace(request, body=body, json=_json(body))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None
