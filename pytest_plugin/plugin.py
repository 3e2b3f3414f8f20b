"""The ``tapedeck`` pytest plugin: a replay server per session, a handle per test.

Loaded through the ``pytest11`` entry point, so importing this module must stay cheap:
only pytest here; the server (aiohttp, YAML) is imported when a fixture first runs.

Precedence for every setting: command line, then the test's marker, then the ini file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_plugin.handle import Libraries, Tapedeck

if TYPE_CHECKING:
    from mockserver.library import Player
    from mockserver.recorder import Recorder
    from mockserver.redaction import Redaction
    from mockserver.runner import BackgroundServer
    from pytest_plugin.properties import StreamServer

MARKER = (
    "tapedeck(cassette=None, *, allow_unused=False, allow_repeats=False, synthesize=False, "
    "record_mode=None): replay (or record) these cassettes, named relative to the cassette "
    "folder, for this test; see README 'The pytest plugin'"
)
# The same tuple as mockserver.recorder.RECORD_MODES (a test checks): importing that module
# here would load aiohttp with the plugin.
RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
MARKER_ARGUMENTS = ("cassette", "allow_unused", "allow_repeats", "synthesize", "record_mode")
CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tapedeck", "Tapedeck LLM record/replay")
    group.addoption(
        "--tapedeck-cassette-dir",
        dest="tapedeck_cassette_dir",
        default=None,
        help="folder of the cassettes (default: 'cassettes' beside each test file)",
    )
    parser.addini(
        "tapedeck_cassette_dir",
        "folder of the cassettes, relative to the rootdir",
        default="",
    )
    group.addoption(
        "--tapedeck-record-mode",
        dest="tapedeck_record_mode",
        default=None,
        help="none (default: never touch the network), once, new_episodes, all, rewrite",
    )
    parser.addini(
        "tapedeck_record_mode",
        "record mode when neither command line nor marker gives one",
        default="",
    )
    group.addoption(
        "--tapedeck-upstream",
        dest="tapedeck_upstreams",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="where recording forwards a provider's requests (repeatable)",
    )
    parser.addini("tapedeck_upstreams", "NAME=URL lines: where recording forwards", "linelist")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    for value in (config.getoption("tapedeck_record_mode"), config.getini("tapedeck_record_mode")):
        _check_record_mode(value, "--tapedeck-record-mode / tapedeck_record_mode")


def _check_record_mode(value: object, where: str) -> None:
    if value and value not in RECORD_MODES:
        raise pytest.UsageError(
            f"{where}: unknown record mode {value!r}; valid: {', '.join(RECORD_MODES)}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A misspelt marker argument is a usage error, found before any test runs.
    for item in items:
        if item.get_closest_marker("tapedeck") is not None:
            _options(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@dataclass(frozen=True)
class Options:
    cassettes: tuple[str, ...]
    allow_unused: bool
    allow_repeats: bool
    synthesize: bool
    record_mode: str | None


def _options(item: pytest.Item) -> Options:
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
    _check_record_mode(kwargs.get("record_mode"), f"{item.nodeid}: marker record_mode")
    cassette = kwargs.get("cassette")
    names = (cassette,) if isinstance(cassette, (str, os.PathLike)) else tuple(cassette or ())
    return Options(
        cassettes=tuple(str(name) for name in names),
        allow_unused=bool(kwargs.get("allow_unused", False)),
        allow_repeats=bool(kwargs.get("allow_repeats", False)),
        synthesize=bool(kwargs.get("synthesize", False)),
        record_mode=kwargs.get("record_mode"),
    )


def record_mode(item: pytest.Item, options: Options) -> str:
    """Command line, then marker, then ini, then ``none``."""
    config = item.config
    chosen = (
        config.getoption("tapedeck_record_mode")
        or options.record_mode
        or config.getini("tapedeck_record_mode")
    )
    return str(chosen or "none")


def cassette_dir(item: pytest.Item) -> Path:
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


def default_cassette(item: pytest.Item) -> str:
    """pytest-recording's convention: ``<module>/<test name>.yaml``."""
    name = item.name.replace("/", "-")
    return f"{item.path.stem}/{name}.yaml"


def resolve_cassette(folder: Path, name: str) -> Path:
    """The cassette's path, refusing any name that would leave the cassette folder."""
    from mockserver.errors import UnsafeCassetteName

    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise UnsafeCassetteName(
            f"cassette name {name!r} points outside the cassette folder {folder}; "
            "use a name relative to that folder (set --tapedeck-cassette-dir to move it)"
        )
    return path


@pytest.fixture(scope="session")
def tapedeck_server() -> Iterator[BackgroundServer]:
    """The session's replay server on 127.0.0.1 (one per pytest-xdist worker)."""
    from mockserver.runner import BackgroundServer

    with BackgroundServer() as server:
        yield server


@pytest.fixture(scope="session")
def _tapedeck_libraries() -> Libraries:
    return Libraries()


@pytest.fixture(scope="session")
def tapedeck_stream() -> Iterator[StreamServer]:
    """A server answering each request with the next queued stream (generated ones from
    ``pytest_plugin.strategies``): ``with tapedeck_stream.serving(stream) as base_url``.
    Session-scoped, so hypothesis tests can use it; see README 'Property tests'."""
    from pytest_plugin.properties import StreamServer

    with StreamServer() as server:
        yield server


@pytest.fixture
def tapedeck_redaction() -> Redaction:
    """What recording removes before writing. Override it in a conftest.py to add
    headers, query parameters, body fields or custom filters::

        @pytest.fixture
        def tapedeck_redaction():
            from mockserver import DEFAULT_REDACTION
            return DEFAULT_REDACTION.extend(headers=["x-my-token"], body_fields=["user"])
    """
    from mockserver.redaction import DEFAULT_REDACTION

    return DEFAULT_REDACTION


@pytest.fixture
def tapedeck(
    request: pytest.FixtureRequest,
    tapedeck_server: BackgroundServer,
    _tapedeck_libraries: Libraries,
    tapedeck_redaction: Redaction,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Tapedeck]:
    """Replays (or records) the test's cassettes; points the SDKs at the server."""
    from mockserver.dialects import sdk_environment
    from mockserver.library import Library, Player
    from mockserver.recorder import Recorder, parse_upstreams

    item = request.node
    options = _options(item)
    folder = cassette_dir(item)
    names = options.cassettes or (default_cassette(item),)
    paths = [resolve_cassette(folder, name) for name in names]
    recorder: Recorder | None = None
    mode = record_mode(item, options)
    if mode != "none":
        upstreams = item.config.getini("tapedeck_upstreams") + item.config.getoption(
            "tapedeck_upstreams"
        )
        try:
            recorder = Recorder(mode, paths[0], parse_upstreams(upstreams), tapedeck_redaction)
        except ValueError as exc:
            raise pytest.UsageError(f"tapedeck: {exc}") from None
        if recorder.mode == "none":
            recorder = None  # `once`, and the cassette exists: replay it
    missing = [p for p in paths if not p.exists()]
    if missing and options.cassettes and recorder is None:
        pytest.fail(
            "tapedeck: cassette not found: "
            + ", ".join(str(p) for p in missing)
            + f"\nNames are relative to the cassette folder {folder} "
            "(set --tapedeck-cassette-dir or the tapedeck_cassette_dir ini key to move it).",
            pytrace=False,
        )
    # all and rewrite answer every request from upstream: old recordings are not replayed.
    replayed = recorder is None or not recorder.records_everything
    player = Player(
        _tapedeck_libraries.get(paths) if replayed else Library(()),
        allow_repeats=options.allow_repeats,
        synthesize=options.synthesize,
    )
    tapedeck_server.state.use(player, recorder)
    for name, value in sdk_environment(tapedeck_server.url).items():
        monkeypatch.setenv(name, value)
    yield Tapedeck(tapedeck_server, player, paths)
    # Requests that arrive after the test (a leaked client) must not touch its cassettes.
    tapedeck_server.state.use(Player(Library(())))
    _check_teardown(item, player, options, paths, recorder)


def _check_teardown(
    item: pytest.Item,
    player: Player,
    options: Options,
    paths: list[Path],
    recorder: Recorder | None,
) -> None:
    problems: list[str] = []
    if recorder is not None and recorder.failures:
        problems.append(f"{len(recorder.failures)} recording(s) failed:")
        problems.extend(f"  {failure}" for failure in recorder.failures)
    if player.misses:
        problems.append(f"{len(player.misses)} request(s) matched no recording:")
        for number, miss in enumerate(player.misses, 1):
            problems.append(f"--- request {number} ---\n{miss.explanation}")
    if not options.allow_unused and not item.stash.get(CALL_FAILED, False):
        unplayed = player.unplayed()
        if unplayed:
            problems.append(f"{len(unplayed)} recorded interaction(s) were never requested:")
            problems.extend(
                f"  {entry.source}  {entry.exchange.request.summary()}" for entry in unplayed
            )
            problems.append(
                "Way out: make the test send them, remove them from the cassette, or mark the "
                "test @pytest.mark.tapedeck(allow_unused=True)."
            )
    if problems:
        cassettes = ", ".join(str(p) for p in paths)
        pytest.fail(f"tapedeck ({cassettes}):\n" + "\n".join(problems), pytrace=False)
