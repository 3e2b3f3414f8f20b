"""OpenAI Chat Completions (``POST /v1/chat/completions``), and every server that copies it.

In the flow (ARCHITECTURE.md) the router hands this dialect a request: ``identity`` keys it
for the Library, ``synthesize`` answers a Script when nothing was recorded, ``error`` gives
misses OpenAI's error shape, and ``check`` judges any SSE stream, recorded or synthesized,
off to the side. The rules come from wire-formats.md §1, §2, §9, §11, §12; wherever a rule
disagreed with a real OpenAI or Azure recording in the corpus, the recording won.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from mockserver.dialects._kit import limits, wire
from mockserver.dialects._kit.rules import Rule, RuleTable
from mockserver.dialects._kit.wire import DEFAULT_TEXT as DEFAULT_TEXT  # re-exported
from mockserver.dialects.openai import common, conformance, knobs, stream_check
from mockserver.dialects.openai.recipes_chat import RECIPES
from mockserver.model import Event, Identity, Request, Response, Script, Violation

VOLATILE_FIELDS: dict[str, str] = {
    "user": "an end-user tag for abuse monitoring; the answer does not depend on it",
    "metadata": "labels for stored completions and dashboards, never seen by the model",
    "store": "whether OpenAI keeps the completion for evals; the answer is the same",
    "prompt_cache_key": "a cache routing hint; it changes latency and cached_tokens only",
    "safety_identifier": "a hashed end-user id for safety monitoring",
    "stream_options.include_obfuscation": "random padding on chunks, ignored by clients",
}

RULES = stream_check.STREAM_RULES + RuleTable(
    Rule(
        "role-not-first",
        "A choice's role comes in its first delta (it may be absent); a later delta may "
        "only repeat that same role (OpenRouter, Snowflake Cortex and Z.ai do, and the "
        "openai SDK accepts it), never name another.",
        "expected the role of the first delta of choice {n} ({first}) or none on later "
        "deltas, found role {found}",
        stream_check.ORDERING,
    ),
    Rule(
        "content-after-finish",
        "After its finish_reason, a choice's deltas hold only empty values (no content, "
        "tool calls, refusal, reasoning...).",
        "expected nothing more for choice {n} after its finish at event {at}, found delta {found}",
        stream_check.ORDERING,
    ),
    Rule(
        "tool-call-start-incomplete",
        "The first delta of each (choice, tool index) carries index, id, type and function.name.",
        "expected index, id, type and function.name on the first delta of tool call {t} of "
        "choice {n}, found no {found}",
        stream_check.ORDERING,
    ),
    Rule(
        "tool-call-header-repeated",
        "Later deltas of a tool call carry no id or function.name, even the same one, as the "
        "SDK's stream helper concatenates them (it overwrites type, so a repeated type is "
        "fine).",
        "expected only arguments after the first delta of tool call {t} of choice {n}, found "
        "{found} again",
        stream_check.ORDERING,
    ),
    Rule(
        "tool-arguments-invalid",
        "A tool call's argument fragments join to valid JSON, checked when its choice "
        "finishes (or at the end).",
        "expected JSON arguments for tool call {t} of choice {n}, found {found}",
    ),
)
"""Every rule ``check`` enforces (the shared chunk-stream rules, then the chat ones): its
id, what it requires, what a violation says; a Violation's rule is one of these."""

DEFAULTS: dict[str, Any] = {"stream": False, "n": 1}
"""Fields whose default, spelled out, asks for the same answer as leaving it out."""


def is_stream(request: Request) -> bool:
    return isinstance(request.json, dict) and request.json.get("stream") is True


def identity(request: Request) -> Identity:
    """Every body field but VOLATILE_FIELDS, defaults dropped, plus Azure's deployment and
    api-version (``common.body_identity``)."""
    body = request.json if isinstance(request.json, dict) else {}
    # OpenAI's documented default: "auto" when tools are present, "none" when none are.
    # litellm and others leave it out; SDK users often spell it out.
    tool_choice = "auto" if body.get("tools") else "none"
    return common.body_identity(request, VOLATILE_FIELDS, {**DEFAULTS, "tool_choice": tool_choice})


# OpenAI's error shape and status-to-code table are the same for every OpenAI endpoint.
error = common.error


# --- check -----------------------------------------------------------------------------


def _filled(value: Any) -> bool:
    return value not in (None, "", [], {})


class _ChatChecker(stream_check.StreamChecker):
    """Adds what a chat delta must respect: role first, nothing after the finish, and
    tool calls that open with a header and whose argument fragments join to JSON."""

    def __init__(self, request: Request | None) -> None:
        super().__init__(request, "chat.completion.chunk", RULES)
        self.roles: dict[int, Any] = {}  # choice index -> the role of its first delta
        self.tools: dict[int, dict[int, list[str]]] = {}  # choice -> tool -> fragments

    def on_choice(self, i: int, n: int, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return  # Azure sends filter-only choices without a delta
        role = delta.get("role")
        if n not in self.roles:
            self.roles[n] = role
        elif role is not None and role != self.roles[n]:
            first = "none" if self.roles[n] is None else wire.short(self.roles[n])
            self.flag("role-not-first", i, n=n, first=first, found=wire.short(role))
        if (at := self.finished[n]) is not None and any(
            _filled(value) for key, value in delta.items() if key != "role"
        ):
            self.flag("content-after-finish", i, n=n, at=at, found=wire.short(delta))
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            self.tool_call(i, n, position, call if isinstance(call, dict) else {})

    def tool_call(self, i: int, n: int, position: int, call: dict[str, Any]) -> None:
        function: dict[str, Any] = (
            call["function"] if isinstance(call.get("function"), dict) else {}
        )
        has_index = type(call.get("index")) is int
        t = call["index"] if has_index else position
        fragment = function.get("arguments")
        fragments = self.tools.setdefault(n, {})
        if t in fragments:
            fragments[t].append(fragment if isinstance(fragment, str) else "")
            header = {"id": call.get("id"), "function.name": function.get("name")}
            if again := [name for name, value in header.items() if _filled(value)]:
                self.flag("tool-call-header-repeated", i, t=t, n=n, found=" and ".join(again))
            return
        fragments[t] = [fragment if isinstance(fragment, str) else ""]
        present = {
            "index": has_index,
            "id": _filled(call.get("id")),
            "type": _filled(call.get("type")),
            "function.name": _filled(function.get("name")),
        }
        if missing := [name for name, ok in present.items() if not ok]:
            self.flag("tool-call-start-incomplete", i, t=t, n=n, found=" or ".join(missing))

    def on_finish(self, i: int, n: int) -> None:
        for t, fragments in self.tools.get(n, {}).items():
            try:
                json.loads("".join(fragments))
            except (ValueError, RecursionError):
                self.flag(
                    "tool-arguments-invalid", i, t=t, n=n, found=wire.short("".join(fragments))
                )

    def on_unfinished(self, n: int) -> None:
        self.on_finish(-1, n)


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest."""
    return _ChatChecker(request).run(events)


# --- synthesize -------------------------------------------------------------------------


def _choices(request: Request, script: Script) -> int:
    """How many choices an answer holds: the script's n, else the request's, else 1."""
    asked = limits.count(limits.body_field(request, "n"))
    return script.n or (asked if asked is not None and asked >= 1 else 1)


LIMITS = (
    limits.Size("n", "n", limits.number("n")),
    *limits.script_sizes(_choices, uses_n=True),
)
"""What sizes a synthesized answer (checked before synthesis: ``_kit/limits.py``)."""


def synthesize(request: Request, script: Script) -> Response:
    """OpenAI's answer to ``script``, streamed when the request asks for a stream.

    Token rule: completion_tokens counts the pieces emitted per choice (content pieces and
    argument fragments of ``chunk_size`` characters), summed over the choices, streamed or
    not; prompt_tokens is the script's, else an estimate from the request's messages.
    """
    if script.status >= 400:
        return common.scripted_error(script)
    body = request.json if isinstance(request.json, dict) else {}
    rng = random.Random(script.seed)
    head = {
        "id": wire.random_id(rng, "chatcmpl-", 22),
        "object": "chat.completion.chunk",
        "created": wire.created(rng),
        "model": body["model"] if isinstance(body.get("model"), str) else "tapedeck",
    }
    tier = {"service_tier": "default", "system_fingerprint": common.SYSTEM_FINGERPRINT}
    n = _choices(request, script)
    text = DEFAULT_TEXT if script.text is None and not script.tool_calls else script.text
    ids = [[c.id or wire.random_id(rng, "call_", 24) for c in script.tool_calls] for _ in range(n)]
    finish = script.finish_reason or ("tool_calls" if script.tool_calls else "stop")
    pieces = wire.pieces(text or "", script.chunk_size)
    fragments = [wire.pieces(c.arguments, script.chunk_size) for c in script.tool_calls]
    completion = n * (len(pieces) + sum(map(len, fragments)))
    prompt = script.prompt_tokens
    if prompt is None:
        prompt = common.estimate_prompt_tokens(body.get("messages"))
    usage = common.usage_object(prompt, completion)
    if is_stream(request):
        per_choice = [_deltas(text, pieces, script, ids[i], fragments, finish) for i in range(n)]
        chunks = [  # every choice has as many chunks, so round-robin is a plain zip
            {
                **head,
                **tier,
                "choices": [{"index": i, "delta": d, "logprobs": None, "finish_reason": r}],
            }
            for step in zip(*per_choice, strict=True)
            for i, (d, r) in enumerate(step)
        ]
        if common.include_usage(request):
            chunks = [{**chunk, "usage": None} for chunk in chunks]
            chunks.append({**head, **tier, "choices": [], "usage": usage})
        payload = common.sse_body(chunks)
        content_type = "text/event-stream; charset=utf-8"
    else:
        choices = []
        for i in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if script.tool_calls:
                message["tool_calls"] = [
                    common.tool_call(ids[i][t], call.name, call.arguments)
                    for t, call in enumerate(script.tool_calls)
                ]
            message.update(refusal=None, annotations=[])
            choices.append(
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            )
        # OpenAI's key order differs from the chunks': the tier pair comes after usage.
        whole = {**head, "object": "chat.completion", "choices": choices, "usage": usage, **tier}
        payload = wire.dumps(whole)
        content_type = "application/json"
    headers = common.success_headers(content_type, rng, prompt + completion)
    return wire.with_headers(Response(200, headers, payload, "OK"), script.headers)


def _deltas(
    text: str | None,
    pieces: list[str],
    script: Script,
    ids: list[str],
    fragments: list[list[str]],
    finish: str,
) -> list[tuple[dict[str, Any], str | None]]:
    """One choice's deltas in OpenAI's order (wire-formats.md §1): the role (holding the
    first tool call's header when the answer is only tool calls), content pieces, each
    tool call's header and argument fragments, then an empty delta with the finish_reason."""
    starts = [
        {"index": t, **common.tool_call(ids[t], call.name, "")}
        for t, call in enumerate(script.tool_calls)
    ]
    first: dict[str, Any] = {"role": "assistant", "content": "" if text is not None else None}
    if text is None:
        first["tool_calls"] = [starts[0]]
    first["refusal"] = None
    deltas: list[dict[str, Any]] = [first, *({"content": piece} for piece in pieces)]
    for t, start in enumerate(starts):
        if t > 0 or text is not None:
            deltas.append({"tool_calls": [start]})
        deltas += [
            {"tool_calls": [{"index": t, "function": {"arguments": f}}]} for f in fragments[t]
        ]
    return [(delta, None) for delta in deltas] + [({}, finish)]


DIALECT = common.dialect(
    "openai_chat",
    common.routes("chat/completions", "chat.completions"),
    is_stream=is_stream,
    identity=identity,
    check=check,
    synthesize=synthesize,
    rules=RULES,
    recipes=RECIPES,
    limits=LIMITS,
    midstream_error=conformance.chunk_error,
    knobs=knobs.OPENAI_CHAT,
    conformance=conformance.CHAT,
)
