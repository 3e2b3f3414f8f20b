"""OpenAI legacy Completions (``POST /v1/completions``), on OpenAI, Azure and vLLM-style servers.

The same chunk stream as chat (``stream_check.StreamChecker``: ``[DONE]`` last, the
include_usage chunk, one finish per choice), but each choice holds ``text`` instead of a
delta, chunks say ``object: "text_completion"`` (no ``.chunk`` suffix), there is no role,
and a choice's last text chunk carries its finish_reason (wire-formats.md §3). vLLM's
``stop_reason`` and its ``usage: null`` on every chunk even without include_usage are
legal (corpus: vllm/legacy-completions-stream).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from mockserver.dialects._kit import limits, wire
from mockserver.dialects._kit.rules import Rule, RuleTable
from mockserver.dialects.openai import common, conformance, knobs, stream_check
from mockserver.dialects.openai.recipes_completions import RECIPES
from mockserver.model import Event, Identity, Request, Response, Script, Violation

VOLATILE_FIELDS: dict[str, str] = {
    "user": "an end-user tag for abuse monitoring; the answer does not depend on it",
    "stream_options.include_obfuscation": "random padding on chunks, ignored by clients",
}
DEFAULTS: dict[str, Any] = {"stream": False, "n": 1, "echo": False}
"""Fields whose documented default, spelled out, asks for the same answer as leaving it out."""

RULES = stream_check.STREAM_RULES + RuleTable(
    Rule(
        "choice-text-missing",
        "Every choice carries its text as a string (possibly empty); Azure's filter-only "
        "choices, which carry content_filter_results, are exempt.",
        "expected a string text on choice {n}, found {found}",
    ),
    Rule(
        "text-after-finish",
        "After its finish_reason, a choice gets no more text.",
        "expected no more text for choice {n} after its finish at event {at}, found {found}",
        stream_check.ORDERING,
    ),
    Rule(
        "logprobs-shape",
        "A choice's logprobs is null or an object whose tokens, token_logprobs, text_offset "
        "(and top_logprobs unless null) are lists of one length.",
        "expected null or lists of one length under logprobs of choice {n}, found {found}",
    ),
)
"""Every rule ``check`` enforces (the shared chunk-stream rules, then the text-choice ones):
its id, what it requires, what a violation says; a Violation's rule is one of these."""

DEFAULT_TEXT = "This is a synthesized completion from Tapedeck."
LOGPROB_KEYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def is_stream(request: Request) -> bool:
    return isinstance(request.json, dict) and request.json.get("stream") is True


def identity(request: Request) -> Identity:
    """Every body field but VOLATILE_FIELDS, defaults dropped, plus Azure's deployment and
    api-version; the prompt (string, strings, token ids) is compared as parsed JSON."""
    return common.body_identity(request, VOLATILE_FIELDS, DEFAULTS)


error = common.error


# --- check -----------------------------------------------------------------------------


def _logprobs_problem(logprobs: Any) -> bool:
    if logprobs is None:
        return False
    if not isinstance(logprobs, dict):
        return True
    keys = [k for k in LOGPROB_KEYS if k != "top_logprobs" or logprobs.get(k) is not None]
    lists = [v for k in keys if isinstance(v := logprobs.get(k), list)]
    return len(lists) < len(keys) or len({len(v) for v in lists}) > 1


class _CompletionChecker(stream_check.StreamChecker):
    """Adds what a text choice must respect: a string text, nothing after the finish,
    and logprobs lists that line up."""

    def __init__(self, request: Request | None) -> None:
        super().__init__(request, "text_completion", RULES)

    def on_choice(self, i: int, n: int, choice: dict[str, Any]) -> None:
        text = choice.get("text")
        if "text" in choice or "content_filter_results" not in choice:
            if not isinstance(text, str):
                found = wire.short(text) if "text" in choice else "no text key"
                self.flag("choice-text-missing", i, n=n, found=found)
            elif text and (at := self.finished[n]) is not None:
                self.flag("text-after-finish", i, n=n, at=at, found=wire.short(text))
        if _logprobs_problem(choice.get("logprobs")):
            self.flag("logprobs-shape", i, n=n, found=wire.short(choice.get("logprobs")))


def check(request: Request | None, events: Sequence[Event]) -> list[Violation]:
    """Every rule in RULES over one stream, in one pass; never raises. A rule broken on
    many events is reported once, at its first event, with a count of the rest."""
    return _CompletionChecker(request).run(events)


# --- synthesize -------------------------------------------------------------------------


def prompts(prompt: Any) -> list[Any]:
    """The prompts of a request: a string or one list of token ids is one prompt; a list
    of strings or of token lists is several. Anything else counts as one empty prompt."""
    if isinstance(prompt, str) or (
        isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt)
    ):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return list(prompt)
    return [""]


def _logprobs(segments: Sequence[tuple[str, float | None, int]]) -> dict[str, Any]:
    return {
        "tokens": [token for token, _, _ in segments],
        "token_logprobs": [lp for _, lp, _ in segments],
        "top_logprobs": [None if lp is None else {token: lp} for token, lp, _ in segments],
        "text_offset": [offset for _, _, offset in segments],
    }


def _copies(request: Request, script: Script) -> int:
    """Choices per prompt: the script's n, else the request's, else 1."""
    asked = limits.count(limits.body_field(request, "n"))
    return script.n or (asked if asked is not None and asked >= 1 else 1)


def _choices(request: Request, script: Script) -> int:
    return len(prompts(limits.body_field(request, "prompt"))) * _copies(request, script)


def _echoed(request: Request, script: Script) -> int | None:
    """Characters of prompt that ``echo`` repeats in every copy."""
    if not limits.body_field(request, "echo"):
        return None
    texts = prompts(limits.body_field(request, "prompt"))
    return sum(len(p) for p in texts if isinstance(p, str)) * _copies(request, script)


LIMITS = (
    limits.Size("n", "n", limits.number("n")),
    limits.Size("choices", "prompts x n", _choices),
    limits.Size("text", "echoed prompt characters x n", _echoed),
    *limits.script_sizes(_choices, uses_n=True),
)
"""What sizes a synthesized answer (checked before synthesis: ``_kit/limits.py``)."""


def synthesize(request: Request, script: Script) -> Response:
    """OpenAI's answer to ``script``, streamed when the request asks for a stream.

    One choice per (prompt, copy of n), indexed prompt-major as OpenAI does. ``echo``
    puts the prompt first (a token-id prompt echoes as "": there is no tokenizer here);
    ``suffix`` only counts toward prompt_tokens. ``logprobs: k`` gives each piece a
    deterministic logprob with itself as its only alternative (echoed prompts: null).
    The legacy API has no tools, so ``script.tool_calls`` are ignored. Tokens:
    completion_tokens counts pieces of ``chunk_size`` characters over all choices;
    prompt_tokens is the script's, else words and punctuation of prompts and suffix.
    """
    if script.status >= 400:
        return common.scripted_error(script)
    body = request.json if isinstance(request.json, dict) else {}
    rng = random.Random(script.seed)
    head = {
        "id": wire.random_id(rng, "cmpl-", 29),
        "object": "text_completion",
        "created": wire.created(rng),
        "model": body["model"] if isinstance(body.get("model"), str) else "tapedeck",
    }
    copies = _copies(request, script)
    text = DEFAULT_TEXT if script.text is None else script.text
    finish = script.finish_reason or "stop"
    pieces = wire.pieces(text, script.chunk_size)
    scores = random.Random(script.seed ^ 0x1E6AC7)
    values = [-round(scores.random() * 3, 6) for _ in pieces]
    k = body.get("logprobs")
    want_logprobs = type(k) is int and k >= 0
    suffix = body.get("suffix") if isinstance(body.get("suffix"), str) else ""
    asked_prompts = prompts(body.get("prompt"))
    prompt_tokens = script.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = max(1, common.estimate_tokens([*asked_prompts, suffix]))
    choices = []  # per choice: its (text, logprob, offset) segments
    generated = list(zip(pieces or [""], values or [0.0], strict=True))
    for prompt in asked_prompts:
        echoed = [(prompt if isinstance(prompt, str) else "", None)] if body.get("echo") else []
        pairs: list[tuple[str, float | None]] = [*echoed, *generated]
        offsets = accumulate((len(t) for t, _ in pairs), initial=0)  # one more than pairs
        segments = [(t, lp, at) for (t, lp), at in zip(pairs, offsets, strict=False)]
        choices += [segments] * copies
    completion = len(choices) * len(pieces)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }

    def choice(index: int, segments: Sequence[Any], finished: bool) -> dict[str, Any]:
        return {
            "text": "".join(t for t, _, _ in segments),
            "index": index,
            "logprobs": _logprobs(segments) if want_logprobs else None,
            "finish_reason": finish if finished else None,
        }

    if is_stream(request):
        last = len(choices[0]) - 1  # every choice has as many segments: round-robin
        chunks: list[dict[str, Any]] = [
            {**head, "choices": [choice(c, [segments[step]], step == last)]}
            for step in range(last + 1)
            for c, segments in enumerate(choices)
        ]
        if common.include_usage(request):
            chunks = [{**chunk, "usage": None} for chunk in chunks]
            chunks.append({**head, "choices": [], "usage": usage})
        payload = common.sse_body(chunks)
        content_type = "text/event-stream; charset=utf-8"
    else:
        listed = [choice(c, segments, True) for c, segments in enumerate(choices)]
        payload = wire.dumps({**head, "choices": listed, "usage": usage})
        content_type = "application/json"
    headers = common.success_headers(content_type, rng, prompt_tokens + completion)
    return wire.with_headers(Response(200, headers, payload, "OK"), script.headers)


DIALECT = common.dialect(
    "openai_completions",
    common.routes("completions", "completions"),
    is_stream=is_stream,
    identity=identity,
    check=check,
    synthesize=synthesize,
    rules=RULES,
    recipes=RECIPES,
    limits=LIMITS,
    midstream_error=conformance.chunk_error,
    knobs=knobs.OPENAI_COMPLETIONS,
    conformance=conformance.COMPLETIONS,
)
