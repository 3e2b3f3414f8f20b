"""Ready-made stream properties, and a server that feeds generated streams to a client.

Point a property at a stream (bytes, decoded events, or a generated ``Stream``) or at any
base URL (``fetch_stream``); each raises AssertionError listing every violation, one per
line, with its rule id. ``StreamServer`` (the plugin's ``tapedeck_stream`` fixture) serves
the next queued stream to whoever asks, so a client or a proxy can be property-tested::

    @given(stream=streams("openai_chat", include_usage=True))
    def test_client_counts_usage(tapedeck_stream, stream):
        with tapedeck_stream.serving(stream) as base_url:
            reply = my_client(base_url).ask("hi")
        assert reply.text == stream.script.text

This module imports no hypothesis; the server parts import aiohttp only when started.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from mockserver.checks import validate
from mockserver.dialects import DEFAULT_DIALECT, DIALECTS, RouteMatch
from mockserver.dialects.contract import Dialect
from mockserver.errors import NoMatchingExchange
from mockserver.library import Entry, Library, Player, chunked, prepare
from mockserver.model import Event, Exchange, Headers, Request, Response, Violation

if TYPE_CHECKING:
    from mockserver.runner import BackgroundServer

ORDERING = frozenset(
    {
        "role-not-first",
        "content-after-finish",
        "text-after-finish",
        "finish-reason-repeated",
        "finish-reason-missing",
        "usage-chunk-not-last",
        "event-after-error",
        "tool-call-start-incomplete",
        "tool-call-header-repeated",
    }
)
"""OpenAI chunk order: role first, content, one finish per choice, the usage chunk after
every finish; after an error, nothing."""
TERMINATION = frozenset({"done-missing", "data-after-done"})
"""OpenAI termination: exactly one ``data: [DONE]``, last."""
USAGE_CHUNK = frozenset(
    {
        "usage-chunk-missing",
        "usage-chunk-duplicate",
        "usage-chunk-not-last",
        "usage-on-choices-chunk",
        "usage-null-missing",
        "usage-unrequested",
        "usage-arithmetic",
    }
)
"""OpenAI's include_usage contract: one chunk with ``choices: []`` and the usage, after
every finish, ``usage: null`` on every other chunk, none unless asked, numbers that add up."""


class _Generated(Protocol):
    """A generated stream (``pytest_plugin.strategies.Stream``), read-only."""

    @property
    def dialect(self) -> str: ...

    @property
    def request(self) -> Request: ...

    @property
    def body(self) -> bytes: ...


StreamLike = bytes | Sequence[Event] | _Generated


def violations(
    dialect: str | Dialect,
    stream: StreamLike,
    request: Request | None = None,
    rules: Collection[str] | None = None,
) -> list[Violation]:
    """The violations of a stream (only those of ``rules``, when given)."""
    if not isinstance(stream, bytes | Sequence):
        request = request or stream.request
        stream = stream.body
    found = validate(dialect, stream, request)
    return [v for v in found if rules is None or v.rule in rules]


def _fail(what: str, found: list[Violation]) -> None:
    if found:
        lines = "\n".join(f"  {violation}" for violation in found)
        raise AssertionError(f"{what}: {len(found)} violation(s)\n{lines}")


def assert_stream_conforms(
    dialect: str | Dialect,
    stream: StreamLike,
    request: Request | None = None,
    *,
    ignore: Collection[str] = (),
) -> None:
    """Every rule of the dialect holds (but those in ``ignore``); else AssertionError
    listing the violations. ``request`` enables the rules that depend on what was asked."""
    name = dialect if isinstance(dialect, str) else dialect.name
    found = [v for v in violations(dialect, stream, request) if v.rule not in ignore]
    _fail(f"the {name} stream does not conform", found)


def assert_chunk_ordering(
    stream: StreamLike, request: Request | None = None, dialect: str = DEFAULT_DIALECT
) -> None:
    """Chunks come in the protocol's order (see ``ORDERING``)."""
    _fail("chunk ordering", violations(dialect, stream, request, ORDERING))


def assert_done_terminated(stream: StreamLike, dialect: str = DEFAULT_DIALECT) -> None:
    """The stream ends with exactly one ``data: [DONE]``."""
    _fail("[DONE] termination", violations(dialect, stream, None, TERMINATION))


def assert_usage_chunk(
    stream: StreamLike, request: Request | None = None, dialect: str = DEFAULT_DIALECT
) -> None:
    """The include_usage contract holds (see ``USAGE_CHUNK``); without the request, only
    the rules that do not depend on it are checked."""
    _fail("the usage chunk", violations(dialect, stream, request, USAGE_CHUNK))


def endpoint_path(dialect: Dialect) -> str:
    """The dialect's endpoint relative to its SDK base URL (``/chat/completions``)."""
    path = next(r.pattern for r in dialect.routes if "{" not in r.pattern)
    return path.removeprefix(dialect.base_path) if dialect.base_path else path


def fetch_stream(
    base_url: str,
    body: dict[str, Any],
    *,
    dialect: str = DEFAULT_DIALECT,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[Request, bytes]:
    """POST ``body`` to the dialect's endpoint under ``base_url`` (an SDK base URL, such
    as ``http://127.0.0.1:4000/v1``) and read the whole answer: (request, body bytes),
    ready for the properties above. A status >= 400 raises AssertionError with the body."""
    spec = DIALECTS[dialect]
    path = endpoint_path(spec)
    sent = {"content-type": "application/json", **(headers or {})}
    if api_key:
        sent.setdefault("authorization", f"Bearer {api_key}")
        sent.setdefault("x-api-key", api_key)
    data = json.dumps(body).encode()
    http = urllib.request.Request(base_url.rstrip("/") + path, data, sent, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            raw: bytes = answer.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(
            f"{base_url}{path} answered {exc.code}: {exc.read()[:500]!r}"
        ) from None
    return Request("POST", path, headers=tuple(sent.items()), body=data, json=body), raw


def assert_endpoint_conforms(
    base_url: str,
    body: dict[str, Any],
    *,
    dialect: str = DEFAULT_DIALECT,
    api_key: str | None = None,
    ignore: Collection[str] = (),
) -> bytes:
    """Ask any server (a proxy, a self-hosted model) for a stream and assert that it
    conforms; returns the body for further checks."""
    request, received = fetch_stream(base_url, body, dialect=dialect, api_key=api_key)
    assert_stream_conforms(dialect, received, request, ignore=ignore)
    return received


# --- serving generated streams ------------------------------------------------------------

SOURCE = "tapedeck_stream"


@dataclass
class _QueuePlayer(Player):
    """Answers each request with the next queued response, whatever it asks."""

    queue: deque[tuple[Response, tuple[bytes, ...]]] = field(default_factory=deque)

    def next(self, request: Request, match: RouteMatch) -> Entry:
        with self._lock:
            self.requests.append(request)
            if not self.queue:
                raise NoMatchingExchange(
                    f"tapedeck_stream has no stream queued for {request.summary()}. Way out: "
                    "queue one first, with tapedeck_stream.push(stream) or serving(stream)."
                )
            response, chunks = self.queue.popleft()
        entry = prepare(Exchange(request, response, SOURCE), match)
        assert entry is not None  # the app resolved the route before asking
        # The stream goes out in the generated HTTP chunks (splits inside characters...).
        return replace(entry, frames=chunks, wire=chunked(chunks)) if entry.streaming else entry


class StreamServer:
    """A server on 127.0.0.1 that answers each request with the next queued stream."""

    def __init__(self) -> None:
        self._player = _QueuePlayer(Library(()))
        self._server: BackgroundServer | None = None
        self._start_lock = threading.Lock()

    def start(self) -> StreamServer:
        from mockserver.app import ServerState
        from mockserver.runner import BackgroundServer

        with self._start_lock:
            if self._server is None:
                self._server = BackgroundServer(ServerState(self._player)).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The root URL, ``http://127.0.0.1:PORT`` (the server starts on first use)."""
        self.start()
        assert self._server is not None
        return self._server.url

    def base_url(self, dialect: str = DEFAULT_DIALECT) -> str:
        """The SDK base URL for a dialect (OpenAI chat, the default: ``http://127.0.0.1:PORT/v1``)."""
        return self.url + DIALECTS[dialect].base_path

    @property
    def requests(self) -> list[Request]:
        """Every request received so far."""
        with self._player._lock:
            return list(self._player.requests)

    def push(
        self,
        stream: _Generated | bytes,
        *,
        dialect: str = DEFAULT_DIALECT,
        chunks: Sequence[bytes] | None = None,
        headers: Headers = (),
    ) -> None:
        """Queue a stream (a generated one, or raw body bytes of ``dialect``) for the next
        request. It goes out in ``chunks`` (a generated stream's own, else one per event)."""
        if not isinstance(stream, bytes):
            dialect, body = stream.dialect, stream.body
            chunks = chunks or getattr(stream, "chunks", None)
            framing = DIALECTS[dialect].framing_for(stream.request)
        else:
            body, framing = stream, DIALECTS[dialect].framing
        pieces = tuple(chunks) if chunks else framing.frames(body)
        if b"".join(pieces) != body:
            raise ValueError("the chunks of a stream must join to its body")
        response = Response(200, (("content-type", framing.content_type), *headers), body, "OK")
        with self._player._lock:
            self._player.queue.append((response, pieces))

    @contextmanager
    def serving(
        self, *streams: _Generated | bytes, dialect: str = DEFAULT_DIALECT
    ) -> Iterator[str]:
        """Queue ``streams``, give the base URL of the first one's dialect, and check on the
        way out that every one was requested (then drop any left over)."""
        for stream in streams:
            self.push(stream, dialect=dialect)
        first = streams[0] if streams else b""
        name = dialect if isinstance(first, bytes) else first.dialect
        try:
            yield self.base_url(name)
        finally:
            with self._player._lock:
                left = len(self._player.queue)
                self._player.queue.clear()
        if left:
            raise AssertionError(f"{left} of {len(streams)} queued stream(s) were never requested")
