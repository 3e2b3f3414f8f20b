"""Amazon Bedrock Runtime: ``converse``, ``converse-stream``, ``invoke`` and
``invoke-with-response-stream`` under ``/model/{modelId}/``.

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
(the model id from the path, percent-decoded, plus the body), ``synthesize`` answers a
Script, ``error`` gives misses Bedrock's error shape, and ``check`` judges a binary AWS
event stream (framing/aws_eventstream.py) off to the side. The rules come from
wire-formats.md §10 and the botocore service model, checked against corpus/bedrock; where
they disagreed, the recordings won. SigV4 headers are never looked at. The stream rules
live in ``rules.py`` (enforced by ``check.py``), the answer builder (``Answer``) in
``synth.py``.

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

from mockserver.dialects._kit.limits import script_sizes
from mockserver.dialects._kit.wire import (
    DEFAULT_TEXT,
    dumps,
    pieces,
    random_id,
    split_thinking,
    with_headers,
)
from mockserver.dialects.bedrock import knobs
from mockserver.dialects.bedrock.check import ConverseChecker, InvokeChecker
from mockserver.dialects.bedrock.recipes import RECIPES
from mockserver.dialects.bedrock.rules import RULES as RULES  # re-exported: the rule ids
from mockserver.dialects.bedrock.synth import Answer
from mockserver.dialects.contract import Dialect, Route, SecretPattern, Upstream
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
    body = dumps({"message": message})
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
    checker = InvokeChecker() if invoke else ConverseChecker()
    return checker.run(events)


# --- synthesize -------------------------------------------------------------------------


def sorted_json(value: Any) -> bytes:
    """Compact JSON as UTF-8 with sorted keys, as Bedrock's own converse output has them.
    A lone surrogate has no UTF-8 form: such a value is written with ASCII escapes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("ascii")


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
        return with_headers(error(script.status, script.error_message, kind), script.headers)
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
        reasoning=pieces(reasoning or "", script.chunk_size),
        signature=base64.b64encode(rng.randbytes(48)).decode() if reasoning else "",
        text=pieces(text or "", script.chunk_size),
        tools=[(c.id or random_id(rng, prefix, length), c.name) for c in script.tool_calls],
        fragments=[pieces(c.arguments, script.chunk_size) for c in script.tool_calls],
        stop=stop or ("tool_use" if script.tool_calls else "end_turn"),
        input_tokens=max(1, prompt),
        latency=rng.randint(300, 3000),
    )
    if endpoint == "converse":
        payload = sorted_json(answer.converse())
        headers = (("Content-Type", "application/json"), *headers)
    elif endpoint == "converse-stream":
        events = answer.converse_events(lambda: PADDING[: rng.randint(1, len(PADDING))])
        payload = b"".join(_frame(name, sorted_json(event)) for name, event in events)
        headers = (("Content-Type", AWS_EVENTSTREAM.content_type), *headers)
    else:
        message_id = random_id(rng, "msg_bdrk_", 24)
        # anthropic.claude-3-5-sonnet-20240620-v1:0 (or a profile ARN) -> the model's name
        native = re.sub(r"-v\d+(:\d+)?\Z", "", model.rsplit("anthropic.", 1)[-1])
        if endpoint == "invoke":
            payload = dumps(answer.anthropic_message(message_id, native))
            headers = (
                ("Content-Type", "application/json"),
                *headers,
                ("X-Amzn-Bedrock-Invocation-Latency", str(answer.latency)),
                ("X-Amzn-Bedrock-Output-Token-Count", str(answer.output_tokens)),
                ("X-Amzn-Bedrock-Input-Token-Count", str(answer.input_tokens)),
            )
        else:
            payload = b"".join(
                _frame("chunk", sorted_json({"bytes": base64.b64encode(dumps(e)).decode()}))
                for e in answer.anthropic_events(message_id, native)
            )
            headers = (
                ("Content-Type", AWS_EVENTSTREAM.content_type),
                ("X-Amzn-Bedrock-Content-Type", "application/json"),
                *headers,
            )
    return with_headers(Response(200, headers, payload, "OK"), script.headers)


def _frame(event_type: str, payload: bytes) -> bytes:
    """One event frame with Bedrock's three headers, in Bedrock's order."""
    headers = ((":event-type", event_type), (":content-type", "application/json"))
    return aws_eventstream.encode((*headers, (":message-type", "event")), payload)


def midstream_error(
    sequence_number: int, kind: str = "", message: str = "", request: Request | None = None
) -> bytes:
    """Bedrock's in-band error: an exception frame (``:message-type: exception``, the
    exception in ``:exception-type``, ``{"message": ...}``), then the end of the stream
    (wire-formats.md §12). ``kind``: ``throttlingException``, ``internalServerException``...
    (default ``modelStreamErrorException``)."""
    headers = (
        (":exception-type", kind or "modelStreamErrorException"),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    )
    text = message or "The model encountered an error while streaming its answer."
    return aws_eventstream.encode(headers, dumps({"message": text}))


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
    limits=script_sizes(),
    base_path="",
    environment=(
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "{url}"),
        ("AWS_ACCESS_KEY_ID", "tapedeck-test-key"),
        ("AWS_SECRET_ACCESS_KEY", "tapedeck-test-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ),
    default_error_kind="ValidationException",
    rules=RULES,
    upstreams=(Upstream("bedrock"),),
    midstream_error=midstream_error,
    recipes=RECIPES,
    knobs=knobs.KNOBS,
    secret_headers=frozenset({"x-amz-security-token"}),
    secret_patterns=(
        SecretPattern.of(
            "AWS access key id",
            r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        ),
        # SigV4: the signature in an Authorization header or a presigned URL's query.
        SecretPattern.of("AWS SigV4 signature", r"Signature=(?P<secret>[0-9a-f]{64})\b"),
        SecretPattern.of("AWS session token", r"X-Amz-Security-Token=(?P<secret>[^&\s\"']+)"),
        # A secret key or session token under its usual name (a config, a JSON body).
        SecretPattern.of(
            "AWS secret key",
            r"(?i)aws_(?:secret_access_key|session_token)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<secret>[A-Za-z0-9/+=]{16,})",
            "aws_secret_access_key",
            "aws_session_token",
        ),
    ),
)
