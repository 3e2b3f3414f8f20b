"""What one test asks of Tapedeck: its ``tapedeck`` marker, read with the command line and
the ini file into a ``Plan`` (which cassettes, in which folder, which record mode, which
hosts the test may reach) that the ``tapedeck`` fixture carries out. pytest-recording's
``vcr`` marker makes the same ``Plan`` in ``recording_compat``.

Record modes, strongest first: ``--tapedeck-record-mode`` (forces every test), the
marker's ``record_mode`` (for ``vcr``: over ``vcr_config``'s), ``--record-mode`` (a
default, as in pytest-recording, that markers override), the ``tapedeck_record_mode`` ini
key, ``none``.

Imported when pytest loads the plugin: pytest only here; the server's modules are
imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from mockserver.redaction import Redaction

# The same tuple as mockserver.recorder.RECORD_MODES (a test checks): importing that module
# here would load aiohttp with the plugin.
RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
MARKER_ARGUMENTS = (
    "cassette", "allow_unused", "allow_repeats", "synthesize", "record_mode", "faults",
)  # fmt: skip
VCR_RECORD_MODE = "tapedeck_vcr_record_mode"
"""Where ``--record-mode`` lands when Tapedeck (not pytest-recording) defines it."""
# pytest-recording replaces these in a default cassette name (parametrize ids mostly).
FORBIDDEN = "<>?%*:|\"'/\\"
try:
    MAX_NAME = os.pathconf(".", "PC_NAME_MAX")
except (AttributeError, ValueError, OSError):  # pragma: no cover - Windows
    MAX_NAME = 255


@dataclass(frozen=True)
class Options:
    """A test's marker arguments."""

    cassettes: tuple[str, ...]
    allow_unused: bool
    allow_repeats: bool
    synthesize: bool
    record_mode: str | None
    faults: tuple[str, ...] = ()
    """Fault specs standing for the whole test (README 'Faults'), checked at collection."""


@dataclass(frozen=True)
class Plan:
    """What the ``tapedeck`` fixture does for one test."""

    options: Options
    folder: Path
    """Cassette names resolve under it; recording never writes outside it."""
    paths: tuple[Path, ...]
    """Every cassette replayed; the first is the one recording writes."""
    named: tuple[Path, ...]
    """The cassettes a marker named: missing, they fail a test that records nothing."""
    mode: str
    allowed_hosts: tuple[str, ...] = ()
    redact_headers: tuple[str, ...] = ()
    redact_query: tuple[str, ...] = ()
    redact_body: tuple[str, ...] = ()

    def redaction(self, base: Redaction) -> Redaction:
        if not (self.redact_headers or self.redact_query or self.redact_body):
            return base
        return base.extend(self.redact_headers, self.redact_query, self.redact_body)


def split_hosts(values: Iterable[object]) -> tuple[str, ...]:
    """``["a,b", "c"]`` -> ``("a", "b", "c")``: comma-separated, as pytest-recording's
    ``--allowed-hosts``; a list (``vcr_config``, a marker) may come whole."""
    found: list[str] = []
    for value in values:
        parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
        found.extend(str(part).strip() for part in parts if str(part).strip())
    return tuple(found)


def check_patterns(patterns: Iterable[str], where: str) -> None:
    """A pattern that is not a regular expression: ValueError saying which and where."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"{where}: {pattern!r} is not a regular expression ({exc}); allowed hosts are "
                r"regular expressions matched against the whole host name or address, "
                r"e.g. 'api\.example\.com' or '.*\.internal'"
            ) from None


def check_record_mode(value: object, where: str) -> None:
    if value and value not in RECORD_MODES:
        raise pytest.UsageError(
            f"{where}: unknown record mode {value!r}; valid: {', '.join(RECORD_MODES)}"
        )


def marker_options(item: pytest.Item) -> Options:
    kwargs: dict[str, Any] = {}
    # Closest marker wins: iter_markers yields the test's own marker before its class's.
    for marker in reversed(list(item.iter_markers("tapedeck"))):
        if marker.args:
            kwargs["cassette"] = marker.args[0]
        kwargs.update(marker.kwargs)
    unknown = set(kwargs) - set(MARKER_ARGUMENTS)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown tapedeck marker argument(s) {sorted(unknown)}; "
            f"valid: {', '.join(MARKER_ARGUMENTS)}"
        )
    check_record_mode(kwargs.get("record_mode"), f"{item.nodeid}: marker record_mode")
    cassette = kwargs.get("cassette")
    names = (cassette,) if isinstance(cassette, (str, os.PathLike)) else tuple(cassette or ())
    return Options(
        cassettes=tuple(str(name) for name in names),
        allow_unused=bool(kwargs.get("allow_unused", False)),
        allow_repeats=bool(kwargs.get("allow_repeats", False)),
        synthesize=bool(kwargs.get("synthesize", False)),
        record_mode=kwargs.get("record_mode"),
        faults=_faults(item, kwargs.get("faults", ())),
    )


def _faults(item: pytest.Item, given: object) -> tuple[str, ...]:
    """The marker's ``faults=[SPEC, ...]``, each readable, or a usage error saying why."""
    from mockserver.faults import FaultSpecError, parse

    specs = (given,) if isinstance(given, str) else given
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, str) for s in specs):
        raise pytest.UsageError(
            f"{item.nodeid}: marker faults wants a list of specs, got {given!r}"
        )
    for spec in specs:
        try:
            parse(spec)
        except FaultSpecError as exc:
            raise pytest.UsageError(f"{item.nodeid}: marker faults: {exc}") from None
    return tuple(specs)


def record_mode(config: pytest.Config, marker: str | None, default: str | None) -> str:
    """See the module's docstring: ``default`` is what ``--record-mode`` says."""
    chosen = (
        config.getoption("tapedeck_record_mode")
        or marker
        or default
        or config.getini("tapedeck_record_mode")
    )
    return str(chosen or "none")


def allowed_hosts(item: pytest.Item, *more: object) -> tuple[str, ...]:
    """The hosts a replaying test may reach: command line, ini, pytest-recording's
    ``--allowed-hosts`` and ``block_network(allowed_hosts=...)`` marker, and ``more``."""
    config = item.config
    marker = item.get_closest_marker("block_network")
    return split_hosts(
        [
            *config.getoption("tapedeck_allowed_hosts"),
            *config.getini("tapedeck_allowed_hosts"),
            config.getoption("allowed_hosts", None) or "",  # whichever plugin defined it
            (marker.kwargs.get("allowed_hosts") or "") if marker is not None else "",
            *more,
        ]
    )


def cassette_dir(item: pytest.Item | pytest.Collector) -> Path:
    """The cassette folder: the option (relative to the current directory), else the ini
    key (relative to the rootdir), else ``cassettes`` beside the test file."""
    config = item.config
    option: str | None = config.getoption("tapedeck_cassette_dir")
    if option:
        return (Path.cwd() / option).resolve()
    ini: str = config.getini("tapedeck_cassette_dir")
    if ini:
        return (config.rootpath / ini).resolve()
    return (item.path.parent / "cassettes").resolve()


def cassette_name(cls: type | None, name: str) -> str:
    """pytest-recording's default cassette name: ``<Class>.<test>`` (or ``<test>``), with
    the characters a file name cannot hold, ``<>?%*:|"'/\\``, replaced by ``-``."""
    found = f"{cls.__name__}.{name}" if cls is not None else name
    for char in FORBIDDEN:
        found = found.replace(char, "-")
    return found


def with_suffix(name: str) -> str:
    """``name.yaml``, shortened as pytest-recording does when too long for a file name:
    a prefix, ``...``, and the md5 of the whole name."""
    suffix = ".yaml"
    if name.endswith(suffix):
        return name
    if len(name) + len(suffix) > MAX_NAME:
        digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
        name = f"{name[: MAX_NAME - len(suffix) - len(digest) - 3]}...{digest}"
    return name + suffix


def default_cassette(item: pytest.Item) -> str:
    """pytest-recording's path, relative to the cassette folder:
    ``<module>/<Class>.<test>.yaml``."""
    return f"{item.path.stem}/{with_suffix(cassette_name(getattr(item, 'cls', None), item.name))}"


def resolve_cassette(folder: Path, name: str) -> Path:
    """The cassette's path, refusing any name that would leave the cassette folder or
    cannot be a file's (empty, ``.``, a NUL, too long for the filesystem)."""
    from mockserver.errors import UnsafeCassetteName
    from mockserver.storage import check_name

    check_name(Path(name), name)  # before resolving: a NUL would raise a bare ValueError
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise UnsafeCassetteName(
            f"cassette name {name!r} points outside the cassette folder {folder}; "
            "use a name relative to that folder (set --tapedeck-cassette-dir to move it)"
        )
    check_name(path, name)
    return path


def refuse_cassette(problem: Exception, named: bool, marker: str = "tapedeck") -> NoReturn:
    """The test errors at setup: which cassette name, from where, and why."""
    origin = (
        f"the cassette named by @pytest.mark.{marker}"
        if named
        else "the default cassette, named after the test (name one with "
        f"@pytest.mark.{marker}('name.yaml'))"
    )
    pytest.fail(f"tapedeck: {origin}: {problem}", pytrace=False)


def tapedeck_plan(item: pytest.Item) -> Plan:
    """The plan of a test that uses the ``tapedeck`` marker or fixture."""
    from mockserver.errors import UnsafeCassetteName

    options = marker_options(item)
    folder = cassette_dir(item)
    names = options.cassettes or (default_cassette(item),)
    try:
        paths = tuple(resolve_cassette(folder, name) for name in names)
    except UnsafeCassetteName as exc:
        refuse_cassette(exc, bool(options.cassettes))
    default = item.config.getoption(VCR_RECORD_MODE, None)
    return Plan(
        options=options,
        folder=folder,
        paths=paths,
        named=paths if options.cassettes else (),
        mode=record_mode(item.config, options.record_mode, default),
        allowed_hosts=allowed_hosts(item),
    )


def check_settings(config: pytest.Config) -> None:
    """Upstreams and allowed hosts, checked before any test runs: a usage error each."""
    hosts = split_hosts(
        [
            *config.getoption("tapedeck_allowed_hosts"),
            *config.getini("tapedeck_allowed_hosts"),
            config.getoption("allowed_hosts", None) or "",
        ]
    )
    try:
        check_patterns(hosts, "--tapedeck-allowed-hosts / tapedeck_allowed_hosts")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    pairs = [*config.getini("tapedeck_upstreams"), *config.getoption("tapedeck_upstreams")]
    if pairs:  # else nothing to check: the server's modules stay unimported
        check_upstreams(pairs)


def check_upstreams(pairs: Iterable[str]) -> None:
    """Each ``NAME=URL``: a name recording knows, an http(s) URL; a usage error naming the
    valid names otherwise (a misspelt name would record from the real provider)."""
    from urllib.parse import urlsplit

    from mockserver.dialects import DIALECTS, upstreams

    known = upstreams()
    valid = ", ".join(known)
    where = "--tapedeck-upstream / tapedeck_upstreams"
    for pair in pairs:
        name, sep, url = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise pytest.UsageError(
                f"{where}: {pair!r} is not NAME=URL; write e.g. openai=http://127.0.0.1:8080/v1 "
                f"(names: {valid})"
            )
        if name not in known:
            dialect = DIALECTS.get(name)
            hint = (
                f"; {name!r} is a dialect, whose requests record through the upstream "
                f"{' or '.join(repr(u.name) for u in dialect.upstreams)}"
                if dialect is not None and dialect.upstreams
                else ""
            )
            raise pytest.UsageError(
                f"{where}: unknown upstream {name!r} in {pair!r}{hint}; valid: {valid}"
            )
        if urlsplit(url.strip()).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise pytest.UsageError(
                f"{where}: {pair!r}: the URL must be http(s)://host[:port][/path], "
                f"e.g. {name}=http://127.0.0.1:8080"
            )
