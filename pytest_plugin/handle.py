"""The handle a test gets from the ``tapedeck`` fixture, and the session's cassette cache.

Imported when pytest loads the plugin, so it imports nothing heavy: the server's modules
are named for type checking only, or imported inside the methods that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockserver.library import Entry, Library, Miss, Player
    from mockserver.model import Request
    from mockserver.runner import BackgroundServer


class Tapedeck:
    """The handle a test gets from the ``tapedeck`` fixture."""

    def __init__(self, server: BackgroundServer, player: Player, cassettes: Sequence[Path]):
        self._server = server
        self._player = player
        self.cassettes = tuple(cassettes)

    @property
    def url(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT``."""
        return self._server.url

    def base_url(self, dialect: str | None = None) -> str:
        """The base URL to give the SDK of a dialect (OpenAI chat when none is named:
        ``.../v1``). An unknown name raises ``UnknownDialectError`` listing the known ones."""
        from mockserver.dialects import DEFAULT_DIALECT
        from mockserver.dialects import dialect as get_dialect

        return self.url + get_dialect(dialect or DEFAULT_DIALECT).base_path

    @property
    def requests(self) -> list[Request]:
        """Every request the server received during this test, in order."""
        return list(self._player.requests)

    @property
    def misses(self) -> list[Miss]:
        return list(self._player.misses)

    def unplayed(self) -> list[Entry]:
        return self._player.unplayed()

    def script(self, text: str | None = None, **fields: Any) -> None:
        """Queue the answer to the next request that matches no recording (synthesis)."""
        from mockserver.model import Script

        self._player.synthesize = True
        self._server.state.scripts.append(Script(text=text, **fields))


class Libraries:
    """Loaded cassettes, kept for the session: a file is read once whatever the tests."""

    def __init__(self) -> None:
        self._cache: dict[tuple[tuple[str, float], ...], Library] = {}

    def get(self, paths: Sequence[Path]) -> Library:
        from mockserver.library import Library

        existing = [p for p in paths if p.exists()]
        key = tuple((str(p), p.stat().st_mtime) for p in existing)
        if key not in self._cache:
            self._cache[key] = Library.from_paths(existing)
        return self._cache[key]
