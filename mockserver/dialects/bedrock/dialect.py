"""Amazon Bedrock Runtime: ``converse``, ``converse-stream``, ``invoke`` and
``invoke-with-response-stream`` under ``/model/{modelId}/``.

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
(the model id from the path, percent-decoded, plus the body), ``synthesize`` answers a
Script, ``error`` gives misses Bedrock's error shape, and ``check`` judges a binary AWS
event stream (framing/aws_eventstream.py) off to the side. The rules come from
wire-formats.md §10 and the botocore service model, checked against corpus/bedrock; where
they disagreed, the recordings won. SigV4 headers are never looked at. The stream rules
live in ``_bedrock_check``, the answer builder (``Answer``) in ``_bedrock_synth``.

Synthesis: converse bodies and converse-stream frames (sorted keys, a random-length ``p``
padding per event, as Bedrock sends) for any model; invoke answers for Anthropic models
only (a Messages API body, or ``chunk`` events wrapping its stream events). A Script text
``"<think>reasoning</think>answer"`` makes a reasoning block first (``reasoningContent``
with a signature; ``thinking`` for invoke). ``Script.n`` is ignored: Bedrock has no n.
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import math
import random
import re
import string
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from mockserver.dialects._kit.rules import table_from
from mockserver.dialects.bedrock import check as rules
from mockserver.dialects.bedrock import knobs
from mockserver.dialects.bedrock.recipes import RECIPES
from mockserver.dialects.bedrock.synth import Answer
from mockserver.dialects.contract import Dialect, Route, Upstream
from mockserver.framing import aws_eventstream
from mockserver.framing.aws_eventstream import AWS_EVENTSTREAM
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

VOLATILE_FIELDS: dict[str, str] = {
    "requestMetadata": "key-value tags for filtering invocation logs; never seen by the model",
}

RULES = rules.RULES
"""Every rule ``check`` enforces, id -> what it requires; a Violation's rule is one of these."""

DEFAULT_TEXT = "This is a synthesized reply from Tapedeck."
ENDPOINTS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
_PATH = re.compile(r"/model/(.+)/(" + "|".join(map(re.escape, ENDPOINTS)) + r")/*\Z")
# Defaults spelled out that ask for the same answer as the field left out (Converse).
_EMPTY_DEFAULTS = (
    "system",
    "inferenceConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
)
PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
ERROR_KINDS: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
"""The exception Bedrock names (``x-amzn-ErrorType``) for a status, from its service model."""
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
"""OpenAI finish reasons a script may use, in Bedrock's words; others pass through."""


def route(path: str) -> tuple[str, str] | None:
    """(endpoint, model id) of a Bedrock path; the model id percent-decoded, as boto3 sends
    ``v1%3A0`` and a server sees ``v1:0``."""
    match = _PATH.match(path.split("?", 1)[0])
    return (match.group(2), unquote(match.group(1))) if match else None


def is_stream(request: Request) -> bool:
    found = route(request.path)
    return found is not None and found[0].endswith("-stream")


def identity(request: Request) -> Identity:
    found = route(request.path)
    endpoint, model = found if found else ("", None)
    body = request.json
    if not isinstance(body, dict):
        text = canonical_json(body) if body is not None else request.body.decode("utf-8", "replace")
        return identity_from([("bedrock.modelId", model), ("body", text)])
    fields = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    if endpoint.startswith("converse"):
        for name in _EMPTY_DEFAULTS:
            if fields.get(name) in ([], {}):
                del fields[name]
        config = fields.get("inferenceConfig")
        if isinstance(config, dict) and config.get("stopSequences") == []:
            config = {k: v for k, v in config.items() if k != "stopSequences"}
            fields["inferenceConfig"] = config
            if not config:
                del fields["inferenceConfig"]
    return identity_from([*fields.items(), ("bedrock.modelId", model)])


# --- errors -----------------------------------------------------------------------------


def error_kind(status: int, kind: str) -> str:
    """``kind`` when it is an AWS exception name, else the one Bedrock uses for ``status``
    (the server asks in OpenAI's words, e.g. ``invalid_request_error``)."""
    if re.fullmatch(r"[A-Z][A-Za-z]*(Exception|Error)", kind):
        return kind
    if status in ERROR_KINDS:
        return ERROR_KINDS[status]
    return "InternalServerException" if status >= 500 else "ValidationException"


def error(status: int, message: str, kind: str) -> Response:
    """Bedrock's error: ``{"message": ...}`` with the exception in ``x-amzn-ErrorType``
    (corpus: bedrock/error-403-converse). The request id is a digest of the error."""
    kind = error_kind(status, kind)
    body = _dumps({"message": message}, sort=False)
    digest = hashlib.sha256(f"{status}\0{kind}\0{message}".encode("utf-8", "replace")).digest()
    headers = (
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", kind + ERROR_TYPE_SUFFIX),
        ("x-amzn-RequestId", str(uuid.UUID(bytes=digest[:16], version=4))),
    )
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return Response(status, headers, body, reason)


# --- check -----------------------------------------------------------------------------


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest."""
    found = route(request.path) if request is not None else None
    if found is not None:
        invoke = found[0].startswith("invoke")
    else:  # no request: an invoke stream is made of chunk events
        invoke = any(e.event == "chunk" for e in events[:1])
    checker = rules.InvokeChecker() if invoke else rules.ConverseChecker()
    return checker.run(events)


# --- synthesize -------------------------------------------------------------------------


def _dumps(value: Any, sort: bool = True) -> bytes:
    """Compact JSON as UTF-8 (Bedrock's own output has sorted keys). A lone surrogate has
    no UTF-8 form: such a value is written with ASCII escapes, the same JSON value."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=sort).encode("ascii")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _with_headers(response: Response, extra: Headers) -> Response:
    """``extra`` appended; a default it names again is dropped."""
    names = {name.lower() for name, _ in extra}
    kept = tuple(pair for pair in response.headers if pair[0].lower() not in names)
    return Response(response.status, kept + extra, response.body, response.reason)


def split_thinking(text: str | None) -> tuple[str | None, str | None]:
    """(reasoning, answer) of a Script text under the ``<think>…</think>`` convention."""
    if text is not None and text.startswith("<think>") and "</think>" in text:
        reasoning, _, answer = text[len("<think>") :].partition("</think>")
        return reasoning, answer
    return None, text


def synthesize(request: Request, script: Script) -> Response:
    """Bedrock's answer to ``script`` for the request's endpoint (see the module docstring
    for thinking). Invoke answers exist for Anthropic models only: a Messages API body, or
    chunks wrapping its stream events; other models get a ValidationException saying so.

    Token rule: outputTokens counts the pieces sent (reasoning and text pieces, tool-input
    fragments, of ``chunk_size`` characters), streamed or not; inputTokens is the script's,
    else about four characters per token of the request's system prompt and messages.
    """
    endpoint, model = route(request.path) or ("converse", "")
    if script.status < 400 and endpoint.startswith("invoke") and "anthropic." not in model:
        message = (
            f"Tapedeck synthesizes invoke answers for Anthropic models (anthropic.*) only, "
            f"not {model!r}: use converse, or record this model's answer."
        )
        script = replace(script, status=400, error_message=message, error_kind=None)
    if script.status >= 400:
        kind = script.error_kind or error_kind(script.status, "")
        return _with_headers(error(script.status, script.error_message, kind), script.headers)
    body = request.json if isinstance(request.json, dict) else {}
    rng = random.Random(script.seed)
    headers: Headers = (("x-amzn-RequestId", str(uuid.UUID(int=rng.getrandbits(128), version=4))),)
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    reasoning, text = split_thinking(text)
    prefix, length = ("tooluse_", 22) if endpoint.startswith("converse") else ("toolu_bdrk_", 24)
    prompt = script.prompt_tokens
    if prompt is None:
        prompt = math.ceil(len(canonical_json([body.get("system"), body.get("messages")])) / 4)
    stop = STOP_REASONS.get(script.finish_reason or "", script.finish_reason)
    answer = Answer(
        reasoning=_pieces(reasoning or "", script.chunk_size),
        signature=base64.b64encode(rng.randbytes(48)).decode() if reasoning else "",
        text=_pieces(text or "", script.chunk_size),
        tools=[(c.id or _random_id(rng, prefix, length), c.name) for c in script.tool_calls],
        fragments=[_pieces(c.arguments, script.chunk_size) for c in script.tool_calls],
        stop=stop or ("tool_use" if script.tool_calls else "end_turn"),
        input_tokens=max(1, prompt),
        latency=rng.randint(300, 3000),
    )
    if endpoint == "converse":
        payload = _dumps(answer.converse())
        headers = (("Content-Type", "application/json"), *headers)
    elif endpoint == "converse-stream":
        events = answer.converse_events(lambda: PADDING[: rng.randint(1, len(PADDING))])
        payload = b"".join(_frame(name, _dumps(event)) for name, event in events)
        headers = (("Content-Type", AWS_EVENTSTREAM.content_type), *headers)
    else:
        message_id = _random_id(rng, "msg_bdrk_", 24)
        # anthropic.claude-3-5-sonnet-20240620-v1:0 (or a profile ARN) -> the model's name
        native = re.sub(r"-v\d+(:\d+)?\Z", "", model.rsplit("anthropic.", 1)[-1])
        if endpoint == "invoke":
            payload = _dumps(answer.anthropic_message(message_id, native), sort=False)
            headers = (
                ("Content-Type", "application/json"),
                *headers,
                ("X-Amzn-Bedrock-Invocation-Latency", str(answer.latency)),
                ("X-Amzn-Bedrock-Output-Token-Count", str(answer.output_tokens)),
                ("X-Amzn-Bedrock-Input-Token-Count", str(answer.input_tokens)),
            )
        else:
            payload = b"".join(
                _frame("chunk", _dumps({"bytes": base64.b64encode(_dumps(e, sort=False)).decode()}))
                for e in answer.anthropic_events(message_id, native)
            )
            headers = (
                ("Content-Type", AWS_EVENTSTREAM.content_type),
                ("X-Amzn-Bedrock-Content-Type", "application/json"),
                *headers,
            )
    return _with_headers(Response(200, headers, payload, "OK"), script.headers)


def _frame(event_type: str, payload: bytes) -> bytes:
    """One event frame with Bedrock's three headers, in Bedrock's order."""
    headers = ((":event-type", event_type), (":content-type", "application/json"))
    return aws_eventstream.encode((*headers, (":message-type", "event")), payload)


DIALECT = Dialect(
    name="bedrock",
    routes=tuple(
        Route("POST", f"/model/{{model*}}/{endpoint}", endpoint) for endpoint in ENDPOINTS
    ),
    framing=AWS_EVENTSTREAM,
    is_stream=is_stream,
    identity=identity,
    check=check,
    error=error,
    synthesize=synthesize,
    base_path="",
    environment=(
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "{url}"),
        ("AWS_ACCESS_KEY_ID", "tapedeck-test-key"),
        ("AWS_SECRET_ACCESS_KEY", "tapedeck-test-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ),
    default_error_kind="ValidationException",
    rules=table_from(RULES),
    upstreams=(Upstream("bedrock"),),
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    secret_headers=frozenset({"x-amz-security-token"}),
)
