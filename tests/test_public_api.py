"""The public API is exactly what ``mockserver.__all__`` says; changing it is deliberate."""

from __future__ import annotations

import mockserver

PUBLIC = [
    "DEFAULT_REDACTION",
    "DIALECTS",
    "RECORD_MODES",
    "BackgroundServer",
    "CassetteFormatError",
    "CassetteNotFoundError",
    "Dialect",
    "Entry",
    "Event",
    "Exchange",
    "Framing",
    "Library",
    "Miss",
    "NoMatchingExchange",
    "Player",
    "Profile",
    "Recorder",
    "Redaction",
    "Request",
    "Response",
    "Route",
    "Script",
    "ServerState",
    "TapedeckError",
    "Timing",
    "ToolCall",
    "UnsafeCassetteName",
    "Violation",
    "dump",
    "dumps",
    "lint_exchange",
    "lint_file",
    "load",
    "loads",
    "make_app",
    "redact",
    "resolve",
    "sdk_environment",
    "validate",
]


def test_all_is_pinned() -> None:
    assert mockserver.__all__ == PUBLIC


def test_every_public_name_exists() -> None:
    for name in mockserver.__all__:
        assert getattr(mockserver, name) is not None, name


def test_every_dialect_module_is_registered() -> None:
    from pathlib import Path

    folder = Path(mockserver.__file__).parent / "dialects"
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(mockserver.DIALECTS)
