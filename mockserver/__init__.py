"""Tapedeck: record/replay testing toolkit and mock server for LLM provider APIs.

The public API is exactly ``__all__`` (a test pins it): the server, cassettes, the dialect
registry, the values a user builds or reads, validation, conformance, recording and the
exception tree. Everything else (the index's entries, the player, the app's state, the
framings) is internal: importable from its module, but free to change.
"""

from mockserver.app import make_app
from mockserver.cassettes import dump, dumps, load, loads
from mockserver.conformance import Report, run_conformance
from mockserver.dialects import DIALECTS, dialect, resolve, sdk_environment
from mockserver.dialects.contract import Dialect
from mockserver.errors import (
    CassetteFormatError,
    CassetteNotFoundError,
    ConformanceError,
    NoMatchingExchange,
    RecordingError,
    TapedeckError,
    UnknownDialectError,
    UnsafeCassetteName,
)
from mockserver.index import Library
from mockserver.model import (
    Event,
    Exchange,
    Request,
    Response,
    Script,
    ToolCall,
    Violation,
)
from mockserver.recorder import RECORD_MODES, Recorder
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact
from mockserver.server_thread import BackgroundServer
from mockserver.timing import Profile
from mockserver.validation import lint_file, validate

__all__ = [
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
