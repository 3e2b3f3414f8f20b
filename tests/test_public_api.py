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
    "ConformanceError",
    "Dialect",
    "Event",
    "Exchange",
    "Library",
    "NoMatchingExchange",
    "Profile",
    "Recorder",
    "RecordingError",
    "Redaction",
    "Report",
    "Request",
    "Response",
    "Script",
    "TapedeckError",
    "ToolCall",
    "UnknownDialectError",
    "UnsafeCassetteName",
    "Violation",
    "dialect",
    "dump",
    "dumps",
    "lint_file",
    "load",
    "loads",
    "make_app",
    "redact",
    "resolve",
    "run_conformance",
    "sdk_environment",
    "validate",
]


def test_all_is_pinned() -> None:
    assert mockserver.__all__ == PUBLIC


def test_every_public_name_exists() -> None:
    for name in mockserver.__all__:
        assert getattr(mockserver, name) is not None, name


def test_the_whole_exception_tree_is_public() -> None:
    from mockserver import errors

    tree = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.TapedeckError)
    }
    assert len(tree) >= 8 and tree <= set(mockserver.__all__)


def test_every_dialect_folder_is_registered() -> None:
    import importlib
    from pathlib import Path

    folder = Path(mockserver.__file__).parent / "dialects"
    packages = {p.parent.name for p in folder.glob("*/__init__.py")} - {"_kit"}
    registered = {
        d.name
        for name in packages
        for d in vars(importlib.import_module(f"mockserver.dialects.{name}")).values()
        if isinstance(d, mockserver.Dialect)
    }
    assert packages and registered == set(mockserver.DIALECTS)
