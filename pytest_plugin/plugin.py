"""The ``tapedeck`` pytest plugin: a replay server per session, a handle per test.

Loaded through the ``pytest11`` entry point, so importing this module must stay cheap:
only pytest here; the server (aiohttp, YAML) is imported when a fixture first runs.

Precedence for every setting: command line, then the test's marker, then the ini file;
record modes have one more step (``options``). The marker alone turns Tapedeck on for a
test, and a test that records nothing cannot reach the network (``network``).
pytest-recording's marker and options work too when it is not installed
(``recording_compat``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_plugin import recording_compat
from pytest_plugin.handle import Libraries, Tapedeck
from pytest_plugin.options import (
    RECORD_MODES,
    Options,
    check_record_mode,
    check_settings,
    marker_options,
    refuse_cassette,
    tapedeck_plan,
)

if TYPE_CHECKING:
    from mockserver.faults import Faults
    from mockserver.player import Player
    from mockserver.recorder import Recorder
    from mockserver.redaction import Redaction
    from mockserver.server_thread import BackgroundServer
    from pytest_plugin.properties import StreamServer

MARKER = (
    "tapedeck(cassette=None, *, allow_unused=False, allow_repeats=False, synthesize=False, "
    "record_mode=None, faults=()): replay (or record) these cassettes, named relative to the "
    "cassette folder, for this test (faults: README 'Faults'); see README 'The pytest plugin'"
)
__all__ = ["RECORD_MODES"]  # re-exported: a test checks it against the recorder's
CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("tapedeck", "Tapedeck LLM record/replay")
    group.addoption(
        "--tapedeck-allowed-hosts",
        dest="tapedeck_allowed_hosts",
        action="append",
        default=[],
        metavar="REGEX[,REGEX...]",
        help="hosts a replaying test may still reach (regular expressions, matched against "
        "the whole host name or address; repeatable). Every other connection fails the test",
    )
    parser.addini(
        "tapedeck_allowed_hosts", "hosts a replaying test may reach (regexes)", "linelist"
    )
    recording_compat.add_options(parser, pluginmanager)
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
    group.addoption(
        "--tapedeck-port",
        dest="tapedeck_port",
        default=None,
        metavar="PORT",
        help="port of the replay server (default 0: any free port; xdist worker gwN "
        "takes PORT + N)",
    )
    parser.addini("tapedeck_port", "port of the replay server (0: any free port)", default="")
    group.addoption(
        "--tapedeck-limit",
        dest="tapedeck_limits",
        action="append",
        default=[],
        metavar="NAME=N",
        help="bound synthesized answers, as 'tapedeck serve --limit' (repeatable)",
    )
    parser.addini("tapedeck_limits", "NAME=N lines: synthesis limits", "linelist")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    for value in (config.getoption("tapedeck_record_mode"), config.getini("tapedeck_record_mode")):
        check_record_mode(value, "--tapedeck-record-mode / tapedeck_record_mode")
    check_settings(config)  # upstreams and allowed hosts: usage errors before any test runs
    recording_compat.configure(config)
    server_port(config)  # a bad port is a usage error before any test runs
    synthesis_limits(config)  # so is a bad limit


def server_port(config: pytest.Config) -> int:
    """The replay server's port: the option, else the ini key, else 0 (any free port).
    Under pytest-xdist each worker runs a server of its own: worker gwN takes PORT + N."""
    value = config.getoption("tapedeck_port") or config.getini("tapedeck_port") or "0"
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise pytest.UsageError(
            f"--tapedeck-port / tapedeck_port: expected a port from 0 to 65535 (0: any free "
            f"port), found {value!r}"
        )
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    if port and worker.startswith("gw") and worker[2:].isdigit():
        port += int(worker[2:])
        if port > 65535:
            raise pytest.UsageError(
                f"--tapedeck-port / tapedeck_port: xdist worker {worker} would take port "
                f"{port}, above 65535; choose a lower port"
            )
    return port


def synthesis_limits(config: pytest.Config) -> dict[str, int]:
    """The synthesis limits the ini file and the command line change (the latter wins)."""
    specs = [*config.getini("tapedeck_limits"), *config.getoption("tapedeck_limits")]
    if not specs:
        return {}  # nothing to check: the server's modules stay unimported
    from mockserver.dialects import SynthesisLimits

    try:
        return dict(SynthesisLimits.parse(specs))
    except ValueError as exc:
        raise pytest.UsageError(f"--tapedeck-limit / tapedeck_limits: {exc}") from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    return recording_compat.report_header(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A misspelt marker argument is a usage error, found before any test runs.
    for item in items:
        if item.get_closest_marker("tapedeck") is not None:
            marker_options(item)
        recording_compat.check_markers(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def tapedeck_server(pytestconfig: pytest.Config) -> Iterator[BackgroundServer]:
    """The session's replay server on 127.0.0.1 (one per pytest-xdist worker), on
    ``--tapedeck-port`` / ``tapedeck_port`` when set."""
    from mockserver.dialects import SynthesisLimits
    from mockserver.server_thread import BackgroundServer, cannot_listen

    port = server_port(pytestconfig)
    server = BackgroundServer(port=port)
    server.state.synthesis_limits = SynthesisLimits(synthesis_limits(pytestconfig))
    try:
        server.start()
    except OSError as exc:
        problem = cannot_listen(exc, "127.0.0.1", port, "--tapedeck-port")
        pytest.fail(f"tapedeck: the replay server {problem}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


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


@pytest.fixture(autouse=True)
def _tapedeck_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """The marker alone turns Tapedeck on, as pytest-recording's ``vcr`` does: a marked
    test that does not ask for the fixture must not call the real API unnoticed."""
    item = request.node
    if item.get_closest_marker("tapedeck") is not None or recording_compat.uses_vcr(item):
        request.getfixturevalue("tapedeck")
        yield
    else:
        with recording_compat.network_blocking(item):  # --block-network
            yield


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
    from mockserver.errors import UnsafeCassetteName
    from mockserver.index import Library
    from mockserver.player import Player
    from mockserver.recorder import Recorder, parse_upstreams
    from pytest_plugin.network import NetworkGuard, while_replaying

    item = request.node
    vcr = recording_compat.uses_vcr(item)
    plan = recording_compat.vcr_plan(request) if vcr else tapedeck_plan(item)
    options, folder, paths, mode = plan.options, plan.folder, list(plan.paths), plan.mode
    tapedeck_redaction = plan.redaction(tapedeck_redaction)
    recorder: Recorder | None = None
    # A synthesized answer wins over recording: such a test never reaches an upstream.
    if mode != "none" and not options.synthesize:
        upstreams = item.config.getini("tapedeck_upstreams") + item.config.getoption(
            "tapedeck_upstreams"
        )
        try:
            recorder = Recorder(
                mode, paths[0], parse_upstreams(upstreams), tapedeck_redaction, root=folder
            )
        except UnsafeCassetteName as exc:  # a folder by that name, say
            refuse_cassette(exc, bool(options.cassettes) and not vcr, "vcr" if vcr else "tapedeck")
        except ValueError as exc:
            raise pytest.UsageError(f"tapedeck: {exc}") from None
        if recorder.mode == "none":
            recorder = None  # `once`, and the cassette exists: replay it
    missing = [p for p in plan.named if not p.exists()]
    if missing and recorder is None:
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
    tapedeck_server.state.faults = _standing_faults(options.faults)
    for name, value in sdk_environment(tapedeck_server.url).items():
        monkeypatch.setenv(name, value)
    guard = NetworkGuard(
        plan.allowed_hosts, _ports(request, tapedeck_server), while_replaying(tapedeck_server.url)
    )
    # Only while nothing records: recording forwards from this process, on the server's thread.
    with guard if recorder is None else contextlib.nullcontext():
        yield Tapedeck(tapedeck_server, player, paths)
    # Requests that arrive after the test (a leaked client) must not touch its cassettes.
    tapedeck_server.state.use(Player(Library(()), log=0))
    _check_teardown(item, player, options, paths, recorder, guard.report())


def _standing_faults(specs: tuple[str, ...]) -> Faults:
    """The marker's faults, for every request of the test (checked at collection)."""
    from mockserver.faults import Faults, parse_all

    return Faults(standing=parse_all(specs))


def _ports(request: pytest.FixtureRequest, server: BackgroundServer) -> set[int]:
    """The loopback ports a replaying test may reach: the Tapedeck server's, and the
    stream server's when the test uses it."""
    servers = [server.url]
    if "tapedeck_stream" in request.fixturenames:
        servers.append(request.getfixturevalue("tapedeck_stream").url)
    return {int(url.rpartition(":")[2]) for url in servers}


def _check_teardown(
    item: pytest.Item,
    player: Player,
    options: Options,
    paths: list[Path],
    recorder: Recorder | None,
    blocked: str = "",
) -> None:
    problems: list[str] = [blocked] if blocked else []
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
