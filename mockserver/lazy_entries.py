"""A segment's entries decoded on first use: what a library made from the index cache
holds instead of a tuple of entries, so that a start decodes nothing it does not serve.

Where it sits: beside the index (index.py), which takes its parts from cassettes read now
(tuples of entries) or from the index cache's files (``Stored``, index_codec.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, overload

if TYPE_CHECKING:
    from mockserver.index import Entry, Key


class Stored(Protocol):
    """A segment's entries kept outside memory (the index cache's file), decoded one by
    one on demand; ``key`` reads an entry's key without decoding the entry."""

    def __len__(self) -> int: ...

    def entry(self, position: int) -> Entry: ...

    def key(self, position: int) -> Key: ...


class LazyEntries(Sequence["Entry"]):
    """Entries in order, those of ``Stored`` parts decoded on first use and kept: a
    server decodes what it serves, never all of a large cassette at start. Two threads
    may decode one entry at once; both get equal values, and either is kept."""

    def __init__(self, parts: Sequence[tuple[Entry, ...] | Stored]) -> None:
        self._parts = tuple(parts)
        self._starts: list[int] = []
        total = 0
        for part in self._parts:
            self._starts.append(total)
            total += len(part)
        self._decoded: list[Entry | None] = [None] * total

    def __len__(self) -> int:
        return len(self._decoded)

    @overload
    def __getitem__(self, position: int) -> Entry: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[Entry]: ...

    def __getitem__(self, position: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(position, slice):
            return tuple(self.entry(p) for p in range(len(self))[position])
        return self.entry(position)

    def __iter__(self) -> Iterator[Entry]:
        return (self.entry(position) for position in range(len(self)))

    def entry(self, position: int) -> Entry:
        entry = self._decoded[position]
        if entry is None:
            part, local = self._locate(position)
            entry = part[local] if isinstance(part, tuple) else part.entry(local)
            self._decoded[position] = entry
        return entry

    def key(self, position: int) -> Key:
        entry = self._decoded[position]
        if entry is not None:
            return entry.key
        part, local = self._locate(position)
        return part[local].key if isinstance(part, tuple) else part.key(local)

    def _locate(self, position: int) -> tuple[tuple[Entry, ...] | Stored, int]:
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"entry {position} of {len(self)}")
        which = bisect.bisect_right(self._starts, position) - 1
        return self._parts[which], position - self._starts[which]
