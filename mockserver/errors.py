"""Tapedeck's exceptions. Each message says what happened, shows the evidence, and names
the way out.

    TapedeckError
    ├── CassetteFormatError (ValueError)      a cassette file that cannot be read:
    │                                         file, interaction index, what was expected
    ├── CassetteNotFoundError (FileNotFoundError)
    ├── UnsafeCassetteName (ValueError)       a name that would escape the cassette folder
    ├── UnknownDialectError (KeyError, ValueError)  a dialect name nobody registered:
    │                                         the known ones
    ├── RecordingError                        a request the recorder cannot forward
    ├── ConformanceError                      a proxy check that cannot run (proxy down...)
    └── NoMatchingExchange (AssertionError)   a request that no recording answers:
                                              the nearest recordings and what differed

Bad HTTP input (malformed JSON, unknown routes, oversized bodies) is not an exception
here: the server answers it at once in the provider's error shape (app.py).
"""

from __future__ import annotations


class TapedeckError(Exception):
    """Base of every error Tapedeck raises on purpose."""


class CassetteFormatError(TapedeckError, ValueError):
    def __init__(self, path: str, index: int | None, problem: str) -> None:
        where = path if index is None else f"{path}, interaction {index}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.index = index
        self.problem = problem


class CassetteNotFoundError(TapedeckError, FileNotFoundError):
    pass


class UnsafeCassetteName(TapedeckError, ValueError):
    pass


class NoMatchingExchange(TapedeckError, AssertionError):
    pass


class UnknownDialectError(TapedeckError, KeyError, ValueError):
    """A dialect name that is not registered; the message lists the registered ones. A
    KeyError (a look-up in the registry) and a ValueError (a bad argument): callers that
    caught either before every look-up went through the registry still catch it."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:  # KeyError would show the repr of the key alone
        return f"unknown dialect {self.name!r}; known dialects: {', '.join(self.known)}"


class RecordingError(TapedeckError):
    """The recorder cannot forward this request (no upstream configured for it)."""


class ConformanceError(TapedeckError):
    """A conformance check that cannot run: the proxy is down, refuses, or misbehaves
    before any scenario could be judged."""
