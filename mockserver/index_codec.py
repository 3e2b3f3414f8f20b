"""A cassette file's prepared index as bytes, and back: what the index cache stores.

    Segment (prepared) -> write -> file  ...next start...  file -> read -> Segment (Stored)

Where it sits: after the index, before the cache (index_cache.py), which decides where
the files live and when they are used. This module knows the file's layout only:

    header   MAGIC, FORMAT, the lengths of what follows           (HEADER, fixed size)
    key      the cache key the file was written for                (DIGEST bytes)
    blobs    one marshal record per entry, in order
    head     marshal: the index, the buckets, the unserved exchanges, the blobs' offsets,
             each entry's key (its number in the index)
    trailer  sha256 of key + head, then sha256 of the blobs        (2 * DIGEST bytes)

Reading checks everything before trusting anything (the lengths add up to the file's
size, the key is the one asked for, the checksum holds), so a truncated, overwritten or
foreign file is refused whole, never half-used. The head is decoded at once (the index
is what the first request needs), while another thread checks the blobs (hashing lets go
of the GIL); each entry is decoded from its blob when first served.
marshal, not pickle: it builds only plain values (no code runs, however damaged the
file), about twice as fast; its format is the interpreter's own, so the cache key holds
the interpreter's version.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import marshal
import mmap
import struct
import threading
from array import array
from pathlib import Path
from typing import IO, Any

from mockserver.dialects import dialect
from mockserver.framing.http import chunked
from mockserver.index import Entry, Key, Segment
from mockserver.model import Exchange, Request, Response, Timing

MAGIC = b"tapedeck-index\n\0"
FORMAT = 1
"""The layout's number: raise it whenever what is written changes meaning."""
HEADER = struct.Struct("<16sIIQQ")  # magic, format, entries, blobs length, head length
DIGEST = 32
PARALLEL = 8 << 20  # blobs at least this big are checked on a thread of their own


class CorruptIndex(Exception):
    """A cache file that cannot be trusted; the message says what was wrong with it."""


def _flat_exchange(exchange: Exchange) -> tuple[Any, ...]:
    request, response, timing = exchange.request, exchange.response, exchange.timing
    return (
        request.method, request.path, request.query, request.headers, request.body,
        request.json, request.origin, response.status, response.headers, response.body,
        response.reason, None if timing is None else (timing.headers, timing.events),
    )  # fmt: skip


def _exchange(flat: tuple[Any, ...], source: str) -> Exchange:
    method, path, query, headers, body, parsed, origin = flat[:7]
    status, response_headers, response_body, reason, timing = flat[7:]
    return Exchange(
        Request(method, path, query, headers, body, parsed, origin),
        Response(status, response_headers, response_body, reason),
        source,
        None if timing is None else Timing(*timing),
    )


def _number(exchange: Exchange, name: str) -> int:
    """The interaction's number in its file: sources are re-made as ``name#N`` on reading,
    for the name the next start calls the file (a folder searched names it relative)."""
    head, _, number = exchange.source.rpartition("#")
    if head != name or not number.isdigit():
        raise ValueError(f"source {exchange.source!r} is not {name!r}#N")
    return int(number)


def _entry_record(entry: Entry, name: str) -> bytes:
    frames = None
    if entry.streaming:
        frames = tuple(len(frame) for frame in entry.frames)
    number, exchange = _number(entry.exchange, name), _flat_exchange(entry.exchange)
    fields = (number, exchange, entry.dialect.name, entry.endpoint, entry.streaming)
    return marshal.dumps((*fields, entry.headers, frames))


def write(stream: IO[bytes], segment: Segment, key: bytes, name: str) -> None:
    """Write ``segment`` (prepared from the cassette that ``name`` calls the file) to
    ``stream``, a new file open for writing and seeking. ValueError when something in it
    is not plain data marshal can store (nothing is written that would read back wrong)."""
    if len(key) != DIGEST:
        raise ValueError(f"a cache key is {DIGEST} bytes, got {len(key)}")
    entries = segment.entries
    if not isinstance(entries, tuple):
        raise ValueError("only a segment prepared from its cassette is written")
    checksum = hashlib.sha256()
    stream.write(b"\0" * HEADER.size)  # filled in last, once the lengths are known
    stream.write(key)
    offsets = array("Q", [0])
    numbered = {known: number for number, known in enumerate(segment.index)}
    keys = array("Q", (numbered[entry.key] for entry in entries))
    for entry in entries:
        record = _entry_record(entry, name)
        stream.write(record)
        checksum.update(record)
        offsets.append(offsets[-1] + len(record))
    unserved = tuple((_number(x, name), _flat_exchange(x)) for x in segment.unserved)
    tables = (offsets.tobytes(), keys.tobytes())
    head = marshal.dumps((segment.index, segment.buckets, unserved, *tables))
    stream.write(head)
    stream.write(hashlib.sha256(key + head).digest() + checksum.digest())
    stream.seek(0)
    stream.write(HEADER.pack(MAGIC, FORMAT, len(entries), offsets[-1], len(head)))


class StoredEntries:
    """A cache file's entries, decoded from the mapped file when first asked for."""

    def __init__(
        self,
        view: memoryview,
        start: int,
        offsets: memoryview,
        numbers: memoryview,
        index: dict[Key, Any],
        name: str,
    ) -> None:
        self._view, self._start, self._offsets, self._numbers = view, start, offsets, numbers
        self._index, self._name = index, name
        self._keys: list[Key] | None = None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def entry(self, position: int) -> Entry:
        begin, end = self._offsets[position], self._offsets[position + 1]
        record = marshal.loads(self._view[self._start + begin : self._start + end])
        number, flat, dialect_name, endpoint, streaming, headers, lengths = record
        exchange = _exchange(flat, f"{self._name}#{number}")
        body = exchange.response.body
        if lengths is None:
            frames: tuple[bytes, ...] = (body,)
        else:
            cuts = [0]
            for length in lengths:
                cuts.append(cuts[-1] + length)
            frames = tuple(body[a:b] for a, b in itertools.pairwise(cuts))
        return Entry(
            exchange=exchange,
            dialect=dialect(dialect_name),
            endpoint=endpoint,
            key=self.key(position),
            streaming=streaming,
            headers=headers,
            frames=frames,
            wire=chunked(frames) if streaming else b"",
        )

    def key(self, position: int) -> Key:
        if self._keys is None:  # the index holds each key once: the entries share them
            self._keys = list(self._index)
        return self._keys[self._numbers[position]]


MAP_ABOVE = 8 * 1024 * 1024
"""Index files up to this size are read into memory, larger ones mapped: a mapping holds
a file descriptor for as long as it lives (CPython duplicates it), and a server counts its
descriptors (``server_limits.FD_RESERVE``): a folder of small cassettes must not hold one
each, while the few large ones, which a mapping is for, hold one each."""


def read(path: Path, key: bytes, name: str) -> Segment:
    """The segment stored at ``path`` for ``key``, its sources named ``name#N``; its
    entries stay in the file (mapped) until used. CorruptIndex when the file is not
    wholly what was written for ``key``; OSError when it cannot be read."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        if size < HEADER.size + 3 * DIGEST:
            raise CorruptIndex(f"{size} bytes, shorter than any index file")
        if size <= MAP_ABOVE:
            file.seek(0)
            return _segment(memoryview(file.read()), key, name)
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    try:
        return _segment(view, key, name)
    except BaseException:
        # Unmapped now, unless the traceback still holds a view of it: then once freed.
        with contextlib.suppress(BufferError):
            view.release()
            mapped.close()
        raise


def _segment(view: memoryview, key: bytes, name: str) -> Segment:
    magic, form, count, blobs, head = HEADER.unpack_from(view)
    if magic != MAGIC:
        raise CorruptIndex(f"expected {MAGIC!r} first, found {bytes(magic)!r}")
    if form != FORMAT:
        raise CorruptIndex(f"layout {form}, this Tapedeck writes {FORMAT}")
    if HEADER.size + DIGEST + blobs + head + 2 * DIGEST != len(view):
        raise CorruptIndex(f"{len(view)} bytes, but its header adds up to another size")
    start = HEADER.size + DIGEST
    if view[HEADER.size : start] != key:
        raise CorruptIndex("written for another cache key")
    head_sum, blobs_sum = view[-2 * DIGEST : -DIGEST], view[-DIGEST:]
    blobs_view, head_view = view[start : start + blobs], view[start + blobs : -2 * DIGEST]
    checked = _Checked(blobs_view)
    if blobs >= PARALLEL:
        checked.start()
    else:
        checked.run()
    try:
        if hashlib.sha256(key + head_view).digest() != head_sum:
            raise CorruptIndex("the checksum of its head does not match")
        try:
            index, buckets, unserved, offsets, numbers = marshal.loads(head_view)
            moved, keys = memoryview(offsets).cast("Q"), memoryview(numbers).cast("Q")
        except (ValueError, EOFError, TypeError) as exc:
            raise CorruptIndex(f"its head does not decode ({exc})") from None
    finally:
        if blobs >= PARALLEL:
            checked.join()
    if checked.digest != blobs_sum:
        raise CorruptIndex("the checksum of its entries does not match")
    if len(moved) != count + 1 or moved[-1] != blobs or len(keys) != count:
        raise CorruptIndex("its offsets do not match its entries")
    if not (isinstance(index, dict) and isinstance(buckets, dict)):
        raise CorruptIndex("its head does not hold an index")
    exchanges = tuple(_exchange(flat, f"{name}#{number}") for number, flat in unserved)
    stored = StoredEntries(view, start, moved, keys, index, name)
    return Segment(stored, exchanges, index, buckets)


class _Checked(threading.Thread):
    """sha256 of a large view, on a thread (the hash runs without the GIL) or not."""

    def __init__(self, view: memoryview) -> None:
        super().__init__(name="tapedeck-index-check", daemon=True)
        self._view = view
        self.digest = b""

    def run(self) -> None:
        self.digest = hashlib.sha256(self._view).digest()
