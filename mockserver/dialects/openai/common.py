"""What every OpenAI-style dialect puts on the wire beyond the kit's generic pieces
(``_kit.wire``: compact JSON, ids, timestamps, text pieces, header overrides): the error
shape and its status codes, OpenAI's headers and usage objects, the SSE body, routes and
the SDK environment, and the request identity (Azure's deployment and api-version included).

Where it sits: beside the dialect modules (chat, legacy Completions, embeddings,
Responses), importing only ``model`` and the kit. The dialects build their answers from
these pieces and match requests with ``body_identity``; the chunk-stream rules and their
checker live apart, in ``stream_check``, which imports from here and never the other way
round.

What it must never do: depend on a dialect or on the stream checker, or change a byte
it writes. Bundled cassettes and tests pin the synthesized bytes, so an id, a header or
a JSON separator changed here changes every OpenAI recording.
"""

from __future__ import annotations

import hashlib
import http
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from mockserver.dialects._kit.knobs import Knobs
from mockserver.dialects._kit.limits import Size
from mockserver.dialects._kit.rules import RuleTable
from mockserver.dialects._kit.wire import dumps, with_headers
from mockserver.dialects.contract import (
    ApiKey,
    Conformance,
    Dialect,
    MidstreamError,
    Recipe,
    Route,
    SecretPattern,
    Upstream,
)
from mockserver.framing.sse import SSE
from mockserver.model import (
    Event,
    Headers,
    Identity,
    Request,
    Response,
    Script,
    Violation,
    canonical_json,
    identity_from,
)

SYSTEM_FINGERPRINT = "fp_tapedeck"
ERROR_CODES: dict[int, str] = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
}
"""The ``error.code`` OpenAI sends for a status when the error kind says nothing sharper."""


def include_usage(request: Request | None) -> bool | None:
    """Did the request set stream_options.include_usage; None when the request is unknown."""
    if request is None:
        return None
    options = request.json.get("stream_options") if isinstance(request.json, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


# --- synthesizing -----------------------------------------------------------------------


def sse_body(chunks: Sequence[Any]) -> bytes:
    return b"".join(b"data: " + dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def estimate_prompt_tokens(messages: Any) -> int:
    """About four characters per token over the canonical messages, at least 1."""
    return max(1, math.ceil(len(canonical_json(messages)) / 4))


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's full usage object, in OpenAI's key order."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def rate_limit_headers(total_tokens: int, exhausted: bool = False) -> Headers:
    """The six ``x-ratelimit-*`` headers OpenAI sends on every response."""
    return (
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-requests", "0" if exhausted else "9999"),
        ("x-ratelimit-remaining-tokens", "0" if exhausted else str(30_000_000 - total_tokens)),
        ("x-ratelimit-reset-requests", "1s" if exhausted else "6ms"),
        ("x-ratelimit-reset-tokens", "1s" if exhausted else "0s"),
    )


def success_headers(content_type: str, rng: random.Random, total_tokens: int) -> Headers:
    return (
        ("content-type", content_type),
        ("x-request-id", "req_" + "".join(rng.choice("0123456789abcdef") for _ in range(32))),
        ("openai-processing-ms", str(rng.randint(80, 900))),
        ("openai-version", "2020-10-01"),
        *rate_limit_headers(max(0, total_tokens)),
    )


# --- errors -----------------------------------------------------------------------------


def default_error_kind(status: int) -> str:
    """The error ``type`` OpenAI uses for a status (wire-formats.md §1, HTTP errors)."""
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_code(status: int, kind: str) -> str | None:
    # insufficient_quota is both the type and the code of a billing 429, never retryable.
    return kind if kind == "insufficient_quota" else ERROR_CODES.get(status)


def error(status: int, message: str, kind: str) -> Response:
    """OpenAI's error: 4-space indent, a trailing newline, and the Go encoder's escaping of
    ``<``, ``>`` and ``&`` (corpus: openai/error-chat-completion). The request id is a
    digest of the error, so the same error always carries the same id."""
    fields = {"message": message, "type": kind, "param": None, "code": error_code(status, kind)}
    text = json.dumps({"error": fields}, indent=4, ensure_ascii=False) + "\n"
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escape)  # these occur only inside JSON strings
    body = text.encode("utf-8", "replace")  # a lone surrogate in the message becomes "?"
    digest = hashlib.sha256(f"{status}\0{kind}\0{message}".encode("utf-8", "replace")).hexdigest()
    headers = (("content-type", "application/json"), ("x-request-id", "req_" + digest[:32]))
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return Response(status, headers, body, reason)


def scripted_error(script: Script) -> Response:
    """The error a script with ``status >= 400`` asks for; a 429 also says when to retry."""
    kind = script.error_kind or default_error_kind(script.status)
    response = error(script.status, script.error_message, kind)
    if script.status == 429:
        response = with_headers(response, (("retry-after", "1"), *rate_limit_headers(0, True)))
    return with_headers(response, script.headers)


_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")


def azure_fields(request: Request) -> list[tuple[str, Any]]:
    """Azure OpenAI puts the model in the path (the deployment) and the wire-format version
    in ``?api-version=``; both decide the answer, so both join the identity."""
    match = _AZURE_DEPLOYMENT.search(request.path)
    fields: list[tuple[str, Any]] = []
    if match:
        fields.append(("azure.deployment", match.group(1)))
    if request.path.lstrip("/").startswith("openai/"):
        fields.append(("azure.api-version", request.query_value("api-version")))
    return fields


# --- identity and token estimates (legacy completions, embeddings) ------------------------


def body_identity(
    request: Request, volatile: dict[str, str], defaults: dict[str, Any] | None = None
) -> Identity:
    """An OpenAI JSON body as an identity: every field but the ``volatile`` ones; a field
    equal to its default in ``defaults`` dropped (compared as canonical JSON: ``1`` equals
    ``1.0`` but not ``true``); ``stream_options`` without ``include_obfuscation`` and a
    false ``include_usage``; plus Azure's deployment and api-version. A body that is not
    a JSON object is matched by its text."""
    body = request.json
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("body", text)])
    fields = {k: v for k, v in body.items() if k not in volatile}
    for name, default in (defaults or {}).items():
        if name in fields and canonical_json(fields[name]) == canonical_json(default):
            del fields[name]
    options = fields.pop("stream_options", None)
    if isinstance(options, dict):
        options = {
            k: v
            for k, v in options.items()
            if k != "include_obfuscation" and not (k == "include_usage" and v is False)
        }
    if options:
        fields["stream_options"] = options
    return identity_from([*fields.items(), *azure_fields(request)])


_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(value: Any) -> int:
    """Tokens in a prompt or an embedding input: a string counts its words and punctuation
    marks (``"Hello, world!"`` is 4, as OpenAI counts it), a token id counts 1, a list the
    sum of its items; anything else a quarter of its JSON length."""
    if isinstance(value, str):
        return len(_WORDISH.findall(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    if isinstance(value, list):
        return sum(estimate_tokens(item) for item in value)
    return math.ceil(len(canonical_json(value)) / 4)


ENVIRONMENT = (("OPENAI_BASE_URL", "{url}/v1"), ("OPENAI_API_KEY", "tapedeck-test-key"))
"""What points the openai SDK at a server (every OpenAI dialect shares it)."""


def routes(suffix: str, endpoint: str) -> tuple[Route, ...]:
    """Where an OpenAI endpoint is served: with and without /v1 (SDK base URLs differ),
    Azure's deployment and v1 forms, and under any prefix, for OpenAI-compatible servers
    (OpenRouter /api/v1, the HF router, vLLM...). The router picks the most specific
    match, so ``{prefix*}/completions`` never takes a ``.../chat/completions`` path."""
    return (
        Route("POST", f"/v1/{suffix}", endpoint),
        Route("POST", f"/{suffix}", endpoint),
        Route("POST", f"/openai/deployments/{{deployment}}/{suffix}", endpoint),
        Route("POST", f"/openai/v1/{suffix}", endpoint),
        Route("POST", f"{{prefix*}}/{suffix}", endpoint),
    )


UPSTREAMS = (
    # Azure deployments live under /openai/ on the user's own resource: no default host.
    Upstream("azure", "", "/openai/", ApiKey(("AZURE_OPENAI_API_KEY",), "api-key", "{key}")),
    Upstream("openai", "https://api.openai.com/v1", key=ApiKey(("OPENAI_API_KEY",))),
)
"""Where recording forwards OpenAI-style requests (``--upstream openai=URL``...)."""

SECRET_HEADERS = frozenset({"openai-organization", "openai-project", "ocp-apim-subscription-key"})
"""Account ids OpenAI echoes on every answer, and the key of Azure API Management in front
of Azure OpenAI (Azure's own ``api-key`` is a generic one)."""

SECRET_PATTERNS = (
    SecretPattern.key("OpenAI API key", "sk-", 20, unless="ant-"),
    SecretPattern.key("OpenAI organization id", "org-", 20),
    SecretPattern.key("OpenAI project id", "proj_", 20),
    # OpenAI-compatible providers served by the same routes.
    SecretPattern.key("Groq API key", "gsk_", 20),
    SecretPattern.key("Hugging Face token", "hf_", 30),
    SecretPattern.key("xAI API key", "xai-", 20),
)
"""The key and account id shapes of OpenAI and the OpenAI-compatible providers."""


def dialect(
    name: str,
    routes: tuple[Route, ...],
    *,
    is_stream: Callable[[Request], bool],
    identity: Callable[[Request], Identity],
    check: Callable[[Request | None, Sequence[Event]], list[Violation]],
    synthesize: Callable[[Request, Script], Response],
    rules: RuleTable,
    recipes: tuple[Recipe, ...],
    limits: tuple[Size, ...],
    midstream_error: MidstreamError | None = None,
    knobs: Knobs | None = None,
    conformance: Conformance | None = None,
    error: Callable[[int, str, str], Response] = error,
) -> Dialect:
    """One of OpenAI's protocols: what they all share (SSE, the error shape unless the
    endpoint writes it its own way, the ``/v1`` base URL, the SDK environment, the
    upstreams and secrets) plus its own parts."""
    return Dialect(
        name=name,
        routes=routes,
        framing=SSE,
        is_stream=is_stream,
        identity=identity,
        check=check,
        error=error,
        synthesize=synthesize,
        rules=rules,
        base_path="/v1",
        environment=ENVIRONMENT,
        secret_headers=SECRET_HEADERS,
        secret_patterns=SECRET_PATTERNS,
        upstreams=UPSTREAMS,
        midstream_error=midstream_error,
        recipes=recipes,
        knobs=knobs,
        conformance=conformance,
        limits=limits,
    )
