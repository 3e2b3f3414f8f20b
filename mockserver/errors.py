"""Tapedeck's exceptions. Each message says what happened, shows the evidence, and names
the way out.

    TapedeckError
    ├── CassetteFormatError (ValueError)      a cassette file that cannot be read:
    │                                         file, interaction index, what was expected
    ├── CassetteNotFoundError (FileNotFoundError)
    ├── UnsafeCassetteName (ValueError)       a name that would escape the cassette folder
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
