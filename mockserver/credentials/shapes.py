"""What a credential looks like: the names of the headers, query parameters and JSON fields
that carry one, the shapes no provider owns (bearer and basic credentials, passwords in
URLs, ``key=`` and ``sig=`` parameters, keys echoed in errors) beside each dialect's own
(``Dialect.secret_patterns``, ``Dialect.secret_headers``), what a placeholder looks like,
and how to show a secret without giving it away (``mask``)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mockserver.dialects import DIALECTS
from mockserver.dialects.contract import SecretPattern

PLACEHOLDER = "REDACTED"


def normalized(name: str) -> str:
    """A parameter or field name compared loosely: ``API-Key``, ``api_key``, ``apikey``."""
    return name.lower().replace("-", "").replace("_", "")


HEADERS = frozenset(
    (
        "authorization", "proxy-authorization", "x-api-key", "api-key", "x-auth-token",
        "x-access-token", "cookie", "set-cookie",
    )
).union(*(dialect.secret_headers for dialect in DIALECTS.values()))  # fmt: skip
"""Credential headers by name (lower case), the generic ones and every dialect's own."""

# Header names that say "credential" whatever comes before them (X-...-Api-Key,
# ...-Subscription-Key, ...-Security-Token). Not a bare "-key" or "-token": Idempotency-Key
# and x-ratelimit-*-tokens are no secrets.
_CREDENTIAL_SUFFIXES = (
    "-api-key", "-apikey", "-auth-token", "-access-token", "-security-token",
    "-session-token", "-subscription-key", "-secret", "-password",
)  # fmt: skip

PARAMS = frozenset(
    normalized(name)
    for name in (
        "key", "apikey", "api_key", "access_token", "token", "sig", "signature",
        "client_secret", "password", "secret", "subscription-key",
    )
)  # fmt: skip
"""Query parameters that carry a credential (normalized): ``key``, ``apikey``, a shared
access signature's ``sig``..."""

FIELDS = frozenset(
    normalized(name)
    for name in (
        "api_key", "access_token", "refresh_token", "id_token", "auth_token", "api_token",
        "bearer_token", "client_secret", "password", "secret_key", "secret_access_key",
        "session_token", "private_key", "authorization", "x-api-key", "subscription_key",
        "cookie", "set-cookie",
    )
)  # fmt: skip
"""JSON fields (at any depth, request or response) whose value is a credential
(normalized). Not ``token``: logprobs name each token that way."""

_PARAM_NAMES = "key|api[-_]?key|access[-_]?token|token|sig|signature|client[-_]?secret"
_PARAM_NAMES += "|password|secret|subscription[-_]?key"
GENERIC_PATTERNS = (
    SecretPattern.of(
        "bearer token",
        r"(?i:bearer)(?<![A-Za-z].{6})\s+(?P<secret>(?=[\w.~+/=-]*\d)[\w.~+/-]{8,}=*)",
        "bearer",
    ),
    # Only where it is a header: "Basic" and a word are prose, not credentials.
    SecretPattern.of(
        "basic credentials",
        r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?i:basic)\s+"
        r"(?P<secret>[A-Za-z0-9+/]{8,}={0,2})",
        "basic",
    ),
    SecretPattern.of("password in a URL", r"://[^/\s:@\"'<>]*:(?P<secret>[^/\s@\"'<>]+)@"),
    SecretPattern.of(
        "credential in a URL query",
        r"(?i)(?:[?&;]|\\u0026)(?:" + _PARAM_NAMES + r")=(?P<secret>[^&\s\"'#<>\\]{4,})",
        *("key=", "token=", "sig=", "signature=", "secret=", "password="),
    ),
    # "Incorrect API key provided: <key>": providers that echo the key they were sent.
    SecretPattern.of(
        "key echoed in an error",
        r"(?i)api[ _-]?key(?: provided)?\s*[:=]\s*['\"]?"
        r"(?P<secret>(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{12,})(?![A-Za-z0-9_*-])",
        *("api key", "api_key", "api-key", "apikey"),
    ),
)
"""The shapes no provider owns."""


def _unique(patterns: Iterable[SecretPattern]) -> tuple[SecretPattern, ...]:
    seen: dict[tuple[str, str], SecretPattern] = {}
    for pattern in patterns:
        seen.setdefault((pattern.kind, pattern.regex.pattern), pattern)
    return tuple(seen.values())


PATTERNS = _unique(
    [*(p for dialect in DIALECTS.values() for p in dialect.secret_patterns), *GENERIC_PATTERNS]
)
"""Every shape: each dialect's keys and account ids first (where two shapes find one
secret, the sharper name wins), then the generic ones."""

# A placeholder some tool (or a person) put where a secret was, or a value only a document
# would hold ("your-api-key", "$SOME_API_KEY", "sk-..."): never a secret itself. Runs of
# x count only as a word or from four on, so a random key holding "xxx" still counts.
_PLACEHOLDER = re.compile(
    r"(?i:redacted|filtered|removed|scrubbed|masked|hidden|placeholder|dummy|fake|example"
    r"|tapedeck|your[-_ ]?)|\*\*\*|\.\.\.|…|<[^>]*>|[{}$]|os\.environ"
    r"|(?<![A-Za-z0-9])(?:x{3,}|X{3,})(?![A-Za-z0-9])|x{4,}|X{4,}"
    r"|(?<![A-Za-z0-9])(?i:test)(?![a-z])"
    r"|^[A-Z]+(?:_[A-Z0-9]+)+$"  # the name of an environment variable
    r"|^(?i:(?:bearer|basic)\s+)?(?i:none|null|secret|token|key|pass|password|changeme)?\s*$"
)


def is_placeholder(value: str) -> bool:
    """``REDACTED``, ``<filtered>``, ``Bearer X-API-KEY-XXX``, ``***``, ``$API_KEY``,
    ``your-api-key``, an empty value..."""
    return bool(_PLACEHOLDER.search(value))


def header_kind(name: str) -> str | None:
    """What a header of this name carries: "credential header", "cookie", "account id
    header", or None for a header that carries none."""
    low = name.lower()
    if low in ("cookie", "set-cookie"):
        return "cookie"
    if "organization" in low or "account-id" in low or low.endswith("-project"):
        return "account id header"
    if low in HEADERS or low.endswith(_CREDENTIAL_SUFFIXES):
        return "credential header"
    return None


def tokens(name: str, value: str) -> list[str]:
    """The secrets in the value of a credential header: the token after ``Bearer``, the
    password inside ``Basic`` credentials, each cookie's value (not Set-Cookie's
    attributes: a domain or an expiry date is no secret)."""
    low = name.lower()
    if low in ("cookie", "set-cookie"):
        pairs = value.split(";")[: 1 if low == "set-cookie" else None]
        return [pair.partition("=")[2].strip() for pair in pairs]
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        return [token.strip(), decoded.partition(":")[2]]
    return [token.strip() if scheme.lower() in ("bearer", "token") else value]


@dataclass(frozen=True, slots=True)
class Finding:
    """A secret found in a cassette: what, where (``request header Authorization``,
    ``response body $.error.message``...), and the value, which only ``mask`` shows."""

    kind: str
    where: str
    secret: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}: {mask(self.secret)}"


def mask(secret: str) -> str:
    """Enough of a secret to recognize its kind, never enough to use it: ``sk-p…[51
    chars]`` (the first characters only when the secret is long)."""
    shown = secret[: min(4, len(secret) // 6)]
    return f"{shown}…[{len(secret)} chars]"
