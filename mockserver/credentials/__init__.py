"""Credentials and account ids: their names, their shapes, where they hide in a text, a
URL or a body, and how to show one without giving it away.

Where it sits: below ``redaction`` (which strips them from an exchange before anything is
written) and ``cassette_secrets`` (``tapedeck lint`` and ``tapedeck redact`` on files
already on disk); above the dialects, whose folders own their keys' shapes
(``Dialect.secret_patterns``) and credential headers (``Dialect.secret_headers``).
``shapes`` knows what a secret looks like, ``text`` finds and cuts it in any text,
``bodies`` in a JSON, SSE or NDJSON body.

What it must never do: print a secret whole (``mask``), or keep state. A value that is
already a placeholder (``REDACTED``, ``<filtered>``, ``X-API-KEY-XXX``) is never a secret.
"""

from mockserver.credentials.bodies import find_in_body, find_in_json, scrub_body, scrub_json
from mockserver.credentials.shapes import (
    FIELDS,
    HEADERS,
    PARAMS,
    PATTERNS,
    PLACEHOLDER,
    Finding,
    header_kind,
    is_placeholder,
    mask,
    normalized,
    tokens,
)
from mockserver.credentials.text import Hit, scan, scrub

__all__ = [
    "FIELDS",
    "HEADERS",
    "PARAMS",
    "PATTERNS",
    "PLACEHOLDER",
    "Finding",
    "Hit",
    "find_in_body",
    "find_in_json",
    "header_kind",
    "is_placeholder",
    "mask",
    "normalized",
    "scan",
    "scrub",
    "scrub_body",
    "scrub_json",
    "tokens",
]
