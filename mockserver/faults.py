"""Faults on demand: what a fault spec says, and which request gets which fault.

    x-tapedeck-fault header / serve --fault / marker / handle -> parse -> FaultSpec
    request arrives -> Faults.choose -> the FaultSpec applied (or None) -> fault_wire

A spec is ``KIND`` or ``KIND:key=value,key=value``. This module only reads specs and
decides; how a fault changes the bytes on the wire is ``fault_wire``'s. Nothing here names
a provider: every kind works the same way for every dialect.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mockserver.errors import TapedeckError

HEADER = "x-tapedeck-fault"
"""The request header asking for a fault: never forwarded, never matched, never saved."""

Value = int | float | str


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a kind: its type, default and bounds (a fault's cost stays bounded)."""

    kind: type
    default: Value
    low: float = 0
    high: float = 1_000_000

    def read(self, name: str, text: str) -> Value:
        if self.kind is str:
            return text
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            what = "an integer" if self.kind is int else "a number"
            raise ValueError(f"{name}={text!r} is not {what}") from None
        if not self.low <= value <= self.high:  # NaN too: it compares false
            raise ValueError(f"{name}={text} is out of range [{self.low:g}, {self.high:g}]")
        return value


KINDS: Mapping[str, Mapping[str, Key]] = MappingProxyType(
    {
        "status": {"code": Key(int, 500, 400, 599), "retry_after": Key(float, -1, 0, 3600)},
        "reset": {"after": Key(int, 0)},
        "truncate": {"after": Key(int, 1)},
        "stall": {"before": Key(int, 0), "seconds": Key(float, 10.0, 0, 600)},
        "drip": {"gap": Key(float, 0.5, 0, 60)},
        "error": {"after": Key(int, 1), "type": Key(str, ""), "message": Key(str, "")},
        "corrupt": {"at": Key(int, 1)},
        "split": {},
    }
)
"""Every kind and its own keys. ``retry_after`` -1: the dialect's own (1 s on a 429)."""

COMMON = ("times", "rate", "seed")
"""Keys any kind takes: apply to the first ``times`` requests only; apply with
probability ``rate``, drawn from a generator seeded with ``seed`` (``split`` cuts with it)."""


class FaultSpecError(TapedeckError, ValueError):
    """A fault spec that cannot be read; the message lists the valid kinds and keys."""


def vocabulary() -> str:
    """The valid kinds and keys, for messages."""
    kinds = "; ".join(f"{kind}({', '.join(keys) or 'no keys'})" for kind, keys in KINDS.items())
    return f"valid kinds (keys): {kinds}; any kind also takes {', '.join(COMMON)}"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A parsed spec. ``params`` holds every key of the kind (defaults filled in)."""

    kind: str
    params: Mapping[str, Value] = field(default_factory=dict)
    times: int | None = None
    rate: float = 1.0
    seed: int = 0
    text: str = ""
    """The spec as written, for logs and messages."""

    def __str__(self) -> str:
        return self.text or self.kind

    def int(self, key: str) -> int:
        return int(self.params[key])

    def float(self, key: str) -> float:
        return float(self.params[key])

    def str(self, key: str) -> str:
        return str(self.params[key])


def parse(spec: str) -> FaultSpec:
    """``KIND`` or ``KIND:key=value,...``; FaultSpecError naming what is wrong."""
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r} in {spec!r}; {vocabulary()}")
    keys = KINDS[kind]
    given: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            raise FaultSpecError(f"{pair!r} in {spec!r} is not key=value; {vocabulary()}")
        if name not in keys and name not in COMMON:
            valid = ", ".join([*keys, *COMMON])
            raise FaultSpecError(
                f"unknown key {name!r} for fault {kind!r} in {spec!r} (keys of {kind}: "
                f"{valid}); {vocabulary()}"
            )
        if name in given:
            raise FaultSpecError(f"key {name!r} given twice in {spec!r}")
        given[name] = value.strip()
    try:
        params = {
            name: key.read(name, given[name]) if name in given else key.default
            for name, key in keys.items()
        }
        times = Key(int, 0, 1).read("times", given["times"]) if "times" in given else None
        rate = Key(float, 1.0, 0, 1).read("rate", given.get("rate", "1"))
        seed = Key(int, 0, 0, 2**63).read("seed", given.get("seed", "0"))
    except ValueError as exc:
        raise FaultSpecError(f"fault {spec!r}: {exc}; {vocabulary()}") from None
    assert times is None or isinstance(times, int)
    return FaultSpec(kind, MappingProxyType(params), times, float(rate), int(seed), text)


def parse_all(specs: Iterable[str]) -> tuple[FaultSpec, ...]:
    return tuple(parse(spec) for spec in specs)


@dataclass
class Faults:
    """Which request gets which fault, for one server run (or one test).

    Candidates, first applying wins: the request's own header, then the faults queued by
    ``tapedeck.fault`` (each for its next ``times`` requests, 1 when unsaid), then the
    standing ones (``serve --fault``, the marker). A spec's ``times`` counts the requests
    it was applied to; the same header spec on several requests (an SDK's retries)
    shares one count. Shared by the server's thread and the test's: hence the lock."""

    standing: tuple[FaultSpec, ...] = ()
    queued: deque[tuple[FaultSpec, int]] = field(default_factory=deque)
    """Each queued spec with its number, which keys its count."""
    _applied: dict[tuple[str, str], int] = field(default_factory=dict)
    _draws: dict[tuple[str, str], random.Random] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    _numbered: int = 0

    def queue(self, spec: FaultSpec) -> None:
        with self._lock:
            self._numbered += 1
            self.queued.append((spec, self._numbered))

    @property
    def idle(self) -> bool:
        """No fault can apply to a request that does not ask for one."""
        return not self.standing and not self.queued

    def choose(self, asked: FaultSpec | None) -> FaultSpec | None:
        """The fault to apply to a request that asked for ``asked`` (its header), if any."""
        with self._lock:
            if asked is not None and self._fires(("header", asked.text), asked, asked.times):
                return asked
            while self.queued:
                spec, number = self.queued[0]
                slot, times = ("queued", str(number)), spec.times or 1
                if self._applied.get(slot, 0) >= times:
                    self.queued.popleft()  # used up: the next queued one
                    del self._applied[slot]
                    continue
                if self._fires(slot, spec, times):
                    return spec
                break
            for number, spec in enumerate(self.standing):
                if self._fires(("standing", str(number)), spec, spec.times):
                    return spec
            return None

    def _fires(self, slot: tuple[str, str], spec: FaultSpec, times: int | None) -> bool:
        """Counts and draws for one spec (under the lock)."""
        if times is not None and self._applied.get(slot, 0) >= times:
            return False
        if spec.rate < 1.0:
            draws = self._draws.setdefault(slot, random.Random(spec.seed))
            if draws.random() >= spec.rate:
                return False
        self._applied[slot] = self._applied.get(slot, 0) + 1
        return True
