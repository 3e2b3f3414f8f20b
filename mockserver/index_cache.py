"""The index cache: what loading and preparing a cassette file cost, kept on disk so that
the next start on the same file maps it instead (100,000 interactions: seconds -> ms).

    Library.from_paths(paths, store=IndexCache) -> segment(path, name)
        hit:  the cassette's sha256 names a file written for it -> index_codec.read
        miss: cassettes.from_bytes -> index.segment_of -> kept for ``save`` (after listening)

The key of a file's entry is the sha256 of the cassette's bytes together with Tapedeck's
fingerprint (FORMAT, the installed version, the interpreter's, and the source of the
mockserver package itself, so a checkout edited in place misses too). Any change to
either misses: never stale. Nothing depends on the cache being there or usable: a
directory that cannot be made, read or written, a file that is damaged, anything that
goes wrong is logged (once) and the cassette is read as if there were no cache.

Where: ``$TAPEDECK_CACHE_DIR``, else ``$XDG_CACHE_HOME/tapedeck``, else
``~/.cache/tapedeck``; the files are ``index/<key>.tdx`` there. ``TAPEDECK_INDEX_CACHE=0``
turns it off (``tapedeck serve --no-index-cache`` for one run). Bounded: a file unused for
MAX_AGE_DAYS is removed, and the least recently used go first beyond MAX_BYTES in all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed
from pathlib import Path

from mockserver import cassettes, index_codec
from mockserver.index import Segment, segment_of

log = logging.getLogger("tapedeck")

DISTRIBUTION = "llm-tapedeck"
SUFFIX = ".tdx"
MAX_AGE_DAYS = 30
MAX_BYTES = 2 * 1024**3
"""2 GiB: eighteen 100,000-interaction cassettes (114 MB each, about the JSON's size)."""
STALE_TEMP_SECONDS = 3600  # a temp file this old was left by a writer that was killed
OFF = frozenset({"0", "off", "false", "no"})


def directory(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the cache lives (see the module's docstring); an empty variable is unset."""
    if environ.get("TAPEDECK_CACHE_DIR"):
        return Path(environ["TAPEDECK_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tapedeck"


def fingerprint(version: str | None = None) -> bytes:
    """What the cache key holds of Tapedeck and the interpreter: a change to any of them
    (``version``: the installed one when None) invalidates every file."""
    if version is None:
        try:
            version = installed(DISTRIBUTION)
        except PackageNotFoundError:  # a checkout on sys.path: the source says it all
            version = "unknown"
    stamp = (index_codec.FORMAT, version, sys.version, marshal.version)
    seen = hashlib.sha256(repr(stamp).encode())
    # A checkout edited in place keeps its version: its source is in the key too (about
    # 1 MB, a few ms). Identity rules, framings and this cache's layout all live there.
    root = Path(__file__).resolve().parent
    for source in sorted(root.rglob("*.py")):
        seen.update(str(source.relative_to(root)).encode() + b"\0")
        seen.update(source.read_bytes())
    return seen.digest()


def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes, read a block at a time into one buffer (100 MB: ~0.1 s;
    reading it whole first would cost a 100 MB allocation more)."""
    seen = hashlib.sha256()
    block = bytearray(1 << 20)
    view = memoryview(block)
    with path.open("rb", buffering=0) as stream:
        while count := stream.readinto(block):
            seen.update(view[:count])
    return seen.digest()


@dataclass
class IndexCache:
    """The cache in ``folder`` (its ``index`` subfolder), for one ``stamp`` (see
    ``fingerprint``). A ``SegmentStore`` for ``Library.from_paths``; ``save`` writes what
    it had to read."""

    folder: Path
    stamp: bytes = field(default_factory=fingerprint)
    max_bytes: int = MAX_BYTES
    max_age: float = MAX_AGE_DAYS * 86400.0
    hits: int = 0
    misses: int = 0
    _pending: list[tuple[bytes, Segment, str]] = field(default_factory=list, repr=False)
    _said: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> IndexCache | None:
        """The user's cache, or None when ``TAPEDECK_INDEX_CACHE`` turns it off."""
        if environ.get("TAPEDECK_INDEX_CACHE", "").strip().lower() in OFF:
            return None
        try:
            return cls(directory(environ))
        except (OSError, RuntimeError) as exc:  # no home directory; an unreadable source
            log.info("index cache off: %s", exc)
            return None

    @property
    def files(self) -> Path:
        return self.folder / "index"

    def key(self, digest: bytes) -> bytes:
        return hashlib.sha256(self.stamp + digest).digest()

    def where(self, key: bytes) -> Path:
        return self.files / f"{key.hex()}{SUFFIX}"

    def segment(self, path: Path, name: str) -> Segment:
        """The segment of the cassette at ``path``: mapped from the cache when it holds one
        for these very bytes, else read, prepared and kept for ``save``."""
        try:
            stored = self._read(self.key(file_digest(path)), name)
        except OSError:
            stored = None  # reading it below says what is wrong, as without a cache
        if stored is not None:
            self.hits += 1
            return stored
        try:
            data = path.read_bytes()
        except OSError:  # CassetteNotFoundError..., in its words (or the file is back)
            return segment_of(cassettes.load(path, name))
        segment = segment_of(cassettes.from_bytes(data, name))
        self.misses += 1
        # Keyed by the bytes parsed, not those hashed above: the file may have changed.
        self._pending.append((self.key(hashlib.sha256(data).digest()), segment, name))
        return segment

    def _read(self, key: bytes, name: str) -> Segment | None:
        where = self.where(key)
        try:
            segment = index_codec.read(where, key, name)
        except FileNotFoundError:
            return None
        except index_codec.CorruptIndex as exc:
            self._say("corrupt", f"index cache: ignored {where.name} ({exc}); it is rewritten")
            with contextlib.suppress(OSError):
                where.unlink()
            return None
        except (OSError, ValueError) as exc:  # unreadable; a mapping refused
            self._say("read", f"index cache: cannot read {where} ({exc}); reading cassettes")
            return None
        with contextlib.suppress(OSError):
            os.utime(where)  # its modification time is its last use (see prune)
        return segment

    def save(self) -> int:
        """Write the segments read since the last save (then prune); how many were
        written. Never raises for the cache's sake: a failure is logged once."""
        written = 0
        pending, self._pending = self._pending, []
        for key, segment, name in pending:
            try:
                self._write(key, segment, name)
                written += 1
            except (OSError, ValueError) as exc:  # a full disk, a read-only folder...
                self._say("write", f"index cache: not written in {self.files} ({exc})")
        if written:
            self.prune()
        return written

    def save_in_background(self) -> threading.Thread:
        """``save`` on a thread of its own (the server answers meanwhile); join it before
        exit to keep what it writes."""
        thread = threading.Thread(target=self.save, name="tapedeck-index-cache", daemon=True)
        thread.start()
        return thread

    def _write(self, key: bytes, segment: Segment, name: str) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        target = self.where(key)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", dir=self.files)
        try:
            # No fsync: a file cut short by a crash fails its checksum and is rewritten.
            with os.fdopen(handle, "wb") as stream:
                index_codec.write(stream, segment, key, name)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def prune(self, now: float | None = None) -> None:
        """Remove files unused for ``max_age`` seconds, then the least recently used
        until all fit in ``max_bytes``, and temp files a killed writer left."""
        now = time.time() if now is None else now
        kept: list[tuple[float, int, Path]] = []
        with contextlib.suppress(OSError), os.scandir(self.files) as found:
            for item in found:
                with contextlib.suppress(OSError):
                    stat = item.stat(follow_symlinks=False)
                    age = now - stat.st_mtime
                    temporary = item.name.startswith(".")
                    if (temporary and age > STALE_TEMP_SECONDS) or (
                        item.name.endswith(SUFFIX) and age > self.max_age
                    ):
                        os.unlink(item.path)
                    elif item.name.endswith(SUFFIX):
                        kept.append((stat.st_mtime, stat.st_size, Path(item.path)))
        total = sum(size for _, size, _ in kept)
        for _, size, path in sorted(kept):  # oldest use first
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size

    def _say(self, what: str, message: str) -> None:
        """Log a kind of trouble once per cache: a server keeps running without it."""
        if what not in self._said:
            self._said.add(what)
            log.info("%s", message)
