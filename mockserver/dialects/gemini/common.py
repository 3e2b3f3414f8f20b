"""What the Gemini wire looks like, shared by ``dialect`` (routes, identity, synthesis) and
``check`` (the stream rules): the path's model and method, the two spellings of field names,
Google's JSON printers, headers and error shape (corpus: gemini/error-*). Imports only
``model``.
"""

from __future__ import annotations

import http
import json
import re
from typing import Any

from mockserver.model import Headers, Request, Response

_TARGET = re.compile(r"/models/([^/:]+):(\w+)/?\Z")


def target(request: Request) -> tuple[str | None, str | None]:
    """The model and the method named by the path (``…/models/{model}:{method}``)."""
    found = _TARGET.search(request.path.split("#", 1)[0])
    return (found.group(1), found.group(2)) if found else (None, None)


def field(value: Any, *path: str) -> Any:
    """``value[a][b]…`` with each name in either spelling the API accepts
    (``includeThoughts`` or ``include_thoughts``: google-genai sends some snake_case);
    None where a step is missing or not an object."""
    for name in path:
        if not isinstance(value, dict):
            return None
        snake = re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)
        value = value[name] if name in value else value.get(snake)
    return value


OPAQUE_FIELDS = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseSchema"}
    | {"responseJsonSchema", "labels"}
)
"""Fields that hold the caller's own data (call arguments, schemas): keys kept as sent."""
_SNAKE = re.compile(r"(?<=[a-z0-9])_([a-z0-9])")


def camel_keys(value: Any) -> Any:
    """``value`` with every protocol key in camelCase; the caller's data left alone."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _SNAKE.sub(lambda m: m.group(1).upper(), key)
            out[name] = item if name in OPAQUE_FIELDS else camel_keys(item)
        return out
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


# --- errors and the bytes Google writes -------------------------------------------------

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""google.rpc status names by HTTP status, as Google maps them."""
GRPC_STATUSES = frozenset(STATUS_NAMES.values()) | {
    "ALREADY_EXISTS",
    "DATA_LOSS",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "UNKNOWN",
}
_REASON = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def dumps(value: Any, **options: Any) -> bytes:
    """JSON as UTF-8; a lone surrogate (no UTF-8 form) is written with ASCII escapes."""
    try:
        return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, **options).encode("ascii")


def pretty(value: Any) -> bytes:
    """Google's JSON printer: 2-space indent and a trailing newline."""
    return dumps(value, indent=2) + b"\n"


def headers(content_type: str, duration: int) -> Headers:
    """The headers Google sends with every answer (a real 200 or error, corpus)."""
    return (
        ("Content-Type", content_type),
        ("Vary", "Origin"),
        ("Vary", "X-Origin"),
        ("Vary", "Referer"),
        ("Server", "scaffolding on HTTPServer2"),
        ("Server-Timing", f"gfet4t7; dur={duration}"),
        ("X-XSS-Protection", "0"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Content-Type-Options", "nosniff"),
    )


def error(status: int, message: str, kind: str) -> Response:
    """Google's error: ``{"error": {code, message, status, details?}}`` pretty-printed
    (corpus: gemini/error-*). ``kind`` is a google.rpc status name (``NOT_FOUND``) or an
    ErrorInfo reason (``API_KEY_INVALID``: status from the HTTP code, and the details a
    real bad key gets); anything else (an OpenAI kind) leaves the status to the code."""
    return error_as(status, message, kind, "application/json; charset=UTF-8")


def error_as(status: int, message: str, kind: str, content_type: str) -> Response:
    """``error`` with another content type (an ``alt=sse`` request's: text/event-stream)."""
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    fields: dict[str, Any] = {"code": status, "message": message, "status": name}
    if kind in GRPC_STATUSES:
        fields["status"] = kind
    elif _REASON.match(kind):
        fields["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": kind,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ]
    sent = headers(content_type, 40 + len(message) % 60)
    return Response(status, sent, pretty({"error": fields}), reason_phrase(status))


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
