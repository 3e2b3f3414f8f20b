"""The known truth of a load run, and the judgement of each stream against it.

Every stream of ``check --load`` says words derived from its own nonce, ``<nonce>.<k> ``,
one word per upstream event, so the client can tell exactly what it should have got: a
word of another nonce is another stream's content, a missing tail is a cut, a shuffled
word list a reordering. The upstream records when each event left (``upstream.Sent``);
the client, when the last character of each word arrived. Their difference is the time
the proxy held the event, measured against the same clock. A ``Tally`` gathers the
streams of one side (direct or through the proxy) for ``load_report``.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mockserver.conformance.client import Downstream
from mockserver.conformance.compare import summarize
from mockserver.conformance.scenarios import Scenario
from mockserver.conformance.upstream import Sent
from mockserver.model import Script

WORD = re.compile(r"([0-9a-f]{12})\.(\d{3}) ")
WORD_BYTES = re.compile(WORD.pattern.encode())
WIDTH = len("0123456789ab.000 ")
"""Each word fills one event exactly (the synthesizers cut text every ``chunk_size``)."""
MAX_EVENTS = 1000
"""Three digits of word index."""
WRONG_KINDS = ("mixed", "cut", "reordered", "garbled")
EXAMPLES = 5
"""Wrong streams and error messages kept as evidence, per side."""


def text_for(nonce: str, events: int) -> str:
    """What the stream tagged ``nonce`` says: its words 0 to ``events - 1``."""
    return "".join(f"{nonce}.{k:03d} " for k in range(events))


def load_scenario(dialect: str, nonce: str, events: int, gap: float) -> Scenario:
    """One stream of a load run: its nonce-derived text, one word per event, ``gap`` apart."""
    script = Script(text=text_for(nonce, events), chunk_size=WIDTH)
    described = f"{events} nonce-derived words, {gap * 1000:.0f} ms apart"
    return Scenario("load", dialect, described, script, gap=gap, nonce=nonce)


@dataclass(frozen=True)
class StreamResult:
    """One stream as the client got it. ``error`` is a failure the client saw (an HTTP
    error, a broken connection); ``wrong`` is one it could not see: a clean 200 whose
    content is not its own (``WRONG_KINDS``), with ``detail`` as the evidence."""

    nonce: str
    error: str | None = None
    wrong: str | None = None
    detail: str = ""
    ttfe: float | None = None
    reached: bool = True
    """Whether the upstream got this stream's request."""
    arrivals: tuple[float, ...] = ()
    """When the client had each word, whole (correct streams only)."""
    delays: tuple[float, ...] = ()
    """Per word: its arrival minus the time the upstream sent it (when the upstream's
    events carried one word each, as they do unless the proxy asked for another shape)."""


def judge(
    scenario: Scenario, down: Downstream, sents: Sequence[Sent], began: float
) -> StreamResult:
    """The verdict on one stream: ``began`` is when the client sent it."""
    nonce, reached = scenario.nonce, bool(sents)
    ttfe = down.times[0] - began if down.times else None
    if down.status != 200:
        body = down.body[:200].decode("utf-8", "replace").strip()
        return StreamResult(nonce, f"HTTP {down.status}: {body}", ttfe=ttfe, reached=reached)
    summary = summarize(scenario.dialect, down.events)
    texts = summary.texts if summary else {}
    got = "".join(texts[n] for n in sorted(texts))
    expected = scenario.script.text or ""
    wrong, detail = _wrong(nonce, expected, got, broken=down.broken is not None)
    if down.broken and not wrong:
        return StreamResult(nonce, f"stream broken: {down.broken}", ttfe=ttfe, reached=reached)
    if not wrong and (summary is None or summary.finishes.get(0) is None):
        wrong, detail = "cut", f"stream {nonce} has all its words but ended without its finish"
    if wrong:
        return StreamResult(nonce, None, wrong, detail, ttfe, reached)
    assert summary is not None  # its text matched
    arrivals = _arrivals(summary.fragments[0], summary.at[0], down.times)
    sent = _send_times(sents[-1], nonce, len(arrivals)) if sents else None
    delays = tuple(a - s for a, s in zip(arrivals, sent, strict=True)) if sent else ()
    return StreamResult(nonce, ttfe=ttfe, reached=reached, arrivals=arrivals, delays=delays)


def _wrong(nonce: str, expected: str, got: str, broken: bool) -> tuple[str | None, str]:
    words = WORD.findall(got)
    foreign = Counter(n for n, _ in words if n != nonce)
    if foreign:
        other, count = foreign.most_common(1)[0]
        streams = f" and of {len(foreign) - 1} more" if len(foreign) > 1 else ""
        return "mixed", (
            f"stream {nonce} got {sum(foreign.values())} word(s) of other streams: "
            f"{count} of stream {other}{streams}"
        )
    if got == expected:
        return None, ""
    mine = [f"{n}.{k}" for n, k in words]
    want = [f"{n}.{k}" for n, k in WORD.findall(expected)]
    if mine != want and sorted(mine) == sorted(want):
        k = next(k for k, (a, b) in enumerate(zip(mine, want, strict=True)) if a != b)
        return "reordered", f"stream {nonce}: expected word {k} to be {want[k]}, found {mine[k]}"
    if expected.startswith(got):
        if broken:  # an error the client saw, not a silent cut
            return None, ""
        return "cut", f"stream {nonce} ended cleanly after {len(mine)} of its {len(want)} words"
    at = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), len(got))
    return "garbled", (
        f"stream {nonce}: expected {expected[at : at + 20]!r} at character {at}, "
        f"found {got[at : at + 20]!r} ({len(got)} of {len(expected)} characters)"
    )


def _arrivals(
    fragments: Sequence[str], at: Sequence[int], times: Sequence[float]
) -> tuple[float, ...]:
    """When each word was whole at the client, however the proxy cut or merged them."""
    out: list[float] = []
    end = 0
    for fragment, index in zip(fragments, at, strict=True):
        end += len(fragment)
        while (len(out) + 1) * WIDTH <= end:
            out.append(times[index])
    return tuple(out)


def _send_times(up: Sent, nonce: str, words: int) -> list[float] | None:
    """When the upstream sent each word: the first frame that holds it (a protocol may
    repeat the whole text at the end). Words are plain ASCII, the same in any JSON, so
    the frames need no parsing."""
    sent: dict[int, float] = {}
    for frame, when in zip(up.frames, up.times, strict=False):
        for found in WORD_BYTES.finditer(frame):
            if found.group(1).decode() == nonce:
                sent.setdefault(int(found.group(2)), when)
    return [sent[k] for k in range(words)] if len(sent) == words else None


@dataclass
class Tally:
    """The streams of one side of a load run, as they finish. Samples go to compact
    arrays: a long run at high concurrency holds millions of them."""

    name: str
    url: str
    gap: float
    streams: int = 0
    wrong: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str]] = field(default_factory=list)
    """(kind, evidence) of the first wrong streams."""
    unreached: int = 0
    ttfe: array[float] = field(default_factory=lambda: array("d"))
    gaps: array[float] = field(default_factory=lambda: array("d"))
    delays: array[float] = field(default_factory=lambda: array("d"))
    held_first: array[float] = field(default_factory=lambda: array("d"))
    """Per stream, the event delay of its first word: a proxy that buffers whole streams
    holds it for about the stream's length; one that is merely slow to start, not."""
    coalesced: int = 0
    late: int = 0
    seconds: float = 0.0

    def add(self, result: StreamResult) -> None:
        self.streams += 1
        self.unreached += not result.reached
        if result.ttfe is not None:
            self.ttfe.append(result.ttfe)
        if result.error is not None:
            self.errors[result.error[:300]] += 1
            return
        if result.wrong is not None:
            self.wrong[result.wrong] += 1
            if len(self.examples) < EXAMPLES:
                self.examples.append((result.wrong, result.detail))
            return
        for before, after in zip(result.arrivals, result.arrivals[1:], strict=False):
            self.gaps.append(after - before)
            # The upstream left ``gap`` between them: less than half of it survived.
            self.coalesced += after - before < self.gap / 2
        if result.delays:
            self.held_first.append(result.delays[0])
        for delay in result.delays:
            self.delays.append(delay)
            self.late += delay > self.gap  # held for longer than a pacing interval

    @property
    def finished(self) -> int:
        """Streams that ended with their status 200 and their end, right or wrong."""
        return self.streams - sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def wrong_count(self) -> int:
        return sum(self.wrong.values())

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0

    @property
    def coalesced_share(self) -> float | None:
        return self.coalesced / len(self.gaps) if self.gaps else None

    @property
    def late_share(self) -> float | None:
        return self.late / len(self.delays) if self.delays else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated between ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)
