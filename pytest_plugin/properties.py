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
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from mockserver.dialects import DEFAULT_DIALECT, RouteMatch
from mockserver.dialects import dialect as get_dialect
from mockserver.dialects.contract import Dialect
from mockserver.errors import NoMatchingExchange
from mockserver.index import Entry, prepare
from mockserver.model import Event, Exchange, Headers, Request, Response, Violation
from mockserver.validation import validate

if TYPE_CHECKING:
    from mockserver.server_thread import BackgroundServer

GROUPS = ("ordering", "termination", "usage")
"""The rule groups the properties below check; each dialect's table tags its rules."""


def rule_group(dialect: str | Dialect, group: str) -> frozenset[str]:
    """The ids of a dialect's rules in ``group`` (``dialect(name).rules.group(group)``);
    ValueError when it has none, so that a property never passes for want of rules."""
    spec = get_dialect(dialect) if isinstance(dialect, str) else dialect
    found = spec.rules.group(group)
    if not found:
        known = sorted({name for rule in spec.rules.values() for name in rule.groups})
        raise ValueError(
            f"dialect {spec.name!r} has no rules in group {group!r} (its groups: {known}). "
            "Way out: assert_stream_conforms checks every rule of any dialect."
        )
    return found


ORDERING = rule_group(DEFAULT_DIALECT, "ordering")
"""OpenAI chunk order: role first, content, one finish per choice, the usage chunk after
every finish; after an error, nothing (the default dialect's ``ordering`` group)."""
TERMINATION = rule_group(DEFAULT_DIALECT, "termination")
"""OpenAI termination: exactly one ``data: [DONE]``, last (its ``termination`` group)."""
USAGE_CHUNK = rule_group(DEFAULT_DIALECT, "usage")
"""OpenAI's include_usage contract: one chunk with ``choices: []`` and the usage, after
every finish, ``usage: null`` on every other chunk, none unless asked, numbers that add up
(its ``usage`` group)."""


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
    stream: StreamLike, request: Request | None = None, dialect: str | Dialect = DEFAULT_DIALECT
) -> None:
    """Events come in the protocol's order: the dialect's ``ordering`` rules (for OpenAI
    chat, ``ORDERING``)."""
    rules = rule_group(dialect, "ordering")
    _fail("chunk ordering", violations(dialect, stream, request, rules))


def assert_done_terminated(stream: StreamLike, dialect: str | Dialect = DEFAULT_DIALECT) -> None:
    """The stream ends the protocol's way: the dialect's ``termination`` rules (for OpenAI
    chat, exactly one ``data: [DONE]``, last)."""
    rules = rule_group(dialect, "termination")
    _fail("[DONE] termination", violations(dialect, stream, None, rules))


def assert_usage_chunk(
    stream: StreamLike, request: Request | None = None, dialect: str | Dialect = DEFAULT_DIALECT
) -> None:
    """The usage contract holds: the dialect's ``usage`` rules (for OpenAI chat, the
    include_usage chunk, ``USAGE_CHUNK``); without the request, only the rules that do not
    depend on it are checked."""
    _fail("the usage chunk", violations(dialect, stream, request, rule_group(dialect, "usage")))


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
    spec = get_dialect(dialect)
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


class _StreamQueue:
    """The stream server's ``Responder`` (mockserver.player): each request gets the next
    queued response, whatever it asks; none queued is a miss, answered as a provider
    error. Shared by the server's thread and the test's, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[Response, tuple[bytes, ...]]] = deque()
        self._requests: list[Request] = []

    def next(self, request: Request, match: RouteMatch) -> Entry:
        with self._lock:
            self._requests.append(request)
            if not self._queue:
                raise NoMatchingExchange(
                    f"tapedeck_stream has no stream queued for {request.summary()}. Way out: "
                    "queue one first, with tapedeck_stream.push(stream) or serving(stream)."
                )
            response, chunks = self._queue.popleft()
        # The stream goes out in the generated HTTP chunks (splits inside characters...).
        entry = prepare(Exchange(request, response, SOURCE), match, chunks=chunks)
        assert entry is not None  # the app resolved the route before asking
        return entry

    def note_request(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def note_miss(self, request: Request, explanation: str) -> bool:
        return False  # the explanation, in the provider's error shape, is the answer

    def push(self, response: Response, chunks: tuple[bytes, ...]) -> None:
        with self._lock:
            self._queue.append((response, chunks))

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def drop(self) -> int:
        """Empty the queue; returns how many responses were left in it."""
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        return left


class StreamServer:
    """A server on 127.0.0.1 that answers each request with the next queued stream."""

    def __init__(self) -> None:
        self._queue = _StreamQueue()
        self._server: BackgroundServer | None = None
        self._start_lock = threading.Lock()

    def start(self) -> StreamServer:
        from mockserver.app import ServerState
        from mockserver.server_thread import BackgroundServer

        with self._start_lock:
            if self._server is None:
                self._server = BackgroundServer(ServerState(self._queue)).start()
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
        return self.url + get_dialect(dialect).base_path

    @property
    def requests(self) -> list[Request]:
        """Every request received so far."""
        return self._queue.requests()

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
            framing = get_dialect(dialect).framing_for(stream.request)
        else:
            body, framing = stream, get_dialect(dialect).framing
        pieces = tuple(chunks) if chunks else framing.frames(body)
        if b"".join(pieces) != body:
            raise ValueError("the chunks of a stream must join to its body")
        response = Response(200, (("content-type", framing.content_type), *headers), body, "OK")
        self._queue.push(response, pieces)

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
            left = self._queue.drop()
        if left:
            raise AssertionError(f"{left} of {len(streams)} queued stream(s) were never requested")
