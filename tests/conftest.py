"""Shared test setup: the real-world corpus, hypothesis profiles, pytester, our plugin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "pytest_plugin.plugin"]

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent


def corpus_root() -> Path:
    """The real-world corpus: $TAPEDECK_CORPUS, else ../shared/corpus beside the checkout."""
    configured = os.environ.get("TAPEDECK_CORPUS")
    path = Path(configured) if configured else ROOT.parent / "shared" / "corpus"
    if not path.is_dir():
        raise RuntimeError(
            f"the corpus folder {path} is missing: set TAPEDECK_CORPUS to the folder holding "
            "the real-world cassettes (shared/corpus)"
        )
    return path


def corpus_files() -> list[Path]:
    return sorted(corpus_root().rglob("*.yaml"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_root()
