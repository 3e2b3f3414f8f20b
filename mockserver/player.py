"""What a server answers from: the ``Responder`` seam, and the ``Player`` behind it (a
cursor over the index: which recordings were played, which requests missed).

    app handler -> Responder.next(request, match) -> Entry           (serve it)
                                                  \\-> NoMatchingExchange -> note_miss

The Player is the only mutable part of replay; one per test (or per server run), shared
by the server's thread and the test's, hence its lock. Anything else with the three
methods of ``Responder`` can stand in for it: the pytest plugin's stream server answers
each request with the next queued stream.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from mockserver.dialects import RouteMatch
from mockserver.errors import NoMatchingExchange
from mockserver.index import Entry, Library
from mockserver.misses import explain_miss
from mockserver.model import Request

T = TypeVar("T")


class Responder(Protocol):
    """The app's one question: what answers this request? Called on the server's thread
    (or a worker thread, for a large body: app.OFF_LOOP_BODY); an implementation guards
    its own state."""

    def next(self, request: Request, match: RouteMatch) -> Entry:
        """The entry answering ``request``; NoMatchingExchange (saying why) when none does.
        The request counts as received either way."""
        ...

    def note_request(self, request: Request) -> None:
        """A request answered without asking ``next`` (record modes all and rewrite)."""
        ...

    def note_miss(self, request: Request, explanation: str) -> bool:
        """A request nothing answered and nothing recorded. True: the server synthesizes
        the answer (from the next queued script); False: it answers with a provider
        error carrying ``explanation``."""
        ...


@dataclass(frozen=True, slots=True)
class Miss:
    """A request no recording answered, with the explanation given to the client."""

    request: Request
    explanation: str


@dataclass
class Player:
    """Which recordings were played and which requests missed. Identical requests replay
    in recorded order (FIFO); with ``allow_repeats`` the last one answers again. With
    ``synthesize``, a request no recording answers is noted in ``synthesized`` (the server
    answers it from a script) instead of in ``misses``.

    ``log`` bounds ``requests``, ``misses`` and ``synthesized``: each keeps its latest
    ``log`` items; None keeps all (what a test inspects), 0 none (``tapedeck serve``, which
    runs for days, keeps nothing per request unless ``--request-log N`` asks)."""

    library: Library
    allow_repeats: bool = False
    synthesize: bool = False
    log: int | None = None
    requests: list[Request] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    synthesized: list[Request] = field(default_factory=list)
    _plays: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._plays = [0] * len(self.library.entries)
        if self.log is not None and self.log < 0:
            raise ValueError(f"Player.log is a number of requests >= 0 (or None), got {self.log}")

    def _keep(self, kept: list[T], item: T) -> None:
        """Append ``item``, then drop the oldest beyond ``log`` (called under the lock)."""
        if self.log is None:
            kept.append(item)
        elif self.log > 0:
            kept.append(item)
            if len(kept) > self.log:
                del kept[0]  # one in, one out: a list of ``log`` moves, cheap at such sizes

    def next(self, request: Request, match: RouteMatch) -> Entry:
        """The entry answering ``request``, or NoMatchingExchange explaining the miss.

        The caller decides what a miss is (a failure, a synthesized answer, a recording)
        and notes it with ``note_miss``."""
        key = self.library.key(request, match)
        with self._lock:
            self._keep(self.requests, request)
            positions = self.library.positions(key)
            entry = self._play(positions)
        if entry is None:
            raise NoMatchingExchange(explain_miss(self.library, request, key, positions))
        return entry

    def next_known(self, digest: bytes) -> Entry | None:
        """The fast road for a request answered from a recording before, known by its
        ``digest_of`` alone (parsing it again would cost more than answering it): its next
        entry; None when the road is closed, and then ``next`` decides. Open only when
        nothing about a request is kept (``log`` 0, what ``tapedeck serve`` runs with)."""
        if self.log != 0:
            return None
        key = self.library.known(digest)
        if key is None:
            return None
        with self._lock:
            return self._play(self.library.positions(key))

    def _play(self, positions: tuple[int, ...]) -> Entry | None:
        """The first recording of ``positions`` not played yet, or the last one again when
        repeats are allowed; marked played (called under the lock)."""
        for position in positions:
            if self._plays[position] == 0:
                self._plays[position] = 1
                return self.library.entries[position]
        if positions and self.allow_repeats:
            self._plays[positions[-1]] += 1
            return self.library.entries[positions[-1]]
        return None

    def note_miss(self, request: Request, explanation: str) -> bool:
        """A request nothing answered: a failure of the test, listed in ``misses``; or,
        once synthesis is on, listed in ``synthesized`` and answered by the synthesizer
        (returns True)."""
        with self._lock:
            if self.synthesize:
                self._keep(self.synthesized, request)
            else:
                self._keep(self.misses, Miss(request, explanation))
            return self.synthesize

    def note_request(self, request: Request) -> None:
        """A request answered without consulting the recordings (record modes all/rewrite)."""
        with self._lock:
            self._keep(self.requests, request)

    def enable_synthesis(self) -> None:
        """From now on, answer a request no recording answers with a synthesized response
        (what a test that queues a script asks for) instead of failing it."""
        with self._lock:
            self.synthesize = True

    def unplayed(self) -> list[Entry]:
        with self._lock:
            return [e for e, n in zip(self.library.entries, self._plays, strict=False) if n == 0]
