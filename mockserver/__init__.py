"""Tapedeck: record/replay testing toolkit and mock server for LLM provider APIs.

The public API is exactly ``__all__`` (a test pins it). Everything else is internal.
"""

from mockserver.app import ServerState, make_app
from mockserver.cassettes import dump, dumps, load, loads
from mockserver.checks import lint_exchange, lint_file, validate
from mockserver.dialects import DIALECTS, resolve, sdk_environment
from mockserver.dialects.contract import Dialect, Route
from mockserver.errors import (
    CassetteFormatError,
    CassetteNotFoundError,
    NoMatchingExchange,
    TapedeckError,
    UnsafeCassetteName,
)
from mockserver.library import Entry, Library, Miss, Player
from mockserver.model import (
    Event,
    Exchange,
    Framing,
    Request,
    Response,
    Script,
    Timing,
    ToolCall,
    Violation,
)
from mockserver.recorder import RECORD_MODES, Recorder
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact
from mockserver.runner import BackgroundServer
from mockserver.timing import Profile

__all__ = [
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
