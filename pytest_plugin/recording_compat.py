"""A drop-in for pytest-recording users, active when pytest-recording itself is not
installed (or is turned off with ``-p no:recording``): its ``vcr`` marker (turning
Tapedeck on, with its cassette paths), ``--record-mode``, ``--block-network`` and
``--allowed-hosts``, its ``default_cassette`` and ``block_network`` markers, and the
fixtures its users override: ``vcr_config``, ``vcr_cassette_dir``,
``default_cassette_name``, ``record_mode``, and ``vcr`` (the test's Tapedeck handle).
When pytest-recording is installed it keeps all of these (the two cannot both own
``--record-mode``), Tapedeck keeps ``@pytest.mark.tapedeck``, and the report header says so.

Where it sits: the plugin asks it at start-up (options, markers, the header) and per test
(is it a ``vcr`` test? its ``Plan``). This module is also registered as a plugin, for its
fixtures, when active; so none of its functions may be named ``pytest_*``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_plugin.options import (
    RECORD_MODES,
    VCR_RECORD_MODE,
    Options,
    Plan,
    allowed_hosts,
    cassette_dir,
    cassette_name,
    check_record_mode,
    record_mode,
    refuse_cassette,
    resolve_cassette,
    with_suffix,
)

if TYPE_CHECKING:
    from pytest_plugin.handle import Tapedeck

PLUGIN_NAME = "recording"  # pytest-recording's entry point: what -p no:recording blocks
MARKERS = (
    "vcr(*cassettes, **config): pytest-recording's marker, played by Tapedeck: the default "
    "cassette (<module>/<Class>.<test>.yaml) plus these extra ones; see README 'Migrating "
    "from pytest-recording'",
    "default_cassette(name): the default cassette's name for a vcr test",
    "block_network(allowed_hosts=None): no network for this test, but for these hosts",
)
HEADER = (
    "tapedeck: pytest-recording is installed, so it plays @pytest.mark.vcr tests and owns "
    "--record-mode; Tapedeck plays @pytest.mark.tapedeck tests. To play vcr tests with "
    "Tapedeck, run with -p no:recording (or uninstall pytest-recording)."
)


def recording_installed(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-recording is (or will be) loaded. Asked while options are added,
    when its entry point may not be loaded yet: so whether it is installed, and not
    blocked with ``-p no:recording``."""
    if pluginmanager.has_plugin(PLUGIN_NAME) or pluginmanager.has_plugin("pytest_recording.plugin"):
        return True
    if pluginmanager.is_blocked(PLUGIN_NAME) or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return importlib.util.find_spec("pytest_recording") is not None


def add_options(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if recording_installed(pluginmanager):
        return
    group = parser.getgroup("recording", "pytest-recording compatible options (Tapedeck)")
    group.addoption(
        "--record-mode",
        dest=VCR_RECORD_MODE,
        default=None,
        choices=RECORD_MODES,
        help="the record mode of tests whose marker names none (pytest-recording's option; "
        "--tapedeck-record-mode overrides markers too)",
    )
    group.addoption(
        "--block-network",
        dest="block_network",
        action="store_true",
        default=False,
        help="no network in any test, but for recording ones (Tapedeck's tests always)",
    )
    group.addoption(
        "--allowed-hosts",
        dest="allowed_hosts",
        default=None,
        metavar="REGEX[,REGEX...]",
        help="hosts a test may reach when the network is blocked (as --tapedeck-allowed-hosts)",
    )


def active(config: pytest.Config) -> bool:
    """Whether Tapedeck plays pytest-recording's part in this run."""
    return hasattr(config.option, VCR_RECORD_MODE)


def configure(config: pytest.Config) -> None:
    if not active(config):
        return
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    import pytest_plugin.recording_compat as fixtures

    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "tapedeck-recording-compat")


def report_header(config: pytest.Config) -> list[str]:
    return [] if active(config) else [HEADER]


def uses_vcr(item: pytest.Item) -> bool:
    """A test that Tapedeck plays the pytest-recording way (``vcr``, not ``tapedeck``)."""
    return (
        active(item.config)
        and item.get_closest_marker("vcr") is not None
        and item.get_closest_marker("tapedeck") is None
    )


def check_markers(item: pytest.Item) -> None:
    """Usage errors found at collection: a vcr marker's record mode, block_network's
    arguments (pytest-recording checks the same)."""
    if not active(item.config):
        return
    for marker in item.iter_markers("vcr"):
        check_record_mode(marker.kwargs.get("record_mode"), f"{item.nodeid}: vcr record_mode")
    block = item.get_closest_marker("block_network")
    if block is not None and (block.args or set(block.kwargs) - {"allowed_hosts"}):
        raise pytest.UsageError(
            f"{item.nodeid}: block_network takes only allowed_hosts=[...]; got args "
            f"{block.args!r}, kwargs {block.kwargs!r}"
        )


def network_blocking(item: pytest.Item) -> contextlib.AbstractContextManager[object]:
    """pytest-recording's ``--block-network`` / ``block_network`` marker, for a test that
    does not use Tapedeck (which blocks the network of its replaying tests anyway)."""
    config = item.config
    wanted = item.get_closest_marker("block_network") is not None or config.getoption(
        "block_network", False
    )
    if not (active(config) and wanted):
        return contextlib.nullcontext()
    from pytest_plugin.network import NetworkGuard, while_blocked

    return NetworkGuard(allowed_hosts(item), (), while_blocked)


def _names(values: object) -> tuple[str, ...]:
    """vcrpy's filter lists: names, or (name, replacement) pairs."""
    if not isinstance(values, (list, tuple)):
        return ()
    return tuple(str(v[0] if isinstance(v, (list, tuple)) else v) for v in values)


def vcr_plan(request: pytest.FixtureRequest) -> Plan:
    """A vcr test's plan, as pytest-recording lays it out: the default cassette
    ``<vcr_cassette_dir>/<default_cassette_name>.yaml`` (the one recording writes), then
    each marker's extra cassettes (relative to ``vcr_cassette_dir``, or absolute; only
    read). Settings: ``vcr_config``, under the markers' keyword arguments (the test's own
    marker first)."""
    from mockserver.errors import UnsafeCassetteName
    from mockserver.storage import check_name

    item = request.node
    markers = list(item.iter_markers("vcr"))
    config: dict[str, Any] = dict(request.getfixturevalue("vcr_config") or {})
    for marker in reversed(markers):
        config.update(marker.kwargs)
    folder = Path(request.getfixturevalue("vcr_cassette_dir")).resolve()
    default = with_suffix(str(request.getfixturevalue("default_cassette_name")))
    try:
        target = resolve_cassette(folder, default)
        extras = [(folder / str(name)).resolve() for m in markers for name in m.args]
        for extra in extras:
            check_name(extra, str(extra))
    except UnsafeCassetteName as exc:
        refuse_cassette(exc, False, "vcr")
    paths = tuple(dict.fromkeys((target, *extras)))
    check_record_mode(
        config.get("record_mode"), f"{item.nodeid}: vcr_config / vcr marker record_mode"
    )
    options = Options(
        cassettes=tuple(str(p) for p in extras),
        # vcrpy never complains about recordings a test did not use.
        allow_unused=bool(config.get("allow_unused", True)),
        allow_repeats=bool(config.get("allow_repeats", config.get("allow_playback_repeats"))),
        synthesize=bool(config.get("synthesize", False)),
        record_mode=config.get("record_mode"),
    )
    return Plan(
        options=options,
        folder=folder,
        paths=paths,
        named=tuple(extras),
        mode=record_mode(item.config, options.record_mode, request.getfixturevalue("record_mode")),
        allowed_hosts=allowed_hosts(item, config.get("allowed_hosts") or ""),
        redact_headers=_names(config.get("filter_headers")),
        redact_query=_names(config.get("filter_query_parameters")),
        redact_body=_names(config.get("filter_post_data_parameters")),
    )


# pytest-recording's fixtures, with its defaults: a conftest.py that overrides them keeps
# working. Registered only when active.


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """Settings for every vcr test (pytest-recording's): Tapedeck reads ``record_mode``,
    ``allowed_hosts``, ``allow_playback_repeats``, ``filter_headers``,
    ``filter_query_parameters`` and ``filter_post_data_parameters`` (and its own
    ``allow_unused``, ``allow_repeats``, ``synthesize``); vcrpy's others have no effect."""
    return {}


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """A module's cassettes: ``<cassette folder>/<module name>`` (``cassettes/`` beside the
    test file unless ``--tapedeck-cassette-dir`` moves it)."""
    return str(cassette_dir(request.node) / request.node.path.stem)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """``<Class>.<test>`` with ``<>?%*:|"'/\\`` replaced by ``-``; or the name given by
    ``@pytest.mark.default_cassette(name)``."""
    marker = request.node.get_closest_marker("default_cassette")
    if marker is not None:
        if not marker.args:
            pytest.fail("default_cassette: give the cassette's name", pytrace=False)
        return str(marker.args[0])
    return cassette_name(request.cls, request.node.name)


@pytest.fixture(scope="session", name="record_mode")
def record_mode_fixture(request: pytest.FixtureRequest) -> str | None:
    """``--record-mode``: the default that markers and ``vcr_config`` override."""
    mode: str | None = request.config.getoption(VCR_RECORD_MODE)
    return mode


@pytest.fixture
def vcr(request: pytest.FixtureRequest) -> Tapedeck | None:
    """The Tapedeck handle of a vcr test (not a vcrpy Cassette); None for other tests."""
    if not uses_vcr(request.node):
        return None
    handle: Tapedeck = request.getfixturevalue("tapedeck")
    return handle
