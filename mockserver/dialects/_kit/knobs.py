"""What the hypothesis strategies need to know of a protocol: how a stream request looks,
which script knobs it has, which variations are legal, and which mutations break which
rule. Each dialect folder's ``knobs.py`` holds one ``Knobs`` value (``Dialect.knobs``); a
dialect without one gets ``fallback_knobs``, derived from its routes.

Plain data and functions over frames: importing this never imports hypothesis, so the
server and the plugin's loading stay free of it (``pytest_plugin.strategies`` draws).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the contract holds Knobs: only the type, no import loop
    from mockserver.dialects.contract import Dialect

from mockserver.model import Request, Script

Frames = list[bytes]
Apply = Callable[[Frames, Request, random.Random], Frames]
Vary = Callable[[random.Random, Frames, Request], Frames]


@dataclass(frozen=True)
class Options:
    """Knobs a caller (or a mutation) pins; None leaves them to be drawn."""

    include_usage: bool | None = None
    tools: bool | None = None
    n: int | None = None
    text: bool | None = None
    thinking: bool | None = None
    variant: str | None = None
    """Which of the protocol's stream shapes (``Knobs.variants``): Gemini's SSE or JSON
    array, Bedrock's ConverseStream or InvokeModelWithResponseStream..."""


@dataclass(frozen=True)
class Mutation:
    """One targeted defect: ``apply`` turns a valid stream's frames into frames that break
    ``rule`` (and, ideally, nothing else; ``also`` lists rules it may break as well).
    ``needs`` pins the knobs of the base stream it applies to (``include_usage``...)."""

    name: str
    rule: str
    apply: Apply = field(repr=False, compare=False)
    needs: dict[str, Any] = field(default_factory=dict, compare=False)
    also: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"{self.name} (breaks {self.rule})"


@dataclass(frozen=True)
class Knobs:
    """Per-protocol knobs. ``request`` builds the stream request for a script (None: the
    protocol has no streams); ``tools``/``choices``/``usage_option`` say whether tool
    calls, ``n`` > 1 and OpenAI's include_usage exist; ``vary`` mixes legal variations
    into a valid stream's frames.
    ``thinking`` says how the protocol's reasoning is asked for: "request" (the request
    builder reads ``Options.thinking``), "text" (the dialects' ``<think>...</think>``
    prefix convention in Script.text), or "" (no reasoning).
    ``variants`` names the protocol's stream shapes when it has several (the request
    builder reads ``Options.variant``; None means the first); streams draw among them."""

    request: Callable[[Script, Options], Request] | None
    tools: bool = False
    choices: bool = False
    usage_option: bool = False
    thinking: str = ""
    vary: Vary | None = None
    mutations: tuple[Mutation, ...] = ()
    variants: tuple[str, ...] = ()

    @property
    def streams(self) -> bool:
        return self.request is not None


def post(path: str, body: dict[str, Any], query: tuple[tuple[str, str], ...] = ()) -> Request:
    return Request("POST", path, query=query, body=json.dumps(body).encode(), json=body)


PROMPT = [{"role": "user", "content": "Tell me something."}]


# --- legal variations -------------------------------------------------------------------

KEEP_ALIVE = b": keep-alive\n\n"


def keep_alive_comments(rng: random.Random, frames: Frames, request: Request) -> Frames:
    """Comment-only SSE blocks between events: servers send them as keep-alives
    (OpenRouter's ``: OPENROUTER PROCESSING``) and every client must skip them."""
    out = list(frames)
    for _ in range(rng.randint(0, 3)):
        out.insert(rng.randint(0, len(out)), KEEP_ALIVE if rng.random() < 0.7 else b":\n\n")
    return out


def chain(*steps: Vary) -> Vary:
    def vary(rng: random.Random, frames: Frames, request: Request) -> Frames:
        for step in steps:
            frames = step(rng, frames, request)
        return frames

    return vary


# --- frames as JSON items ---------------------------------------------------------------

Item = dict[str, Any] | bytes
"""A frame as a mutation sees it: the JSON of a plain ``data:`` event, else its bytes."""


def items(frames: Iterable[bytes]) -> list[Item]:
    out: list[Item] = []
    for frame in frames:
        if frame.startswith(b"data: {") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2:
            out.append(json.loads(frame[6:-2]))
        else:
            out.append(frame)
    return out


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def unitems(values: Iterable[Item]) -> Frames:
    return [v if isinstance(v, bytes) else b"data: " + dumps(v) + b"\n\n" for v in values]


def on_items(change: Callable[[list[Item], random.Random], list[Item]]) -> Apply:
    """A mutation written over JSON items instead of frames."""

    def apply(frames: Frames, request: Request, rng: random.Random) -> Frames:
        return unitems(change(items(frames), rng))

    return apply


# --- dialects nobody wrote knobs for ----------------------------------------------------

_BODIES: tuple[dict[str, Any], ...] = (
    {"model": "tapedeck-model", "messages": PROMPT, "max_tokens": 256, "stream": True},
    {"model": "tapedeck-model", "input": "Tell me something.", "stream": True},
    {"model": "tapedeck-model", "prompt": "Tell me something.", "stream": True},
    {"contents": [{"role": "user", "parts": [{"text": "Tell me something."}]}]},
)


def _fill(pattern: str) -> str:
    """A path matching ``pattern``: every placeholder filled with a model-like name."""
    return re.sub(r"\{\w+\*?\}", "tapedeck-model", pattern)


def fallback_knobs(dialect: Dialect) -> Knobs:
    """Knobs derived from a dialect's routes: the first route and body that make a stream
    request. Only text scripts: tool calls and choices need to be known to be legal."""
    for route in sorted(dialect.routes, key=lambda r: ("{" in r.pattern, r.pattern)):
        path = _fill(route.pattern)
        query = (("alt", "sse"),) if "stream" in path.lower() else ()
        for body in _BODIES:
            if dialect.is_stream(post(path, body, query)):

                def request(
                    script: Script,
                    options: Options,
                    path: str = path,
                    body: Any = body,
                    query: tuple[tuple[str, str], ...] = query,
                ) -> Request:
                    return post(path, body, query)

                # No variations: which ones a protocol allows (comments?) must be known.
                return Knobs(request)
    return Knobs(None)
