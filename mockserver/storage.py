"""Cassette files on disk: which paths can be cassettes, how a cassette is replaced (temp
file, fsync, rename) and how it grows (one appended record), under a lock on its folder.

Where it sits: below ``cassettes`` (which knows the YAML and calls these with bytes) and
the Recorder. It knows files and bytes, never YAML: a growing cassette is a header
followed by records, each ending in an end line, and whatever follows the last end line
is a record still being written, or one cut short by a writer that was killed.

Every writer of a folder holds its lock (``locked``), so several processes recording into
one folder lose nothing, and a temp file left by a killed writer is removed by the next.
Readers take no lock: they read up to the last end line (``complete``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from mockserver.errors import UnsafeCassetteName

log = logging.getLogger("tapedeck")

TEMP_SUFFIX = ".tmp"
# mkstemp names a temp file ".{name}.XXXXXXXX.tmp": the cassette's name plus these bytes
# must still fit in one file name.
_TEMP_EXTRA = len(".") + len(".") + 8 + len(TEMP_SUFFIX)
_TAIL_BLOCK = 1 << 16


def check_name(path: Path, shown: str) -> None:
    """Refuse a cassette path whose name cannot be a file on this filesystem (NUL, no file
    name, too long): UnsafeCassetteName, naming it as ``shown`` (as the user wrote it)."""
    text = os.fspath(path)
    if "\0" in text:
        _refuse(shown, "it contains a NUL character")
    if path.name in ("", ".", ".."):
        _refuse(shown, "it names a folder, not a file")
    existing = next((parent for parent in path.parents if parent.is_dir()), Path("/"))
    name_max = _limit(existing, "PC_NAME_MAX", 255)
    for part in path.parts:
        room = name_max - (_TEMP_EXTRA if part == path.name else 0)
        if len(os.fsencode(part)) > room:
            _refuse(
                shown,
                f"the name {_short(part)} is {len(os.fsencode(part))} bytes long, and this "
                f"filesystem allows {room} for it ({name_max} per name, less "
                f"{_TEMP_EXTRA} for the temp file a cassette is written through)",
            )
    path_max = _limit(existing, "PC_PATH_MAX", 4096)
    if path.is_absolute() and len(os.fsencode(text)) + _TEMP_EXTRA >= path_max:
        _refuse(shown, f"its full path is too long for this filesystem ({path_max} bytes)")


def check_target(path: Path, shown: str) -> None:
    """``check_name``, and refuse a cassette that cannot be written where it is: a folder
    by that name, or a file where a folder on its way should be."""
    check_name(Path(os.path.abspath(path)) if "\0" not in os.fspath(path) else path, shown)
    if path.is_dir():
        _refuse(shown, "it is a folder")
    existing = next(parent for parent in path.parents if parent.exists())
    if not existing.is_dir():
        _refuse(shown, f"{existing.name!r} on its way is a file, so no folder can be made there")


def _refuse(shown: str, why: str) -> NoReturn:
    raise UnsafeCassetteName(
        f"cassette {_short(shown)} cannot be written: {why}. Way out: name a cassette file "
        "that can be created there, such as 'my-test.yaml'"
    )


def _short(name: str) -> str:
    return repr(name) if len(name) <= 60 else repr(name[:40] + "...") + f" ({len(name)} chars)"


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``folder`` (created if missing): one writer at a time.
    The folder, not the file, is locked because a replaced file is a new inode."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def replace(target: Path, data: bytes) -> None:
    """Write ``target`` whole and atomically: readers see the old file or the new one.
    The caller holds ``locked(target.parent)``, so temp files of ``target`` that exist
    now were left by a killed writer, and are removed."""
    _remove_stale_temps(target)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)  # mkstemp makes 0600 files
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def tidy(target: Path) -> None:
    """Remove the temp files a killed writer left beside ``target`` (``replace`` does it
    too): the Recorder does it once at start, so that appends need not look."""
    if target.parent.is_dir():
        with locked(target.parent):
            _remove_stale_temps(target)


def _remove_stale_temps(target: Path) -> None:
    """Temp files of ``target`` (``.{name}.XXXXXXXX.tmp``) that a killed writer left; the
    lock is held, so no live writer has one. Never read: they are not ``.yaml``."""
    prefix, length = f".{target.name}.", len(target.name) + _TEMP_EXTRA
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            if len(name) == length and name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    log.warning("removed %s, left by a writer that was killed", name)


def append(target: Path, record: bytes, header: bytes, end: bytes) -> bool:
    """Add ``record`` (ending in ``end``) at the end of ``target`` in one write, without
    reading or rewriting what is there; the caller holds ``locked(target.parent)``.

    False, and nothing written, when ``target`` is missing or not in this layout (it does
    not start with ``header``, or has no end line at all): the caller then writes it whole
    with ``replace``. A tail after the last end line is a record a killed writer left
    unfinished: cut off first. A failed write is cut off too (a full disk, say)."""
    try:
        fd = os.open(target, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        if os.pread(fd, len(header), 0) != header:
            return False
        tail = os.pread(fd, min(size, _TAIL_BLOCK), size - min(size, _TAIL_BLOCK))
        if _ends_complete(tail, end) or size == len(header):
            whole, lead = size, b"" if tail.endswith(b"\n") else b"\n"
        else:
            whole, lead = _last_end(fd, size, len(header), b"\n" + end), b""
            if whole < 0:
                return False  # no end line at all: written by hand or by another tool
            os.ftruncate(fd, whole)
            log.warning(
                "%s: cut %d bytes after its last complete record (a writer was killed while "
                "appending)",
                target.name,
                size - whole,
            )
        try:
            _write_all(fd, lead + record)
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, whole)  # disk full...: leave no half record behind
            raise
        return True
    finally:
        os.close(fd)


def _ends_complete(data: bytes, end: bytes) -> bool:
    """Whether ``data`` ends with an end line (at the start of a line: an indented copy is
    body text), give or take trailing whitespace an editor added or removed."""
    return data.rstrip().endswith(b"\n" + end.rstrip())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _last_end(fd: int, size: int, floor: int, marker: bytes) -> int:
    """Where the last ``marker`` ends (-1 if there is none after ``floor``), reading
    backwards from the end: as much as the unfinished tail, not the whole file."""
    position, carry = size, b""
    while position > floor:
        start = max(floor, position - _TAIL_BLOCK)
        block = os.pread(fd, position - start, start) + carry
        found = block.rfind(marker)
        if found >= 0:
            return start + found + len(marker)
        position, carry = start, block[: len(marker)]
    return -1


def complete(data: bytes, header: bytes, end: bytes, name: str) -> bytes:
    """What a reader may use of a growing file: up to its last end line. A file not in
    this layout, or with no end line at all (written by hand), is used whole."""
    if not data.startswith(header) or _ends_complete(data[-_TAIL_BLOCK:], end):
        return data
    found = data.rfind(b"\n" + end)
    if found < 0:
        return data
    kept = data[: found + 1 + len(end)]
    log.info(
        "%s: ignored %d bytes after its last complete record (an append in progress, or "
        "one a killed writer left unfinished)",
        name,
        len(data) - len(kept),
    )
    return kept
