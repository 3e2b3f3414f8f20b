"""Google Gemini (Generative Language API) and Vertex AI publisher models: generateContent,
streamGenerateContent, countTokens, embedContent and batchEmbedContents.

``:streamGenerateContent?alt=sse`` streams SSE (``data: {…}\\r\\n\\r\\n``, no event lines, no
[DONE]); without ``alt`` the same chunks come as one pretty-printed JSON array
(``[{…}\\n,\\r\\n{…}\\n]``), so ``select_framing`` picks ``SSE`` or ``JSON_ARRAY`` per request.
The stream rules live in ``check`` (wire-formats.md §7 and §12.8, google-genai's parser:
sdk-behaviour.md §2.3; where they disagreed with a recording, the recording won); the error
shape, headers and JSON printers in ``common``.

Thinking convention: a Script text of the form ``"<think>reasoning</think>answer"`` makes
the reasoning thought parts (``thought: true``, before the answer) and counts it in
``thoughtsTokenCount``. As with the real API, the thought parts are sent only when the
request asks ``generationConfig.thinkingConfig.includeThoughts``; their tokens always count.
"""

from __future__ import annotations

import json
import math
import random
import string
from typing import Any

from mockserver.dialects._kit.wire import DEFAULT_TEXT, pieces, split_thinking, with_headers
from mockserver.dialects.contract import ApiKey, Dialect, Route, SecretPattern, Upstream
from mockserver.dialects.gemini import check as rules
from mockserver.dialects.gemini import common, knobs
from mockserver.dialects.gemini.limits import LIMITS, candidates, embedding_size
from mockserver.dialects.gemini.recipes import RECIPES
from mockserver.framing.json_array import JSON_ARRAY
from mockserver.framing.sse import SSE
from mockserver.model import (
    Framing,
    Identity,
    Request,
    Response,
    Script,
    ToolCall,
    canonical_json,
    identity_from,
)

VOLATILE_FIELDS: dict[str, str] = {
    "labels": "Vertex AI billing labels: they tag the bill, the model never sees them",
}
RULES = rules.RULES
check = rules.check
error = common.error
target = common.target
METHODS: tuple[str, ...] = ("generateContent", "streamGenerateContent", "countTokens")
METHODS += ("embedContent", "batchEmbedContents")
FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}
"""OpenAI-style finish reasons a Script may use, as Gemini says them (others pass as given)."""


def is_stream(request: Request) -> bool:
    return common.target(request)[1] == "streamGenerateContent"


def select_framing(request: Request) -> Framing:
    """The JSON array for a stream asked without ``alt=sse``; SSE otherwise (also for a
    request that is not a Gemini path, such as ``tapedeck lint``'s stand-in)."""
    return JSON_ARRAY if is_stream(request) and request.query_value("alt") != "sse" else SSE


def midstream_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """Gemini's in-band error: an element holding ``{"error": {code, message, status}}``
    in the stream's own framing (a ``data:`` event, or the JSON array's next element and
    its closing bracket), then the end (wire-formats.md §10)."""
    status = kind or "INTERNAL"
    text = message or "An internal error has occurred. Please retry."
    code = next((code for code, name in common.STATUS_NAMES.items() if name == status), 500)
    error = json.dumps({"error": {"code": code, "message": text, "status": status}})
    if request is not None and select_framing(request) is JSON_ARRAY:
        return (b"[" if sequence_number == 0 else b",\r\n") + error.encode() + b"\n]"
    return b"data: " + error.encode() + b"\r\n\r\n"


def identity(request: Request) -> Identity:
    """The body with its keys in one spelling (camelCase: google-genai sends some
    snake_case, and the API takes both), without volatile fields, None values and empty
    defaults (``"generationConfig": {}``); the model and method from the path; and ``alt``
    (SSE and the JSON array are different bytes). Not identity: the API version, the
    Vertex project and location, ``?key=``."""
    model, method = common.target(request)
    path_fields = [("path.model", model), ("path.method", method)]
    path_fields.append(("query.alt", request.query_value("alt")))
    body = request.json
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("body", text), *path_fields])
    fields = {k: v for k, v in common.camel_keys(body).items() if k not in VOLATILE_FIELDS}
    if isinstance(config := fields.get("generationConfig"), dict):
        fields["generationConfig"] = {k: v for k, v in config.items() if v is not None}
    fields = {k: v for k, v in fields.items() if v is not None and v != {} and v != []}
    return identity_from([*fields.items(), *path_fields])


# --- synthesize -------------------------------------------------------------------------


def _function_call(call: ToolCall) -> dict[str, Any]:
    """A whole functionCall part. Gemini's args is a Struct, so arguments that are not a
    JSON object are sent as ``{"value": arguments}``."""
    args = json.loads(call.arguments)
    out: dict[str, Any] = {"name": call.name}
    out["args"] = args if isinstance(args, dict) else {"value": args}
    if call.id is not None:
        out["id"] = call.id
    return {"functionCall": out}


def _usage(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates + thoughts
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _prompt_tokens(body: dict[str, Any], script: Script) -> int:
    if script.prompt_tokens is not None:
        return script.prompt_tokens
    asked = [common.field(body, k) for k in ("contents", "systemInstruction", "tools")]
    return max(1, math.ceil(len(canonical_json(asked if any(asked) else body)) / 4))


def synthesize(request: Request, script: Script) -> Response:
    """Gemini's answer to ``script``: SSE, a JSON array or one body, per the request.

    Each chunk carries one piece of ``chunk_size`` characters (thoughts first, then the
    answer), the function calls come whole in the last chunk, which holds finishReason;
    every chunk has usageMetadata with the running counts (one token per piece, per
    argument piece of a call), so the last one is complete and the largest."""
    model, method = common.target(request)
    body = request.json if isinstance(request.json, dict) else {}
    sse = request.query_value("alt") == "sse"
    if script.status >= 400:
        kind = script.error_kind or common.STATUS_NAMES.get(script.status, "")
        # On an alt=sse request the error says event-stream but is plain JSON (corpus:
        # gemini/error-404-on-sse-request): clients must look at the status first.
        content_type = "text/event-stream" if sse and is_stream(request) else ""
        content_type = content_type or "application/json; charset=UTF-8"
        response = common.error_as(script.status, script.error_message, kind, content_type)
        return with_headers(response, script.headers)
    rng = random.Random(script.seed)
    duration = rng.randint(150, 3000)
    if method in ("countTokens", "embedContent", "batchEmbedContents"):
        return _whole(_aside(method, body, script), duration, script)
    shown = common.field(body, "generationConfig", "thinkingConfig", "includeThoughts") is True
    n = candidates(request, script) or 1
    thought, answer = split_thinking(script.text)
    if answer is None and not script.tool_calls:
        answer = DEFAULT_TEXT
    size = script.chunk_size
    thought_pieces = pieces(thought or "", size)
    # One step per chunk: (parts, thought tokens, candidate tokens).
    steps: list[tuple[list[dict[str, Any]], int, int]] = []
    hidden = 0 if shown else len(thought_pieces)
    if shown:
        steps += [([{"text": p, "thought": True}], 1, 0) for p in thought_pieces]
    steps += [([{"text": p}], 0, 1) for p in pieces(answer or "", size)]
    if script.tool_calls:
        calls = [_function_call(call) for call in script.tool_calls]
        steps.append((calls, 0, sum(len(pieces(c.arguments, size)) for c in script.tool_calls)))
    if not steps or steps[-1][0][0].get("thought"):
        steps.append(([{"text": ""}], 0, 0))
    finish = script.finish_reason or "STOP"
    finish = FINISH_REASONS.get(finish, finish)
    head = {"modelVersion": model or "gemini", "responseId": _response_id(rng)}
    prompt = _prompt_tokens(body, script)

    def chunk(parts: list[dict[str, Any]], done: bool, thoughts: int, tokens: int) -> Any:
        candidates = [
            {
                "content": {"parts": parts, "role": "model"},
                **({"finishReason": finish} if done else {}),
                "index": i,
            }
            for i in range(n)
        ]
        return {"candidates": candidates, "usageMetadata": _usage(prompt, n * tokens, n * thoughts)}

    if not is_stream(request):
        parts: list[dict[str, Any]] = []
        if shown and thought:
            parts.append({"text": thought, "thought": True})
        if answer or not script.tool_calls:
            parts.append({"text": answer or ""})
        parts += [_function_call(call) for call in script.tool_calls]
        whole = chunk(parts, True, len(thought_pieces), sum(s[2] for s in steps))
        return _whole({**whole, **head}, duration, script)
    chunks = []
    thoughts, tokens = hidden, 0
    for k, (parts, thought_tokens, candidate_tokens) in enumerate(steps):
        thoughts, tokens = thoughts + thought_tokens, tokens + candidate_tokens
        chunks.append({**chunk(parts, k == len(steps) - 1, thoughts, tokens), **head})
    if sse:
        payload = b"".join(
            b"data: " + common.dumps(c, separators=(",", ": ")) + b"\r\n\r\n" for c in chunks
        )
        headers = common.headers("text/event-stream", duration)
        headers = (headers[0], ("Content-Disposition", "attachment"), *headers[1:])
    else:
        payload = b"[" + b"\n,\r\n".join(common.dumps(c, indent=2) for c in chunks) + b"\n]"
        headers = common.headers("application/json; charset=UTF-8", duration)
    return with_headers(Response(200, headers, payload, "OK"), script.headers)


def _whole(value: Any, duration: int, script: Script) -> Response:
    """A non-streaming answer: one pretty-printed JSON body."""
    headers = common.headers("application/json; charset=UTF-8", duration)
    return with_headers(Response(200, headers, common.pretty(value), "OK"), script.headers)


def _response_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(23))


def _aside(method: str | None, body: dict[str, Any], script: Script) -> dict[str, Any]:
    """countTokens and the embeddings: the token count, or vectors that depend only on the
    seed and the text embedded (``outputDimensionality`` long, else 768)."""
    if method == "countTokens":
        total = _prompt_tokens(body, script)
        return {
            "totalTokens": total,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
        }
    if method == "embedContent":
        return {"embedding": _embedding(body, script.seed)}
    asked = body.get("requests")
    requests = [r for r in asked if isinstance(r, dict)] if isinstance(asked, list) else []
    return {"embeddings": [_embedding(r, script.seed) for r in requests]}


def _embedding(request: dict[str, Any], seed: int) -> dict[str, Any]:
    size = embedding_size(request)
    rng = random.Random(f"{seed}:{canonical_json(request.get('content'))}")
    return {"values": [float(f"{rng.gauss(0.0, 0.03):.8g}") for _ in range(size)]}


_PREFIXES = ("/v1", "/v1beta", "{prefix*}")  # {prefix*}: Vertex's publisher paths, prefixes

DIALECT = Dialect(
    name="gemini",
    routes=tuple(
        Route("POST", f"{prefix}/models/{{model}}:{method}", method)
        for method in METHODS
        for prefix in _PREFIXES
    ),
    framing=SSE,
    is_stream=is_stream,
    identity=identity,
    check=check,
    error=error,
    synthesize=synthesize,
    base_path="",
    environment=(
        ("GOOGLE_GEMINI_BASE_URL", "{url}"),
        ("GOOGLE_API_KEY", "tapedeck-test-key"),
        ("GEMINI_API_KEY", "tapedeck-test-key"),
    ),
    default_error_kind="INVALID_ARGUMENT",
    select_framing=select_framing,
    midstream_error=midstream_error,
    rules=RULES,
    upstreams=(
        Upstream(
            "gemini",
            "https://generativelanguage.googleapis.com",
            # google-genai's order: GOOGLE_API_KEY wins when both are set
            key=ApiKey(("GOOGLE_API_KEY", "GEMINI_API_KEY"), "x-goog-api-key", "{key}"),
        ),
    ),
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    limits=LIMITS,
    secret_headers=frozenset({"x-goog-api-key"}),
    secret_patterns=(
        SecretPattern.key("Google API key", "AIza", 30),
        SecretPattern.of("Google OAuth token", r"ya29\.(?<![\w-]ya29\.)[A-Za-z0-9._-]{20,}"),
    ),
)
