"""Ollama's native API: ``/api/chat`` and ``/api/generate`` as NDJSON, ``/api/embed``,
the legacy ``/api/embeddings``, and the model list ``GET /api/tags``.

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys
it, ``synthesize`` answers a Script, ``error`` gives misses Ollama's ``{"error": ...}``
shape, and ``check`` (in ``check.py``, with its RULES) judges an NDJSON stream.
Shapes follow wire-formats.md §8 and the corpus (ollama/native-*); where the docs and the
corpus disagreed, the corpus won, and between recordings, the newest. Ollama's own
OpenAI-compatible ``/v1/...`` routes are served by the openai dialects.
"""

from __future__ import annotations

import hashlib
import http
import json
import math
import random
import time
from typing import Any

from mockserver.dialects._kit.wire import DEFAULT_TEXT, pieces, split_thinking, with_headers
from mockserver.dialects.contract import Dialect, Route, Upstream
from mockserver.dialects.ollama import knobs
from mockserver.dialects.ollama.check import ENDPOINTS, check, endpoint
from mockserver.dialects.ollama.check import RULES as RULES  # re-exported: the rule ids
from mockserver.dialects.ollama.limits import DEFAULT_DIMENSIONS as DEFAULT_DIMENSIONS
from mockserver.dialects.ollama.limits import LIMITS, dimensions, inputs
from mockserver.dialects.ollama.limits import tokens as _tokens
from mockserver.dialects.ollama.recipes import RECIPES
from mockserver.framing.ndjson import NDJSON
from mockserver.model import (
    Identity,
    Request,
    Response,
    Script,
    ToolCall,
    canonical_json,
    identity_from,
)

VOLATILE_FIELDS: dict[str, str] = {
    "keep_alive": "how long the model stays loaded after the request, not what it answers",
    **{
        f"options.{name}": "hardware placement of the model (threads, GPUs, memory mapping), "
        "not what it answers"
        for name in ("num_thread", "num_gpu", "main_gpu", "low_vram", "numa", "use_mmap")
    },
    "options.use_mlock": "whether the model is locked in RAM, not what it answers",
}
DEFAULTS: dict[str, Any] = {
    "tools": [],
    "format": "",
    "options": {},
    "images": [],
    "context": [],
    "system": "",
    "template": "",
    "suffix": "",
    "raw": False,
    "truncate": True,
}
"""Request fields whose spelled-out default asks for the same answer as leaving them out
(ollama-python 0.2 sent ``"format": ""``, ``"context": []``...; 0.6 sends ``"tools": []``)."""

THINKING_TEXT = "Let me think about what is being asked before I answer."
JSON_TYPE = "application/json; charset=utf-8"
MODELS = (  # GET /api/tags: (name, family, parameter size, quantization, size in bytes)
    ("llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2_019_393_189),
    ("qwen3:8b", "qwen3", "8.2B", "Q4_K_M", 5_225_387_923),
    ("nomic-embed-text:latest", "nomic-bert", "137M", "F16", 274_302_450),
)


def is_stream(request: Request) -> bool:
    """Chat and generate stream unless the body says ``"stream": false``."""
    body = request.json
    return (
        endpoint(request) in ("chat", "generate")
        and isinstance(body, dict)
        and body.get("stream") is not False
    )


def identity(request: Request) -> Identity:
    body = request.json
    if body is None and not request.body:
        return identity_from([])  # GET /api/tags: nothing decides the answer but the path
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("body", text)])
    fields = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    if isinstance(options := fields.get("options"), dict):
        fields["options"] = {
            k: v for k, v in options.items() if f"options.{k}" not in VOLATILE_FIELDS
        }
    for name, default in DEFAULTS.items():
        if name in fields and canonical_json(fields[name]) == canonical_json(default):
            del fields[name]
    model = fields.get("model")
    if isinstance(model, str) and model and ":" not in model.rsplit("/", 1)[-1]:
        fields["model"] = model + ":latest"  # Ollama's own default tag
    if isinstance(messages := fields.get("messages"), list):
        fields["messages"] = [  # the client drops empty fields: "" and [] say nothing
            {k: v for k, v in m.items() if v not in ("", [], {})} if isinstance(m, dict) else m
            for m in messages
        ]
    if endpoint(request) in ("chat", "generate"):
        fields["stream"] = is_stream(request)  # absent means true
    if endpoint(request) == "embed" and isinstance(fields.get("input"), str) and fields["input"]:
        fields["input"] = [fields["input"]]
    return identity_from(fields.items())


def error(status: int, message: str, kind: str = "") -> Response:
    """Ollama's error: ``{"error": message}`` compact, as Gin's c.JSON writes it (corpus:
    ollama/native-chat-error-404). Ollama has no error types: ``kind`` is not sent."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return Response(status, (("content-type", JSON_TYPE),), go_json({"error": message}), reason)


# --- synthesize -------------------------------------------------------------------------


def go_json(value: Any) -> bytes:
    """Compact JSON the way Go's encoding/json writes it: UTF-8, with <, >, &, U+2028 and
    U+2029 escaped. A lone surrogate has no UTF-8 form: then ASCII escapes, same value."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"))
    for char in "&<>\u2028\u2029":  # only ever inside JSON strings
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode("utf-8")


def _timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros cut, as Go's time.Time marshals."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    digits = f"{fraction:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{digits}Z" if digits else "Z"
    )


def thinking_and_content(text: str, think: Any = None) -> tuple[str, str]:
    """(thinking, content) of a script's text. ``<think>T</think>C`` answers with thinking T
    and content C, exactly as written (Ollama parses these tags out of a model's output);
    without the tags, a request with ``think`` set (true or a level) thinks THINKING_TEXT."""
    reasoning, answer = split_thinking(text)
    if reasoning is not None:
        return reasoning, answer or ""
    return (THINKING_TEXT if think not in (None, False, "") else ""), text


def tool_call(index: int, call: ToolCall) -> dict[str, Any]:
    """A whole tool call; arguments that are not a JSON object go under ``value``."""
    arguments = json.loads(call.arguments)
    if not isinstance(arguments, dict):
        arguments = {"value": arguments}
    head = {"index": index} if index else {}  # Go's `index,omitempty`
    return {"function": {**head, "name": call.name, "arguments": arguments}}


def _timing(rng: random.Random, prompt: int, evals: int) -> tuple[int, int, dict[str, int]]:
    """(start in ns since the epoch, ns per generated token, the metrics)."""
    start = 1_700_000_000 * 10**9 + rng.randrange(50_000_000 * 10**9)
    load = rng.randrange(1_000_000, 50_000_000)
    prompt_duration = max(1, prompt) * rng.randrange(200_000, 2_000_000)
    per_token = rng.randrange(15_000_000, 40_000_000)
    total = load + prompt_duration + evals * per_token + rng.randrange(100_000, 5_000_000)
    metrics = {
        "total_duration": total,
        "load_duration": load,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prompt_duration,
        "eval_count": evals,
        "eval_duration": evals * per_token,
    }
    return start, per_token, {k: v for k, v in metrics.items() if v}  # Go's omitempty


def _generation(kind: str, body: dict[str, Any], script: Script, stream: bool) -> bytes:
    """Chat or generate: thinking pieces, content pieces and (chat) whole tool calls, each
    its own ``done: false`` line, then the ``done: true`` line with the metrics; or, not
    streamed, one object shaped like that last line holding everything."""
    rng = random.Random(script.seed)
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text or ""
    thinking, content = thinking_and_content(text, body.get("think"))
    size = script.chunk_size
    calls = list(enumerate(script.tool_calls)) if kind == "chat" else []
    parts: list[dict[str, Any]] = [{"content": "", "thinking": p} for p in pieces(thinking, size)]
    parts += [{"content": p} for p in pieces(content, size)]
    parts += [{"content": "", "tool_calls": [tool_call(t, c)]} for t, c in calls]
    evals = len(pieces(thinking, size)) + len(pieces(content, size))
    evals = max(1, evals + sum(len(pieces(c.arguments, size)) for _, c in calls))
    asked = body.get("messages") if kind == "chat" else body.get("prompt", "")
    prompt = script.prompt_tokens if script.prompt_tokens is not None else _tokens(asked)
    start, per_token, metrics = _timing(rng, prompt, evals)
    model = body["model"] if isinstance(body.get("model"), str) else "tapedeck"
    end: dict[str, Any] = {"done": True, "done_reason": script.finish_reason or "stop"}
    if kind == "generate":
        end["context"] = [rng.randrange(1, 128_000) for _ in range(prompt + evals)]
    first = start + metrics["total_duration"] - metrics["eval_duration"]

    def line(at: int, part: dict[str, Any], tail: dict[str, Any]) -> dict[str, Any]:
        head = {"model": model, "created_at": _timestamp(at)}
        if kind == "chat":
            return {**head, "message": {"role": "assistant", **part}, **tail}
        return {**head, "response": part["content"], **_thinking(part), **tail}

    if not stream:
        whole: dict[str, Any] = {"content": content}
        whole.update({"thinking": thinking} if thinking else {})
        whole.update({"tool_calls": [tool_call(t, c) for t, c in calls]} if calls else {})
        return go_json(line(start + metrics["total_duration"], whole, {**end, **metrics}))
    lines = [line(first + k * per_token, p, {"done": False}) for k, p in enumerate(parts)]
    lines.append(line(start + metrics["total_duration"], {"content": ""}, {**end, **metrics}))
    return b"".join(go_json(item) + b"\n" for item in lines)


def _thinking(part: dict[str, Any]) -> dict[str, Any]:
    return {"thinking": part["thinking"]} if part.get("thinking") else {}


def vector(seed: int, text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the seed and the text: the same input always
    embeds the same, wherever it sits in the request."""
    rng = random.Random(f"{seed}\0{text}")
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [float(f"{x / norm:.7g}") for x in raw]  # float32 precision, as Ollama sends


def _embeddings(kind: str, body: dict[str, Any], script: Script) -> bytes:
    size = dimensions(body)
    if kind == "embeddings":  # legacy: {"embedding": [...]}, empty for an empty prompt
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
        return go_json({"embedding": vector(script.seed, text, size) if text else []})
    texts = [item if isinstance(item, str) else canonical_json(item) for item in inputs(body)]
    prompt = script.prompt_tokens
    prompt = sum(_tokens(t) for t in texts) if prompt is None else prompt
    rng = random.Random(script.seed)
    load = rng.randrange(1_000_000, 50_000_000)
    total = load + max(1, prompt) * rng.randrange(200_000, 2_000_000)
    answer: dict[str, Any] = {
        "model": body["model"] if isinstance(body.get("model"), str) else "tapedeck",
        "embeddings": [vector(script.seed, t, size) for t in texts],
    }
    if texts:
        answer.update(total_duration=total, load_duration=load)
        answer.update({"prompt_eval_count": prompt} if prompt else {})
    return go_json(answer)


def tags() -> dict[str, Any]:
    """The fixed model list ``GET /api/tags`` answers (a dialect never sees the cassettes
    loaded, so it cannot list their models): the same three models every time."""
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-06-01T12:00:00.123456789Z",
                "size": size,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": family,
                    "families": [family],
                    "parameter_size": parameters,
                    "quantization_level": quantization,
                },
            }
            for name, family, parameters, quantization, size in MODELS
        ]
    }


def synthesize(request: Request, script: Script) -> Response:
    """Ollama's answer to ``script`` for the request's endpoint, streamed as NDJSON when
    chat or generate ask for it (the default). Tool calls apply to chat only; embeddings
    and the model list ignore the script but for its seed, status and headers.

    Token rule: eval_count counts the pieces of ``chunk_size`` characters emitted (thinking,
    content, and each tool call's arguments text), at least 1; prompt_eval_count is the
    script's, else about a token per four characters of the messages / prompt / input.
    """
    if script.status >= 400:
        failure = error(script.status, script.error_message, script.error_kind or "")
        return with_headers(failure, script.headers)
    body = request.json if isinstance(request.json, dict) else {}
    kind = endpoint(request)
    stream = is_stream(request)
    if kind == "tags":
        payload = go_json(tags())
    elif kind in ("embed", "embeddings"):
        payload = _embeddings(kind, body, script)
    else:
        payload = _generation(kind if kind == "generate" else "chat", body, script, stream)
    content_type = NDJSON.content_type if stream else JSON_TYPE
    return with_headers(
        Response(200, (("content-type", content_type),), payload, "OK"), script.headers
    )


def midstream_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """Ollama's in-band error: one NDJSON line with an ``error`` key, then the end (Ollama
    has no error types: ``kind`` is not sent)."""
    text = message or "The server had an error while processing your request."
    return go_json({"error": text}) + b"\n"


DIALECT = Dialect(
    name="ollama",
    routes=tuple(  # also under a prefix: OLLAMA_HOST with a path, Open WebUI's /ollama
        Route("GET" if name == "tags" else "POST", prefix + path, name)
        for prefix in ("", "{prefix*}")
        for path, name in ENDPOINTS.items()
    ),
    framing=NDJSON,
    is_stream=is_stream,
    identity=identity,
    check=check,
    error=error,
    synthesize=synthesize,
    base_path="",
    environment=(("OLLAMA_HOST", "{url}"),),
    default_error_kind="",
    rules=RULES,
    upstreams=(Upstream("ollama", "http://127.0.0.1:11434"),),
    midstream_error=midstream_error,
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    limits=LIMITS,
)
