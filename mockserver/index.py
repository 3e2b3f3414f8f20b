"""The index of recorded exchanges: built once at load time, immutable, shared freely.

    cassettes.load -> Exchange -> prepare -> Entry -> Library (index by match key)

Everything a request needs is computed here, once: the dialect, the match key, the served
headers, the frames and their chunked wire bytes. A request then costs one dict look-up
whatever the size of the cassettes. What was played and what missed is the Player's
(player.py); why a request missed is misses.py's.

Each cassette file makes a ``Segment``. ``from_paths`` given a ``SegmentStore`` (the index
cache, index_cache.py) asks it for each file's segment, which may come back ``Stored``:
entries decoded on first use instead of at start.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mockserver import cassettes
from mockserver.dialects import ROUTER, RouteMatch
from mockserver.dialects.contract import Dialect
from mockserver.errors import CassetteFormatError
from mockserver.framing.http import FRAMING_HEADERS, chunked
from mockserver.lazy_entries import LazyEntries, Stored
from mockserver.model import Exchange, Headers, Identity, Request, header
from mockserver.redaction import for_identity

Key = tuple[str, str, str, Identity]
"""(method, dialect name, endpoint, identity): two requests with one key get one answer."""

Bucket = tuple[str, str, str]

CASSETTE_SUFFIXES = (".yaml", ".yml", ".json")
KEY_CACHE_SIZE = 4096


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
    # Identity over the request as it would be recorded: a secret in the body (an api_key
    # field) is the placeholder on disk, so it must be the placeholder here too.
    return (
        request.method,
        match.dialect.name,
        match.route.endpoint,
        match.dialect.identity(for_identity(request)),
    )


def prepare(
    exchange: Exchange, match: RouteMatch | None = None, *, chunks: Sequence[bytes] | None = None
) -> Entry | None:
    """The Entry serving ``exchange``, or None when no dialect serves its route.

    A stream goes out one HTTP chunk per event, or in ``chunks`` when given (a generated
    stream's own cuts, which may split an event or a character); they join to the body."""
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
    if not streaming:
        frames: tuple[bytes, ...] = (response.body,)
    elif chunks is None:
        frames = framing.frames(response.body)
    elif b"".join(chunks) == response.body:
        frames = tuple(chunks)
    else:
        raise ValueError(f"{exchange.source}: the chunks of a stream must join to its body")
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


def digest_of(method: str, path: str, query: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    """What tells two requests apart before any parsing: the same digest, the same key."""
    # The repr fixes where each part ends, the body's length where the body does.
    head = repr((method, path, query, len(body)))
    seen = hashlib.blake2b(head.encode("utf-8", "surrogatepass"), digest_size=16)
    seen.update(body)
    return seen.digest()


class KeyCache:
    """The keys of request bodies seen before, least recently used out first.

    Clients repeat the same bodies (a test suite, a load test), and computing an identity
    is most of a replay's CPU time. Only recordings' keys are kept (a miss is never
    remembered, however many distinct bodies a client sends), by a digest of the request:
    the cache holds neither bodies nor identities of its own, and at most KEY_CACHE_SIZE
    of them. Servers on several threads may share a library, hence the lock."""

    def __init__(self, size: int = KEY_CACHE_SIZE) -> None:
        self._size = size
        self._keys: OrderedDict[bytes, Key] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(request: Request) -> bytes:
        return digest_of(request.method, request.path, request.query, request.body)

    def get(self, digest: bytes) -> Key | None:
        with self._lock:
            key = self._keys.get(digest)
            if key is not None:
                self._keys.move_to_end(digest)
            return key

    def put(self, digest: bytes, key: Key) -> None:
        with self._lock:
            self._keys[digest] = key
            self._keys.move_to_end(digest)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class Segment:
    """What one cassette file adds to a library; positions count within the segment."""

    entries: tuple[Entry, ...] | Stored
    unserved: tuple[Exchange, ...]
    index: dict[Key, tuple[int, ...]]
    buckets: dict[Bucket, tuple[int, ...]]


class SegmentStore(Protocol):
    """Where ``from_paths`` gets a cassette file's segment (the index cache)."""

    def segment(self, path: Path, name: str) -> Segment:
        """The segment of the cassette at ``path``, its sources named ``name#N``; a
        CassetteFormatError or CassetteNotFoundError as ``cassettes.load`` raises them."""
        ...


def segment_of(exchanges: Iterable[Exchange]) -> Segment:
    """Every exchange prepared (those no dialect serves set apart) and indexed by key."""
    entries: list[Entry] = []
    unserved: list[Exchange] = []
    for exchange in exchanges:
        try:
            entry = prepare(exchange)
        except RecursionError:
            # A recorded body nested past what Python's recursion allows: no request
            # the server accepts can match it, and it must not crash the start-up.
            file, _, number = exchange.source.rpartition("#")
            raise CassetteFormatError(
                file or exchange.source,
                int(number) if number.isdigit() else None,
                "expected a request body nested less deeply, found one too deep to "
                "index (the server refuses requests nested past its JSON depth limit, "
                "so none could match it); remove or shorten this interaction",
            ) from None
        if entry is None:
            unserved.append(exchange)
        else:
            entries.append(entry)
    return Segment(tuple(entries), tuple(unserved), *_indexed(entry.key for entry in entries))


def _indexed(
    keys: Iterable[Key],
) -> tuple[dict[Key, tuple[int, ...]], dict[Bucket, tuple[int, ...]]]:
    index: dict[Key, list[int]] = {}
    buckets: dict[Bucket, list[int]] = {}
    for position, key in enumerate(keys):
        index.setdefault(key, []).append(position)
        buckets.setdefault(key[:3], []).append(position)
    return (
        {key: tuple(value) for key, value in index.items()},
        {key: tuple(value) for key, value in buckets.items()},
    )


def _merged(segments: Sequence[Segment]) -> Segment:
    """One segment of several, in order: positions shifted by the entries before."""
    if len(segments) == 1:
        return segments[0]
    index: dict[Key, list[int]] = {}
    buckets: dict[Bucket, list[int]] = {}
    offset = 0
    for segment in segments:
        for key, positions in segment.index.items():
            index.setdefault(key, []).extend(offset + p for p in positions)
        for bucket, positions in segment.buckets.items():
            buckets.setdefault(bucket, []).extend(offset + p for p in positions)
        offset += len(segment.entries)
    parts = [segment.entries for segment in segments]
    eager = [part for part in parts if isinstance(part, tuple)]
    entries = tuple(e for part in eager for e in part) if len(eager) == len(parts) else None
    return Segment(
        entries if entries is not None else LazyEntries(parts),
        tuple(exchange for segment in segments for exchange in segment.unserved),
        {key: tuple(value) for key, value in index.items()},
        {key: tuple(value) for key, value in buckets.items()},
    )


class Library:
    """Recorded exchanges indexed by match key; immutable once built, shared freely."""

    entries: tuple[Entry, ...] | LazyEntries

    def __init__(self, exchanges: Iterable[Exchange]) -> None:
        self._adopt(segment_of(exchanges))

    def _adopt(self, segment: Segment) -> None:
        entries = segment.entries
        if isinstance(entries, tuple | LazyEntries):
            self.entries = entries
        else:
            self.entries = LazyEntries([entries])
        self.unserved: tuple[Exchange, ...] = segment.unserved
        self._index = segment.index
        self._buckets = segment.buckets
        self._keys = KeyCache()

    @classmethod
    def from_segments(cls, segments: Sequence[Segment]) -> Library:
        """The library of the segments in order (one per cassette file)."""
        library = cls.__new__(cls)
        library._adopt(_merged(segments) if segments else segment_of(()))
        return library

    @classmethod
    def from_paths(
        cls, paths: Iterable[str | os.PathLike[str]], store: SegmentStore | None = None
    ) -> Library:
        """The cassettes named (folders searched), each file's segment from ``store``
        when given (the index cache), else read and prepared here."""
        # Loading builds millions of small objects that all live on: the cyclic garbage
        # collector would rescan them again and again (40 s instead of 12 s for 100,000
        # interactions, measured by benchmarks/run.py), so it waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            exchanges: list[Exchange] = []
            segments: list[Segment] = []
            for given in paths:
                folder = Path(given) if Path(given).is_dir() else None
                for path in cassette_files([given]):
                    # Named relative to the folder searched: a server's clients read
                    # "openai/chat.yaml#3" in a miss, not where the server keeps it.
                    name = str(path.relative_to(folder)) if folder is not None else None
                    if store is None:
                        exchanges.extend(cassettes.load(path, name))
                    else:
                        segments.append(store.segment(path, name or os.fspath(path)))
            return cls(exchanges) if store is None else cls.from_segments(segments)
        finally:
            if collecting:
                gc.enable()

    def __len__(self) -> int:
        return len(self.entries)

    def key_at(self, position: int) -> Key:
        """The key of the entry at ``position`` (without decoding a stored entry)."""
        entries = self.entries
        return entries.key(position) if isinstance(entries, LazyEntries) else entries[position].key

    def key(self, request: Request, match: RouteMatch) -> Key:
        """``key_for(request, match)``; remembered when it is a recording's key."""
        seen = KeyCache.digest(request)
        key = self._keys.get(seen)
        if key is None:
            key = key_for(request, match)
            positions = self._index.get(key)
            if positions:  # the index's own key: the cache holds no body, no identity
                key = self.key_at(positions[0])
                self._keys.put(seen, key)
        return key

    def known(self, digest: bytes) -> Key | None:
        """The key of a request seen before whose ``digest_of`` is ``digest``, if it
        matched a recording then: that request need not be parsed again."""
        return self._keys.get(digest)

    def positions(self, key: Key) -> tuple[int, ...]:
        return self._index.get(key, ())

    def bucket(self, key: Key) -> tuple[int, ...]:
        return self._buckets.get(key[:3], ())
