"""What every OpenAI-style dialect shares: the chunk-stream state machine, the error shape,
usage arithmetic, ids and headers.

Sits beside the dialect modules (``openai_chat`` today; legacy Completions and the Azure
variants later) and imports only ``model``. ``StreamChecker`` holds the rules any stream of
``data: {choices: [...]}`` chunks ending in ``[DONE]`` obeys; a dialect subclasses it for
what its choices carry (chat: a delta with role, content and tool calls).
"""

from __future__ import annotations

import hashlib
import http
import json
import math
import random
import re
import string
from collections.abc import Sequence
from typing import Any, ClassVar

from mockserver.model import (
    Event,
    Headers,
    Identity,
    Request,
    Response,
    Route,
    Script,
    Violation,
    canonical_json,
    identity_from,
    one_per_rule,
)

SYSTEM_FINGERPRINT = "fp_tapedeck"
ERROR_CODES: dict[int, str] = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
}
"""The ``error.code`` OpenAI sends for a status when the error kind says nothing sharper."""

STREAM_RULES: dict[str, str] = {
    "data-not-json": "Every data event is JSON, except the terminal [DONE].",
    "event-without-data": "No block has event:, id: or retry: without data: (the openai SDK "
    "fails on it); comment-only keep-alive blocks are fine.",
    "done-missing": "The stream ends with data: [DONE], unless a mid-stream error ended it.",
    "data-after-done": "No data event, not even a second [DONE], follows [DONE].",
    "event-after-error": "A mid-stream error (a top-level error key, or event: error) ends "
    "the stream: only [DONE] may follow it.",
    "chunk-shape": "Every chunk is a JSON object whose choices is a list of objects with "
    "integer indexes (len(chunk.choices) crashes otherwise).",
    "chunk-identity-changed": "id, model and created are the same on every chunk; Azure's "
    "leading prompt-filter chunk (id '', created 0) is exempt.",
    "object-not-chunk": "object names the endpoint's chunk type (the SDK's stream helper "
    "drops other chunks); Azure's leading prompt-filter chunk is exempt.",
    "finish-reason-repeated": "finish_reason is non-null at most once per choice index.",
    "finish-reason-missing": "Every choice index gets a finish_reason, unless a mid-stream "
    "error ended the stream.",
    "usage-chunk-missing": "With include_usage, a usage chunk (choices == [] and a usage "
    "object) arrives; not repeated when usage-on-choices-chunk fired.",
    "usage-chunk-duplicate": "At most one usage chunk.",
    "usage-chunk-not-last": "No chunk with choices follows the usage chunk, which so comes "
    "after every finish_reason (choice-less extras, e.g. moderation, may follow).",
    "usage-on-choices-chunk": "With include_usage, no chunk with choices carries a usage "
    "object (the LiteLLM proxy bug: clients read usage where choices == []).",
    "usage-null-missing": "With include_usage, every other chunk carries 'usage': null, key "
    "present (Ollama- and OpenRouter-style servers omit it).",
    "usage-unrequested": "Without include_usage in the request, no usage chunk is sent.",
    "usage-arithmetic": "A usage object has integer token counts and total_tokens = "
    "prompt_tokens + completion_tokens.",
}

# What each violation says: what was expected, then what was found.
STREAM_SAY: dict[str, str] = {
    "data-not-json": "expected a JSON chunk or [DONE], found {found}",
    "event-without-data": "expected a data: line in a non-comment block, found only {found}",
    "done-missing": "expected data: [DONE] as the last event, found the end without it",
    "data-after-done": "expected nothing after [DONE] at event {at}, found {found}",
    "event-after-error": "expected the stream to end after the error at event {at}, found {found}",
    "chunk-shape": "expected an object with a list of choices with integer indexes, found {found}",
    "chunk-identity-changed": "expected {was} as on event {at}, found {found}",
    "object-not-chunk": "expected object {want!r}, found {found!r}",
    "finish-reason-repeated": "expected one finish_reason for choice {n}, found another after "
    "the one at event {at}",
    "finish-reason-missing": "expected a finish_reason for choice {n}, found none",
    "usage-chunk-missing": "expected a usage chunk since include_usage was set, found none",
    "usage-chunk-duplicate": "expected one usage chunk, found another after event {at}",
    "usage-chunk-not-last": "expected only [DONE] after the usage chunk at event {at}, found "
    "a chunk with choices",
    "usage-on-choices-chunk": "expected usage on its own chunk with choices == [], found it "
    "on a chunk with choices",
    "usage-null-missing": "expected 'usage': null on every chunk but the usage chunk, found "
    "no usage key",
    "usage-unrequested": "expected no usage chunk since include_usage was not set, found one",
    "usage-arithmetic": "{found}",
}


def short(value: Any) -> str:
    """A value as evidence in a sentence: JSON text, cut at 60 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text[:60] + "...") if len(text) > 60 else repr(text)


def include_usage(request: Request | None) -> bool | None:
    """Did the request set stream_options.include_usage; None when the request is unknown."""
    if request is None:
        return None
    options = request.json.get("stream_options") if isinstance(request.json, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def usage_problem(usage: Any) -> str | None:
    """Why a usage object's numbers do not add up, or None when they do."""
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    counts = [usage.get(name) for name in names] if isinstance(usage, dict) else [None] * 3
    prompt, completion, total = (c if type(c) is int and c >= 0 else -1 for c in counts)
    if min(prompt, completion, total) < 0:
        return f"expected integer {', '.join(names)} in the usage object, found {short(usage)}"
    if total != prompt + completion:
        return f"expected total_tokens = {prompt} + {completion}, found {total}"
    return None


class StreamChecker:
    """One pass over a chunk stream, collecting (rule, event index, sentence).

    Subclasses see each choice through ``on_choice`` (before its finish_reason is taken
    into account), each finish through ``on_finish``, and unfinished choices at the end
    through ``on_unfinished``; their sentences go in ``say``.
    """

    say: ClassVar[dict[str, str]] = STREAM_SAY

    def __init__(self, request: Request | None, chunk_object: str) -> None:
        self.include_usage = include_usage(request)
        self.chunk_object = chunk_object
        self.found: list[tuple[str, int, str]] = []
        self.done_at: int | None = None
        self.error_at: int | None = None
        self.usage_at: int | None = None
        self.usage_on_choices = False
        self.first: tuple[int, dict[str, Any]] | None = None
        self.finished: dict[int, int | None] = {}  # choice index -> event of its finish

    def flag(self, rule: str, index: int, **details: Any) -> None:
        self.found.append((rule, index, self.say[rule].format(**details)))

    def on_choice(self, i: int, n: int, choice: dict[str, Any]) -> None: ...

    def on_finish(self, i: int, n: int) -> None: ...

    def on_unfinished(self, n: int) -> None: ...

    def run(self, events: Sequence[Event]) -> list[Violation]:
        for i, event in enumerate(events):
            data = event.data
            if data is None:
                fields = [("event", event.event), ("id", event.id), ("retry", event.retry)]
                if named := [f"{name}: {value}" for name, value in fields if value is not None]:
                    self.flag("event-without-data", i, found=", ".join(named))
            elif self.done_at is not None:
                self.flag("data-after-done", i, at=self.done_at, found=short(data))
            elif data.startswith("[DONE]"):  # the openai SDK's own test
                self.done_at = i
            elif self.error_at is not None:
                self.flag("event-after-error", i, at=self.error_at, found=short(data))
            else:
                try:
                    chunk = json.loads(data)
                except (ValueError, RecursionError):
                    chunk = None
                    self.flag("data-not-json", i, found=short(data))
                if event.event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                    self.error_at = i  # the SDK raises here: nothing else in it reaches users
                elif chunk is not None:
                    self.chunk(i, chunk)
        self.end()
        return self.violations()

    def chunk(self, i: int, chunk: Any) -> None:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not all(
            isinstance(c, dict) and type(c.get("index")) is int for c in choices
        ):
            self.flag("chunk-shape", i, found=short(chunk))
            return
        usage = chunk.get("usage")
        prefilter = (  # Azure's: empty choices, no usage, before any model chunk
            self.first is None
            and not choices
            and usage is None
            and ("prompt_filter_results" in chunk or "prompt_annotations" in chunk)
        )
        if not prefilter:
            self.same_stream(i, chunk)
        if usage is not None and (problem := usage_problem(usage)):
            self.flag("usage-arithmetic", i, found=problem)
        if not choices and usage is not None:
            if self.usage_at is not None:
                self.flag("usage-chunk-duplicate", i, at=self.usage_at)
            elif self.include_usage is False:
                self.flag("usage-unrequested", i)
            self.usage_at = self.usage_at if self.usage_at is not None else i
        elif choices and self.usage_at is not None:
            self.flag("usage-chunk-not-last", i, at=self.usage_at)
        elif self.include_usage and choices and usage is not None:
            self.usage_on_choices = True
            self.flag("usage-on-choices-chunk", i)
        elif self.include_usage and "usage" not in chunk and not prefilter:
            self.flag("usage-null-missing", i)
        for choice in choices:
            n = choice["index"]
            self.finished.setdefault(n, None)
            self.on_choice(i, n, choice)
            if choice.get("finish_reason") is None:
                continue
            if (at := self.finished[n]) is not None:
                self.flag("finish-reason-repeated", i, n=n, at=at)
            else:
                self.finished[n] = i
                self.on_finish(i, n)

    def same_stream(self, i: int, chunk: dict[str, Any]) -> None:
        if chunk.get("object") != self.chunk_object:
            self.flag("object-not-chunk", i, want=self.chunk_object, found=chunk.get("object"))
        if self.first is None:
            self.first = (i, chunk)
            return
        at, first = self.first
        if changed := [k for k in ("id", "model", "created") if chunk.get(k) != first.get(k)]:
            was = " and ".join(f"{k} {first.get(k)!r}" for k in changed)
            found = " and ".join(f"{k} {chunk.get(k)!r}" for k in changed)
            self.flag("chunk-identity-changed", i, was=was, at=at, found=found)

    def end(self) -> None:
        if self.error_at is not None:
            return  # the error is why anything after it is missing
        if self.done_at is None:
            self.flag("done-missing", -1)
        for n, at in sorted(self.finished.items()):
            if at is None:
                self.flag("finish-reason-missing", -1, n=n)
                self.on_unfinished(n)
        if self.include_usage and self.usage_at is None and not self.usage_on_choices:
            self.flag("usage-chunk-missing", -1)

    def violations(self) -> list[Violation]:
        """One Violation per rule, at its first event, counting the rest: a report stays
        readable when every chunk of a stream breaks the same rule."""
        return one_per_rule(self.found)


# --- synthesizing -----------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8, the way OpenAI writes chunks. A lone surrogate has no UTF-8
    form: such a value is written with ASCII escapes, the same JSON value."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def sse_body(chunks: Sequence[Any]) -> bytes:
    return b"".join(b"data: " + dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def created(rng: random.Random) -> int:
    """A fixed timestamp per seed (late 2023 to mid 2025), so replays are byte-identical."""
    return 1_700_000_000 + rng.randrange(50_000_000)


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut every ``size`` characters. Python strings cut between code points, so
    a piece never holds half a character and every piece encodes to valid UTF-8."""
    return [text[i : i + size] for i in range(0, len(text), size)]


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


def with_headers(response: Response, extra: Headers) -> Response:
    """``extra`` appended; a default it names again is dropped, so a script replaces
    ``retry-after`` or ``x-request-id`` instead of sending two of them."""
    names = {name.lower() for name, _ in extra}
    kept = tuple(pair for pair in response.headers if pair[0].lower() not in names)
    return Response(response.status, kept + extra, response.body, response.reason)


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
