"""Shared test setup: the real-world corpus, hypothesis profiles, pytester, our plugin.

The corpus (third-party recordings) lives outside the repository. Tests that read it carry
the ``corpus`` marker (or use the ``corpus`` fixture); without the corpus they are skipped,
and the run says so once, in one line at the end, with how to run them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "pytest_plugin.plugin"]

# dev: a quick local run. ci: more examples for what CI guards. Both keep the suite within
# a couple of minutes on two cores (tests that draw a lot set their own budget).
# dev (the default): a quick local loop. ci (.ci/run): hypothesis's own default of 100, so
# CI digs twice as deep. Each keeps `pytest -n auto` within two minutes on two cores; tests
# that draw much per example (a stream per mutation...) set their own share of it.
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent

CORPUS_HINT = "set TAPEDECK_CORPUS to the folder of the real-world cassettes (shared/corpus)"
NO_CORPUS = "skipped (no corpus)"
"""The report category of the tests skipped for want of the corpus (one summary line)."""


def corpus_root() -> Path:
    """The real-world corpus: $TAPEDECK_CORPUS, else ../shared/corpus beside the checkout.
    The folder may be missing (``has_corpus``): the tests reading it are then skipped."""
    configured = os.environ.get("TAPEDECK_CORPUS")
    return Path(configured) if configured else ROOT.parent / "shared" / "corpus"


def has_corpus() -> bool:
    return corpus_root().is_dir()


def corpus_files() -> list[Path]:
    """Every cassette of the corpus; none without it (parametrized tests then collect as
    one skipped item)."""
    return sorted(corpus_root().rglob("*.yaml")) if has_corpus() else []


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_root()


TEST_CACHE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if "TAPEDECK_CACHE_DIR" not in os.environ:
        # The servers the suite starts keep their index cache in a folder of the run's
        # own (xdist workers inherit it), never in the user's (README 'Index cache').
        folder = Path(tempfile.mkdtemp(prefix="tapedeck-test-cache-"))
        os.environ["TAPEDECK_CACHE_DIR"] = str(folder)
        config.stash[TEST_CACHE] = folder
    configured = os.environ.get("TAPEDECK_CORPUS")
    if configured and not has_corpus():
        # Asked for by name: a typo must not turn into a green run that tested nothing.
        raise pytest.UsageError(
            f"TAPEDECK_CORPUS={configured} is not a folder: point it at the folder of the "
            "real-world cassettes (shared/corpus), or unset it to skip the corpus tests"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(TEST_CACHE, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("TAPEDECK_CACHE_DIR", None)


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"tapedeck corpus: {corpus_root()}" if has_corpus() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_corpus():
        return
    skip = pytest.mark.skip(reason=f"needs the real-world corpus: {CORPUS_HINT}")
    for item in items:
        if "corpus" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.corpus)
        if item.get_closest_marker("corpus") is not None:
            item.add_marker(skip)


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    # A category of their own keeps them out of -ra's list (one line per test function);
    # this runs where reports are shown (the xdist controller), hence the keyword.
    if report.skipped and "corpus" in report.keywords and not has_corpus():
        return NO_CORPUS, "s", "SKIPPED (no corpus)"
    return None


def skipped(config: pytest.Config) -> int:
    """How many tests were skipped, for want of the corpus or otherwise (where reported)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    return sum(1 for key in ("skipped", NO_CORPUS) for r in stats.get(key, []) if r.skipped)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # .ci/run sets TAPEDECK_NO_SKIPS: with the corpus and every extra installed, a skip
    # there means a test that silently stopped running.
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller tallies every worker's reports
    if os.environ.get("TAPEDECK_NO_SKIPS") and exitstatus == 0 and skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    missing = len(terminalreporter.stats.get(NO_CORPUS, []))
    if missing:
        terminalreporter.write_line(
            f"{missing} tests skipped without the real-world corpus: to run them, {CORPUS_HINT}",
            yellow=True,
        )
    if os.environ.get("TAPEDECK_NO_SKIPS") and skipped(terminalreporter.config):
        terminalreporter.write_line(
            f"TAPEDECK_NO_SKIPS is set and {skipped(terminalreporter.config)} tests were "
            "skipped (see above why): the run fails",
            red=True,
        )
