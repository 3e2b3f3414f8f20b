"""When each event goes out: recorded offsets scaled by a speed, or a synthetic profile.

Sleeps go to absolute deadlines on the loop clock: a chain of relative sleeps drifts
(100 relative 1 ms sleeps ran 13.5 ms late here; absolute deadlines 0.3 ms —
reference/performance.md).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from mockserver.model import Timing


@dataclass(frozen=True, slots=True)
class Profile:
    """Pacing for synthesized streams: time to first token, then ``tokens_per_second``
    events a second, each gap varied by up to ``jitter`` (a fraction), seeded."""

    ttft: float = 0.3
    tokens_per_second: float = 50.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ttft < 0 or self.tokens_per_second <= 0 or not 0 <= self.jitter < 1:
            raise ValueError(
                "a timing profile needs ttft >= 0, tokens_per_second > 0 and 0 <= jitter < 1, "
                f"got {self}"
            )

    @classmethod
    def parse(cls, text: str) -> Profile:
        """``ttft=0.3,tps=50,jitter=0.1,seed=7`` (any subset)."""
        names = {"ttft": "ttft", "tps": "tokens_per_second", "jitter": "jitter", "seed": "seed"}
        values: dict[str, float] = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            if key.strip() not in names:
                raise ValueError(f"unknown profile field {key!r}; known: {', '.join(names)}")
            values[names[key.strip()]] = float(value)
        seed = int(values.pop("seed", 0))
        return cls(**values, seed=seed)

    def timing(self, events: int) -> Timing:
        rng = random.Random(self.seed)
        gap = 1.0 / self.tokens_per_second
        offsets, now = [], self.ttft
        for _ in range(events):
            offsets.append(now)
            now += gap * (1 + rng.uniform(-self.jitter, self.jitter))
        return Timing(headers=min(self.ttft, 0.05), events=tuple(offsets))


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one stream's headers and events are due, in seconds after its request arrived:
    the recorded offsets over the speed, computed when asked. A paced stream holds this
    (two references) instead of a deadline per event (1,000 floats are ~32 KiB a stream)."""

    timing: Timing
    speed: float

    @property
    def headers(self) -> float:
        return self.timing.headers / self.speed

    @property
    def events(self) -> int:
        return len(self.timing.events)

    def at(self, number: int) -> float:
        """Event ``number``'s offset."""
        return self.timing.events[number] / self.speed


def deadlines(timing: Timing, frames: int, speed: float) -> Schedule | None:
    """When the headers and each of ``frames`` events are due at ``speed``; None when the
    timing does not fit the frames (then the stream goes out unpaced) or speed is 0."""
    if speed <= 0 or len(timing.events) != frames:
        return None
    return Schedule(timing, speed)


async def sleep_until(deadline: float) -> None:
    loop = asyncio.get_running_loop()
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
