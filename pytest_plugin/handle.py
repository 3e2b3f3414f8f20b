"""The handle a test gets from the ``tapedeck`` fixture, and the session's cassette cache.

Imported when pytest loads the plugin, so it imports nothing heavy: the server's modules
are named for type checking only, or imported inside the methods that need them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockserver.faults import FaultSpec
    from mockserver.index import Entry, Library
    from mockserver.model import Request
    from mockserver.player import Miss, Player
    from mockserver.server_thread import BackgroundServer


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

    def fault(self, spec: str) -> None:
        """Misbehave on the next request (the next N with ``times=N``): ``spec`` is
        ``KIND`` or ``KIND:key=value,...`` (README 'Faults'). A spec that cannot be read
        raises ``FaultSpecError`` here, before any request. The request log
        (``requests[i].fault``) says which request got it."""
        from mockserver.faults import parse

        self._server.state.faults.queue(parse(spec))

    @contextmanager
    def faults_replaced(self, *specs: str | FaultSpec) -> Iterator[None]:
        """Only ``specs`` (no fault at all when none) while the block runs, then the
        test's own faults again: for tools that judge a client one fault at a time
        (``assert_resilient``)."""
        from mockserver.faults import Faults, parse

        state = self._server.state
        standing = state.faults
        state.faults = Faults()
        for spec in specs:
            state.faults.queue(parse(spec) if isinstance(spec, str) else spec)
        try:
            yield
        finally:
            state.faults = standing

    def script(self, text: str | None = None, **fields: Any) -> None:
        """Queue the answer to the next request that matches no recording (synthesis).
        A scripted answer wins over recording: from now on nothing in this test is
        forwarded upstream (nor saved), whatever the record mode."""
        from mockserver.model import Script

        self._player.enable_synthesis()
        self._server.state.recorder = None
        self._server.state.scripts.append(Script(text=text, **fields))


class Libraries:
    """Loaded cassettes, kept for the session: a file is read once whatever the tests."""

    def __init__(self) -> None:
        self._cache: dict[tuple[tuple[str, float], ...], Library] = {}

    def get(self, paths: Sequence[Path]) -> Library:
        from mockserver.index import Library

        existing = [p for p in paths if p.exists()]
        key = tuple((str(p), p.stat().st_mtime) for p in existing)
        if key not in self._cache:
            self._cache[key] = Library.from_paths(existing)
        return self._cache[key]
