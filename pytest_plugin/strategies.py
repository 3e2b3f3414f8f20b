"""Hypothesis strategies for the streams of every dialect: valid ones, legal variations of
them, and mutations that each break one named rule.

Valid streams are never written by hand here: a generated ``Script`` (unicode text,
parallel tool calls, ``n`` > 1 where the protocol has it) goes through the dialect's own
``synthesize``, so a new dialect gets strategies as soon as it is in ``DIALECTS``. What
differs per protocol (how a stream request looks, which knobs it has, which variations
are legal, which mutations target which rule) is a small ``Knobs`` value in
each dialect folder's ``knobs.py``.

Users import this module explicitly; the plugin never does, so loading the plugin stays
free of hypothesis::

    from pytest_plugin.strategies import streams, mutated_streams
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from mockserver.dialects import DIALECTS
from mockserver.dialects import dialect as get_dialect
from mockserver.dialects._kit.knobs import Knobs, Mutation, Options, fallback_knobs
from mockserver.dialects.contract import Dialect
from mockserver.model import Event, Request, Script, ToolCall, Violation
from mockserver.validation import validate

__all__ = [
    "KNOBS",
    "MutatedStream",
    "Mutation",
    "Stream",
    "byte_splits",
    "faults",
    "knobs",
    "mutated_streams",
    "mutations",
    "scripts",
    "streamable_dialects",
    "streams",
]

# Text that exercises what breaks stream parsers: multi-byte UTF-8 (2, 3 and 4 bytes),
# combining marks, right-to-left text, JSON's escape characters, and line separators.
_TRICKY = ["é", "中", "🙂", "👍🏽", "e\u0301", "שׁ", '"', "\\", "\n", "\t", "/", "\u2028", "<&>"]
# Pieces, not an alphabet: hypothesis merges character alphabets into one set of code
# point ranges, in which these few would almost never be drawn.
_TEXT = st.lists(
    st.one_of(st.sampled_from(_TRICKY), st.characters(codec="utf-8")), min_size=1, max_size=30
).map("".join)


KNOBS: dict[str, Knobs] = {
    name: dialect.knobs or fallback_knobs(dialect) for name, dialect in DIALECTS.items()
}
"""Per-protocol knobs by dialect name: each dialect's own, else derived from its routes."""


@dataclass(frozen=True, repr=False)
class Stream:
    """A generated stream: what was asked, what the answer says, the bytes on the wire,
    and the HTTP chunks to deliver them in (``b"".join(chunks) == body``)."""

    dialect: str
    request: Request
    script: Script
    body: bytes
    chunks: tuple[bytes, ...]

    @property
    def events(self) -> tuple[Event, ...]:
        return get_dialect(self.dialect).framing_for(self.request).events(self.body)

    def violations(self) -> list[Violation]:
        return validate(self.dialect, self.body, self.request)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints dataclasses field by field unless given this hook.
        printer.text(repr(self))

    def __repr__(self) -> str:
        # Short enough for hypothesis to print a failing example: the body up to 2 kB,
        # the chunks as their sizes (the split points are what matters).
        body = self.body if len(self.body) <= 2048 else self.body[:2048] + b"..."
        sizes = [len(c) for c in self.chunks]
        cut = f"{len(sizes)} chunks of {sizes}" if len(sizes) <= 40 else f"{len(sizes)} chunks"
        extra = f", mutation={self.mutation}" if isinstance(self, MutatedStream) else ""
        return (
            f"{type(self).__name__}({self.dialect!r}, {self.script!r}{extra}, {cut}, body={body!r})"
        )


@dataclass(frozen=True, repr=False)
class MutatedStream(Stream):
    """A valid stream broken by one mutation; ``base`` is the stream before it."""

    base: Stream | None = None
    mutation: Mutation | None = None


def knobs(dialect: str | Dialect) -> Knobs:
    """The per-protocol knobs of a dialect, or ones derived from its routes."""
    found = get_dialect(dialect) if isinstance(dialect, str) else dialect
    return found.knobs or fallback_knobs(found)


def streamable_dialects() -> list[str]:
    """The registered dialects that have a stream to generate (embeddings have none)."""
    return [name for name in DIALECTS if knobs(name).streams]


def _names() -> st.SearchStrategy[str]:
    return st.sampled_from(["get_weather", "lookup", "search_docs", "run_sql", "f"])


@st.composite
def _tool_call(draw: st.DrawFn) -> ToolCall:
    keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.text(st.characters(codec="utf-8"), max_size=8),
    )
    arguments = draw(st.dictionaries(keys, values, max_size=3))
    return ToolCall(draw(_names()), json.dumps(arguments, ensure_ascii=False))


@st.composite
def scripts(draw: st.DrawFn, dialect: str | Dialect, options: Options | None = None) -> Script:
    """A Script this dialect can say: text (often unicode), parallel tool calls where the
    protocol has tools, ``n`` > 1 where it has choices, any chunking and seed."""
    spec = knobs(dialect)
    options = options or Options()
    tools = spec.tools and options.tools is not False and (options.tools or draw(st.booleans()))
    calls = tuple(draw(st.lists(_tool_call(), min_size=1, max_size=3))) if tools else ()
    wants_text = options.text or not calls or draw(st.booleans())
    text = draw(_TEXT) if wants_text else None
    if spec.thinking == "text" and options.thinking:
        # The dialects' convention: a <think>...</think> prefix is the reasoning.
        reasoning = draw(_TEXT.filter(lambda t: "think>" not in t))
        text = f"<think>{reasoning}</think>{text or ''}"
    n = options.n or (draw(st.integers(1, 3)) if spec.choices else None)
    return Script(
        text=text,
        tool_calls=calls,
        chunk_size=draw(st.integers(1, 8)),
        n=n,
        seed=draw(st.integers(0, 2**16)),
    )


@st.composite
def streams(
    draw: st.DrawFn,
    dialect: str | Dialect,
    *,
    include_usage: bool | None = None,
    tools: bool | None = None,
    n: int | None = None,
    text: bool | None = None,
    thinking: bool | None = None,
    variant: str | None = None,
    vary: bool = True,
    split: bool = True,
) -> Stream:
    """A valid stream of ``dialect`` from a generated script.

    ``include_usage``, ``tools``, ``n``, ``text`` (an answer with text) and ``thinking``
    (reasoning first, where the protocol has it) and ``variant`` (one of the protocol's
    stream shapes, ``knobs(dialect).variants``) pin those knobs (None: drawn). With ``vary``,
    legal variations are mixed in (keep-alive comments, empty deltas...); with ``split``,
    the HTTP chunks are cut anywhere, inside a UTF-8 character or a JSON string too.
    """
    name = dialect if isinstance(dialect, str) else dialect.name
    spec = knobs(name)
    if include_usage is None and spec.usage_option:
        include_usage = draw(st.booleans())
    if thinking is None and spec.thinking:
        thinking = draw(st.booleans())
    if variant is None and len(spec.variants) > 1:
        variant = draw(st.sampled_from(spec.variants))
    elif variant is not None and variant not in spec.variants:
        raise ValueError(f"dialect {name!r} has no stream variant {variant!r}: {spec.variants}")
    options = Options(include_usage, tools, n, text, thinking, variant)
    script = draw(scripts(name, options))
    if spec.request is None:
        raise ValueError(f"dialect {name!r} has no streams to generate")
    request = spec.request(script, options)
    response = get_dialect(name).synthesize(request, script)
    framing = get_dialect(name).framing_for(request)
    frames = list(framing.frames(response.body))
    if vary and spec.vary is not None:
        frames = spec.vary(draw(st.randoms(use_true_random=False)), frames, request)
    body = b"".join(frames)
    chunks = draw(byte_splits(body)) if split else tuple(frames)
    return Stream(name, request, script, body, chunks)


@st.composite
def byte_splits(draw: st.DrawFn, body: bytes, max_cuts: int = 16) -> tuple[bytes, ...]:
    """``body`` cut into pieces anywhere (``b"".join(pieces) == body``): sometimes byte by
    byte, always with a chance of a cut inside a multi-byte UTF-8 character and inside a
    JSON value, where naive parsers decode or parse too early."""
    if len(body) < 2:
        return (body,)
    # Byte by byte one time in 16; on 15, not 0, so that shrinking heads for fewer cuts.
    if draw(st.integers(0, 15)) == 15 and len(body) <= 4096:
        return tuple(body[i : i + 1] for i in range(len(body)))
    cuts = set(draw(st.sets(st.integers(1, len(body) - 1), max_size=max_cuts)))
    inside_char = [i for i in range(1, len(body)) if body[i] & 0xC0 == 0x80]
    inside_json = [i for i in range(1, len(body)) if body[i - 1 : i] in (b'"', b":", b",")]
    for positions in (inside_char, inside_json):
        wanted: bool = draw(st.booleans())
        if positions and wanted:
            cuts.add(draw(st.sampled_from(positions)))
    edges = [0, *sorted(cuts), len(body)]
    return tuple(body[a:b] for a, b in itertools.pairwise(edges))


def mutations(dialect: str | Dialect) -> tuple[Mutation, ...]:
    """The mutations known for a dialect, each naming the rule it breaks."""
    return knobs(dialect).mutations


@st.composite
def mutated_streams(
    draw: st.DrawFn,
    dialect: str | Dialect,
    mutation: Mutation | str | None = None,
    *,
    split: bool = False,
) -> MutatedStream:
    """A valid stream of ``dialect`` broken by one mutation (drawn, or the one named): its
    ``violations()`` hold ``mutation.rule``. The base stream is drawn with the knobs the
    mutation needs (a usage chunk, a tool call...)."""
    name = dialect if isinstance(dialect, str) else dialect.name
    known = mutations(name)
    if not known:
        raise ValueError(f"no mutations are defined for dialect {name!r}")
    if mutation is None:
        mutation = draw(st.sampled_from(known))
    elif isinstance(mutation, str):
        by_name = {m.name: m for m in known}
        if mutation not in by_name:
            raise ValueError(f"unknown mutation {mutation!r} for {name}; known: {sorted(by_name)}")
        mutation = by_name[mutation]
    base = draw(streams(name, split=False, **mutation.needs))
    framing = get_dialect(name).framing_for(base.request)
    frames = mutation.apply(list(framing.frames(base.body)), base.request, draw(st.randoms()))
    body = b"".join(frames)
    chunks = draw(byte_splits(body)) if split else tuple(frames)
    return MutatedStream(name, base.request, base.script, body, chunks, base, mutation)


def with_chunks(stream: Stream, chunks: Sequence[bytes]) -> Stream:
    """The same stream delivered in other HTTP chunks (they must join to the body)."""
    if b"".join(chunks) != stream.body:
        raise ValueError("chunks must join to the stream's body")
    return replace(stream, chunks=tuple(chunks))


@st.composite
def faults(draw: st.DrawFn, dialect: str | Dialect, *, max_seconds: float = 0.05) -> str:
    """A valid fault spec (``x-tapedeck-fault``, ``tapedeck.fault``) for a stream of
    ``dialect``: every kind, its keys drawn within their bounds, and sometimes ``times``.
    Waits (stall, drip) stay under ``max_seconds`` so that a property test stays fast."""
    from mockserver.faults import KINDS

    get_dialect(dialect) if isinstance(dialect, str) else dialect  # an unknown name raises
    kind = draw(st.sampled_from(sorted(KINDS)))
    events = st.integers(min_value=0, max_value=8)
    seconds = st.floats(min_value=0, max_value=max_seconds).map(lambda f: f"{f:.3f}")
    keys: dict[str, st.SearchStrategy[str]] = {
        "code": st.sampled_from([429, 500, 502, 503, 529]).map(str),
        "retry_after": st.integers(min_value=0, max_value=2).map(str),
        "after": events.map(str),
        "before": events.map(str),
        "at": events.map(str),
        "seconds": seconds,
        "gap": seconds.map(lambda g: f"{float(g) / 8:.4f}"),
        "message": st.text(alphabet="abcdefghij -", min_size=1, max_size=12),
        "seed": st.integers(min_value=0, max_value=2**16).map(str),
    }
    waits = ("seconds", "gap")  # always drawn: their defaults would be slow
    chosen = [key for key in KINDS[kind] if key in waits or (key in keys and draw(st.booleans()))]
    if kind == "split" and draw(st.booleans()):
        chosen.append("seed")
    pairs = [f"{key}={draw(keys[key])}" for key in chosen]
    if draw(st.booleans()):
        pairs.append(f"times={draw(st.integers(min_value=1, max_value=3))}")
    return kind + (":" + ",".join(pairs) if pairs else "")
