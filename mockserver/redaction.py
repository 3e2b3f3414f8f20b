"""What to strip from an exchange before it is written, and the stripping itself.

Where it sits: just before the disk. The Recorder (through ``cassettes.dump``/``dumps``)
runs every exchange through ``redact`` before any cassette text exists, so a secret never
reaches a string, a temporary file or a cassette. It works on Exchange values only: it
never reads or writes files, and knows nothing of YAML or vcrpy.

What it must never do: let a credential header, key-like query parameter or named body
field through; change anything it was not asked to strip (other headers, the response
body, timing); or touch a secret in a way a reader could undo (values are replaced by the
placeholder, never masked or hashed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from mockserver.dialects import DIALECTS
from mockserver.model import Exchange, Headers

__all__ = ["DEFAULT_REDACTION", "Redaction", "redact"]


@dataclass(frozen=True, slots=True)
class Redaction:
    """What to strip before writing; names compare case-insensitively.

    Redacted headers are removed; redacted query parameters and top-level JSON fields of
    the request body keep their name and get ``placeholder`` as their value.
    """

    headers: frozenset[str] = frozenset()
    query_params: frozenset[str] = frozenset()
    body_fields: frozenset[str] = frozenset()
    placeholder: str = "REDACTED"
    filters: tuple[Callable[[Exchange], Exchange], ...] = ()
    """Custom filters, applied in order after the rules above: each takes the exchange
    and returns what may be written (the hook for anything the rules cannot name)."""

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


_SECRET_HEADERS = "authorization proxy-authorization x-api-key api-key cookie set-cookie"
DEFAULT_REDACTION = Redaction(
    # The generic credential headers, and each protocol's own (Dialect.secret_headers).
    headers=frozenset(_SECRET_HEADERS.split()).union(
        *(dialect.secret_headers for dialect in DIALECTS.values())
    ),
    query_params=frozenset({"key", "api_key", "api-key", "access_token"}),
)


def redact(exchange: Exchange, redaction: Redaction = DEFAULT_REDACTION) -> Exchange:
    """The exchange without the secrets ``redaction`` names, nor any org/project header."""
    names = {name.lower() for name in redaction.headers}
    params = {name.lower() for name in redaction.query_params}
    fields = {name.lower() for name in redaction.body_fields}
    placeholder = redaction.placeholder

    def keep(headers: Headers) -> Headers:
        return tuple(
            (name, value)
            for name, value in headers
            if (low := name.lower()) not in names
            and "organization" not in low
            and "account-id" not in low
            and not low.endswith("-project")
        )

    request = exchange.request
    query = tuple((k, placeholder if k.lower() in params else v) for k, v in request.query)
    body, parsed = request.body, request.json
    document = _json(body) if fields else None
    if isinstance(document, dict) and any(key.lower() in fields for key in document):
        parsed = {k: placeholder if k.lower() in fields else v for k, v in document.items()}
        body = json.dumps(parsed).encode()
    request = replace(request, headers=keep(request.headers), query=query, body=body, json=parsed)
    response = replace(exchange.response, headers=keep(exchange.response.headers))
    cleaned = replace(exchange, request=request, response=response)
    for custom in redaction.filters:
        cleaned = custom(cleaned)
    return cleaned


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None
