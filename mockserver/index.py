"""The Library (recorded exchanges, indexed once, immutable) and the Player (a cursor).

Everything a request needs is computed here at load time: the dialect, the match key, the
served headers, the frames and their chunked wire bytes. A request then costs one dict
look-up whatever the size of the cassettes. The Player is the only mutable part: which
recordings were played, which requests missed. One Player per test (or per server run).
"""

from __future__ import annotations

import difflib
import gc
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mockserver import cassettes
from mockserver.dialects import ROUTER, RouteMatch
from mockserver.dialects.contract import Dialect
from mockserver.errors import NoMatchingExchange
from mockserver.model import Exchange, Headers, Identity, Request, header

Key = tuple[str, str, str, Identity]
"""(method, dialect name, endpoint, identity): two requests with one key get one answer."""

Bucket = tuple[str, str, str]

# Recomputed by the server for the bytes it really sends: a recorded value would be stale.
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)
CASSETTE_SUFFIXES = (".yaml", ".yml", ".json")
KEY_CACHE_SIZE = 4096


def chunked(frames: Sequence[bytes]) -> bytes:
    """HTTP/1.1 chunked transfer coding of the frames: one chunk per event, then the end."""
    parts = [b"%x\r\n%b\r\n" % (len(frame), frame) for frame in frames if frame]
    return b"".join(parts) + b"0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Entry:
    """A recorded exchange made ready to serve."""

    exchange: Exchange
    dialect: Dialect
    endpoint: str
    key: Key
    streaming: bool
    headers: Headers
    frames: tuple[bytes, ...]
    wire: bytes

    @property
    def source(self) -> str:
        return self.exchange.source


def key_for(request: Request, match: RouteMatch) -> Key:
    return (
        request.method,
        match.dialect.name,
        match.route.endpoint,
        match.dialect.identity(request),
    )


def prepare(exchange: Exchange, match: RouteMatch | None = None) -> Entry | None:
    """The Entry serving ``exchange``, or None when no dialect serves its route."""
    request, response = exchange.request, exchange.response
    match = match or ROUTER.resolve(request.method, request.path)
    if match is None:
        return None
    dialect = match.dialect
    streaming = 200 <= response.status < 300 and dialect.is_stream(request)
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS)
    framing = dialect.framing_for(request)
    if header(headers, "content-type") is None and response.body:
        # Some projects strip every response header; the protocol still fixes the type.
        content_type = framing.content_type if streaming else "application/json"
        headers += (("content-type", content_type),)
    frames = framing.frames(response.body) if streaming else (response.body,)
    return Entry(
        exchange=exchange,
        dialect=dialect,
        endpoint=match.route.endpoint,
        key=key_for(request, match),
        streaming=streaming,
        headers=headers,
        frames=frames,
        wire=chunked(frames) if streaming else b"",
    )


def cassette_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The cassette files named, folders searched recursively, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in CASSETTE_SUFFIXES and p.is_file())
            )
        else:
            found.append(path)
    return found


class Library:
    """Recorded exchanges indexed by match key; immutable once built, shared freely."""

    def __init__(self, exchanges: Iterable[Exchange]) -> None:
        entries: list[Entry] = []
        unserved: list[Exchange] = []
        for exchange in exchanges:
            entry = prepare(exchange)
            if entry is None:
                unserved.append(exchange)
            else:
                entries.append(entry)
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.unserved: tuple[Exchange, ...] = tuple(unserved)
        index: dict[Key, list[int]] = {}
        buckets: dict[Bucket, list[int]] = {}
        for position, entry in enumerate(self.entries):
            index.setdefault(entry.key, []).append(position)
            buckets.setdefault(entry.key[:3], []).append(position)
        self._index = {key: tuple(value) for key, value in index.items()}
        self._buckets = {key: tuple(value) for key, value in buckets.items()}
        # Clients repeat the same bodies (a test suite, a load test): their keys are
        # remembered, as computing an identity is most of a replay's CPU time.
        self._keys: dict[tuple[str, str, tuple[tuple[str, str], ...], bytes], Key] = {}

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike[str]]) -> Library:
        # Loading builds millions of small objects that all live on: the cyclic garbage
        # collector would rescan them again and again (40 s instead of 12 s for 100,000
        # interactions, measured by benchmarks/run.py), so it waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            exchanges: list[Exchange] = []
            for path in cassette_files(paths):
                exchanges.extend(cassettes.load(path))
            return cls(exchanges)
        finally:
            if collecting:
                gc.enable()

    def __len__(self) -> int:
        return len(self.entries)

    def key(self, request: Request, match: RouteMatch) -> Key:
        """``key_for(request, match)``, remembered for up to KEY_CACHE_SIZE requests."""
        seen = (request.method, request.path, request.query, request.body)
        key = self._keys.get(seen)
        if key is None:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            key = self._keys[seen] = key_for(request, match)
        return key

    def positions(self, key: Key) -> tuple[int, ...]:
        return self._index.get(key, ())

    def bucket(self, key: Key) -> tuple[int, ...]:
        return self._buckets.get(key[:3], ())


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
    answers it from a script) instead of in ``misses``. ``keep_requests`` lists every
    request in ``requests`` (what a test inspects; a long-running server turns it off)."""

    library: Library
    allow_repeats: bool = False
    synthesize: bool = False
    keep_requests: bool = True
    requests: list[Request] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    synthesized: list[Request] = field(default_factory=list)
    _plays: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._plays = [0] * len(self.library.entries)

    def next(self, request: Request, match: RouteMatch) -> Entry:
        """The entry answering ``request``, or NoMatchingExchange explaining the miss.

        The caller decides what a miss is (a failure, a synthesized answer, a recording)
        and notes it with ``miss``."""
        key = self.library.key(request, match)
        with self._lock:
            if self.keep_requests:
                self.requests.append(request)
            positions = self.library.positions(key)
            for position in positions:
                if self._plays[position] == 0:
                    self._plays[position] = 1
                    return self.library.entries[position]
            if positions and self.allow_repeats:
                self._plays[positions[-1]] += 1
                return self.library.entries[positions[-1]]
        raise NoMatchingExchange(explain_miss(self.library, request, key, positions))

    def note_miss(self, request: Request, explanation: str) -> None:
        """A request nothing answered: a failure of the test (unless synthesis was asked
        for, then it is listed in ``synthesized``)."""
        with self._lock:
            if self.synthesize:
                self.synthesized.append(request)
            else:
                self.misses.append(Miss(request, explanation))

    def note_request(self, request: Request) -> None:
        """A request answered without consulting the recordings (record modes all/rewrite)."""
        with self._lock:
            if self.keep_requests:
                self.requests.append(request)

    def unplayed(self) -> list[Entry]:
        with self._lock:
            return [e for e, n in zip(self.library.entries, self._plays, strict=False) if n == 0]


def _short(value: str | None, limit: int = 120) -> str:
    if value is None:
        return "(absent)"
    return value if len(value) <= limit else value[: limit - 3] + "..."


def differences(recorded: Identity, got: Identity) -> list[str]:
    """One line per field that differs between two identities: recorded vs got."""
    left, right = dict(recorded), dict(got)
    lines = []
    for name in sorted(left.keys() | right.keys()):
        if left.get(name) != right.get(name):
            lines.append(
                f"{name}: recorded {_short(left.get(name))}, got {_short(right.get(name))}"
            )
    return lines


def nearest(
    library: Library, key: Key, candidates: Sequence[int], count: int = 3
) -> list[tuple[list[str], int]]:
    """The ``count`` recordings closest to ``key``: fewest differing fields first, then the
    most similar values (compared for the first 50 only: a miss must stay cheap)."""
    by_fields = sorted(
        ((differences(library.entries[p].key[3], key[3]), p) for p in candidates),
        key=lambda item: (len(item[0]), item[1]),
    )
    got = dict(key[3])

    def distance(position: int) -> float:
        recorded = dict(library.entries[position].key[3])
        changed = [
            name for name in recorded.keys() | got.keys() if recorded.get(name) != got.get(name)
        ]
        similar = sum(
            difflib.SequenceMatcher(None, recorded.get(n, ""), got.get(n, "")).ratio()
            for n in changed
        )
        return len(changed) - similar

    head = sorted(by_fields[:50], key=lambda item: (distance(item[1]), item[1]))
    return (head + by_fields[50:])[:count]


def explain_miss(library: Library, request: Request, key: Key, played: Sequence[int]) -> str:
    """What a client and a failing test are told: the request, the nearest recordings and
    how each differs, and the way out."""
    head = f"Tapedeck has no recording for {request.summary()} [{key[1]} {key[2]}]."
    if played:
        sources = ", ".join(library.entries[p].source for p in played)
        return (
            f"{head} Identical requests were recorded ({sources}) but every one was already "
            f"played ({len(played)} recorded, request #{len(played) + 1}). Way out: record the "
            "extra call, or allow repeats (marker allow_repeats=True)."
        )
    candidates = library.bucket(key)
    if not candidates:
        return (
            f"{head} The loaded cassettes hold no {key[1]} {key[2]} request at all "
            f"({len(library)} served interactions loaded). Way out: record it (record mode "
            "once or new_episodes), or load the cassette that holds it."
        )
    lines = [head, "Nearest recorded requests:"]
    for diffs, position in nearest(library, key, candidates):
        lines.append(f"  {library.entries[position].source} differs in:")
        lines.extend(f"    {line}" for line in diffs)
    lines.append(
        "Way out: record this request (record mode new_episodes), or change it to match a "
        "recording."
    )
    return "\n".join(lines)
