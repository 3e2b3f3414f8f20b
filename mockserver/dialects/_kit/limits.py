"""How big a synthesized answer may grow: the named limits, their defaults, and the request
fields (``Size``) that each dialect declares as sizing its answer.

    app: miss -> script -> exceeded(dialect.limits, request, script, limits)
                             \\-> a message: a 400 in the dialect's shape, nothing synthesized

A synthesizer's work grows with a few numbers a client sends (``n``, ``dimensions``, the
inputs of an embedding) and with the script's own text: without a bound, one small request
asks for gigabytes. The limits are checked before synthesis, so an answer's cost is
bounded whatever the request; each is named in the error, with the way to raise it.
The measures mirror what the synthesizers read; they count, they never build anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mockserver.model import Request, Script


@dataclass(frozen=True, slots=True)
class Limit:
    """One bound on a synthesized answer: its ``name`` (``--limit NAME=VALUE``), the
    ``unit`` it counts, its ``default``, and what it bounds (for ``--help`` and docs)."""

    name: str
    unit: str
    default: int
    bounds: str


LIMITS: tuple[Limit, ...] = (
    Limit("n", "choices", 128, "choices per prompt: n, candidateCount, Script.n"),
    Limit("choices", "choices", 1024, "choices in one answer: prompts x n (legacy completions)"),
    Limit("inputs", "inputs", 2048, "inputs embedded by one request"),
    Limit("dimensions", "dimensions", 8192, "numbers in one embedding vector"),
    Limit("values", "numbers", 524_288, "numbers in one embeddings answer: inputs x dimensions"),
    Limit("events", "events", 50_000, "pieces streamed in one answer: choices x script pieces"),
    Limit("text", "characters", 8_388_608, "text in one answer: choices x script text, echoes"),
    Limit("tokens", "tokens", 1_048_576, "token ids an answer lists (Ollama's context)"),
)
"""Every limit, with its default. At the defaults one answer costs at most about 2 s of CPU
and 100 MB at its peak (measured on a busy 2-vCPU VM: 524,288 embedding numbers, or 50,000
streamed chat events), built on a worker thread."""

DEFAULTS: Mapping[str, int] = MappingProxyType({limit.name: limit.default for limit in LIMITS})
_UNITS = {limit.name: limit.unit for limit in LIMITS}


class SynthesisLimits(Mapping[str, int]):
    """The limits a server enforces: the defaults, some of them changed. Immutable."""

    __slots__ = ("_values",)

    def __init__(self, changes: Mapping[str, int] | None = None) -> None:
        values = dict(DEFAULTS)
        for name, value in (changes or {}).items():
            if name not in values:
                raise ValueError(
                    f"unknown synthesis limit {name!r}; known: {', '.join(DEFAULTS)} "
                    "(README 'Synthesis limits')"
                )
            if type(value) is not int or value < 1:
                raise ValueError(
                    f"the synthesis limit {name} must be a whole number >= 1, got {value!r}"
                )
            values[name] = value
        self._values = values

    @classmethod
    def parse(cls, specs: Iterable[str]) -> SynthesisLimits:
        """``["n=256", "events=1000000"]``, as ``--limit`` gives them."""
        changes: dict[str, int] = {}
        for spec in specs:
            name, equals, value = spec.partition("=")
            try:
                changes[name.strip()] = int(value.replace("_", ""))
            except ValueError:
                equals = ""
            if not equals:
                raise ValueError(f"a synthesis limit is NAME=NUMBER (n=256), got {spec!r}")
        return cls(changes)

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != DEFAULTS[k]}
        return f"SynthesisLimits({changed})"


Measure = Callable[[Request, Script], int | None]


@dataclass(frozen=True, slots=True)
class Size:
    """A request field (or the script) that sizes a dialect's synthesized answer: which
    ``limit`` bounds it, how the message names it (``field``), and its ``measure`` on a
    request and the script answering it (None: not in this request)."""

    limit: str
    field: str
    measure: Measure


def exceeded(
    sizes: Iterable[Size], request: Request, script: Script, limits: SynthesisLimits
) -> str | None:
    """The message for the first size over its limit, or None when the answer fits."""
    for size in sizes:
        value = size.measure(request, script)
        maximum = limits[size.limit]
        if value is not None and value > maximum:
            return (
                f"{size.field}={value} exceeds Tapedeck's synthesis limit of {maximum} "
                f"{_UNITS[size.limit]}; raise it with --limit {size.limit}=... (pytest: "
                f"--tapedeck-limit {size.limit}=...), see README 'Synthesis limits'."
            )
    return None


# --- measures the dialects share ---------------------------------------------------------


def body_field(request: Request, *path: str) -> object:
    """``json[a][b]...``, None where a step is missing or not an object."""
    value: object = request.json
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def count(value: object) -> int | None:
    """A number a client sent as an int (the synthesizers ignore other types), else None."""
    return value if type(value) is int else None


def number(*path: str) -> Measure:
    """The measure of a whole-number field of the body (``number("n")``)."""
    return lambda request, _: count(body_field(request, *path))


def script_pieces(script: Script) -> int:
    """The pieces a script's answer is cut into: text and each call's arguments, every
    ``chunk_size`` characters, plus one per call (its header)."""
    texts = [script.text or "", *(call.arguments for call in script.tool_calls)]
    cuts = sum(math.ceil(len(text) / script.chunk_size) for text in texts)
    return cuts + len(script.tool_calls)


def script_text(script: Script) -> int:
    return len(script.text or "") + sum(len(call.arguments) for call in script.tool_calls)


def one(request: Request, script: Script) -> int | None:
    """One choice, always: the choices of a dialect without ``n``."""
    return 1


def script_sizes(choices: Measure = one, *, uses_n: bool = False) -> tuple[Size, ...]:
    """The sizes every synthesizer takes from its script: its pieces and its text, each
    repeated in every one of ``choices`` (None: this answer does not carry the script's
    text, as an embedding); and ``Script.n`` when the dialect ``uses_n``."""

    def times(measure: Callable[[Script], int]) -> Measure:
        def sized(request: Request, script: Script) -> int | None:
            copies = choices(request, script)
            return None if copies is None else measure(script) * max(1, copies)

        return sized

    def n(request: Request, script: Script) -> int | None:
        return script.n if choices(request, script) is not None else None

    return (
        *((Size("n", "Script.n", n),) if uses_n else ()),
        Size("events", "script pieces x choices", times(script_pieces)),
        Size("text", "script characters x choices", times(script_text)),
    )
