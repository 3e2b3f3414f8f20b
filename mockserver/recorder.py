"""Recording: forward a request to the real upstream, pass its answer to the client as it
arrives, and save what was seen — exact bytes, when each event arrived, no secrets.

Record modes mean what they mean in pytest-recording: ``none`` never forwards; ``once``
records only when the cassette does not exist yet; ``new_episodes`` replays what it has and
records the rest; ``all`` forwards everything and appends; ``rewrite`` forwards everything
and replaces the cassette. A failed upstream exchange is never saved (no half-files): the
client gets a provider-shaped 502, or the partial stream as it came, and the failure is
listed in ``Recorder.failures``.

A cassette that cannot be written never corrupts an answer either: the client gets the
whole response as it came (or, when nothing was sent yet, an error in its provider's
shape) and the failure is listed. The path forwarded is the path routed, still encoded
as the client sent it; one with a ``.`` or ``..`` segment (``%2e%2e``, ``..%2f``) is
refused, since the upstream would resolve it to another path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from mockserver import cassettes, storage
from mockserver.dialects import RouteMatch, upstreams
from mockserver.errors import RecordingError, TapedeckError, UnsafeCassetteName
from mockserver.model import Exchange, Headers, Request, Response, Timing
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact_text
from mockserver.validation import validate

log = logging.getLogger("tapedeck")

RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
# Never forwarded: they describe one hop, or would make the upstream compress (we store
# and serve decoded bodies) or address the wrong host.
HOP_HEADERS = frozenset(
    {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive",
        "accept-encoding", "te", "trailer", "upgrade", "proxy-authorization",
    }
)  # fmt: skip


def default_upstreams() -> dict[str, str]:
    """Every upstream the dialects know, by name, with the real provider's URL where there
    is one to assume (none for Azure or Bedrock: the user's own resource)."""
    return {name: url for name, url in upstreams().items() if url}


def parse_upstreams(pairs: list[str]) -> dict[str, str]:
    """``["openai=https://...", ...]`` over the defaults; a clear ValueError otherwise."""
    found = default_upstreams()
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not urlsplit(url).scheme.startswith("http"):
            example = next(iter(default_upstreams().items()))
            raise ValueError(f"--upstream wants NAME=URL (e.g. {'='.join(example)}), got {pair!r}")
        found[name.strip()] = url.rstrip("/")
    return found


@dataclass
class Recorder:
    """Where and how one server run (or one test) records."""

    mode: str
    cassette: Path
    upstreams: Mapping[str, str] = field(default_factory=lambda: default_upstreams())
    redaction: Redaction = DEFAULT_REDACTION
    strict: bool = False
    recorded: list[Exchange] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    root: Path | None = None
    """The cassette folder: messages name the cassette relative to it (never a server's
    absolute path). None: as ``cassette`` was given."""
    _replace: bool = False

    def __post_init__(self) -> None:
        if self.mode not in RECORD_MODES:
            raise ValueError(f"unknown record mode {self.mode!r}; valid: {', '.join(RECORD_MODES)}")
        storage.check_target(self.cassette, self.shown)  # before anything is forwarded
        storage.tidy(self.cassette)
        if self.mode == "once" and self.cassette.exists():
            self.mode = "none"  # recorded once already: replay only
        self._replace = self.mode == "rewrite"

    @property
    def records_misses(self) -> bool:
        return self.mode != "none"

    @property
    def records_everything(self) -> bool:
        """``all`` and ``rewrite`` forward even requests a recording would answer."""
        return self.mode in ("all", "rewrite")

    @property
    def shown(self) -> str:
        """The cassette as messages name it."""
        if self.root is not None and self.cassette.is_relative_to(self.root):
            return str(self.cassette.relative_to(self.root))
        return str(self.cassette)

    def upstream_url(self, request: Request, match: RouteMatch, raw_path: str = "") -> str:
        """Where ``request`` goes: ``raw_path`` (the path as the client encoded it, which
        ``forwarded_path`` checked) or else ``request.path``, under the upstream's URL."""
        name = upstream_name(request, match)
        if not self.upstreams.get(name):
            raise RecordingError(
                f"no upstream for {name}: start tapedeck with "
                f"--upstream {name}=https://... to record {request.path}"
            )
        return upstream_url(self.upstreams, request, match, raw_path)

    def save(self, exchange: Exchange) -> None:
        """Append ``exchange`` to the cassette under a lock on its folder, in one write
        whatever the cassette's size, so several workers or servers recording into one
        folder lose nothing and a reader never sees half an interaction."""
        cassettes.append(
            self.cassette,
            exchange,
            redaction=self.redaction,
            replace=self._replace,
            name=self.shown,
        )
        self._replace = False
        self.recorded.append(exchange)

    async def forward(
        self, http: web.Request, request: Request, match: RouteMatch, client: aiohttp.ClientSession
    ) -> web.StreamResponse:
        """Send ``request`` upstream and tee the answer to the client as it arrives."""
        raw_path = forwarded_path(http)
        if raw_path is None:
            shown = f"{http.rel_url.raw_path!r} (decoded: {http.path!r})"
            problem = (
                f"the path {shown} has a '.' or '..' segment: forwarded, it would reach "
                "another path on the upstream host than the one routed here. Send the path "
                "without dot segments"
            )
            return self._refuse(request, match, 400, problem)
        try:
            storage.check_target(self.cassette, self.shown)  # it may have become a folder
        except UnsafeCassetteName as exc:
            return self._refuse(request, match, 500, str(exc))
        url = self.upstream_url(request, match, raw_path)
        loop = asyncio.get_running_loop()
        start = loop.time()
        headers = {k: v for k, v in request.headers if k.lower() not in HOP_HEADERS}
        headers["Accept-Encoding"] = "identity"
        out: web.StreamResponse | None = None
        body = bytearray()
        arrivals: list[tuple[int, float]] = []
        client_gone = False
        try:
            async with client.request(
                request.method, _target(url, headers), data=request.body or None,
                headers=headers, allow_redirects=False,
            ) as upstream:  # fmt: skip
                headers_at = loop.time() - start
                kept = tuple(
                    (str(k), v)
                    for k, v in upstream.headers.items()
                    if k.lower() not in HOP_HEADERS and k.lower() != "content-encoding"
                )
                out = web.StreamResponse(
                    status=upstream.status, reason=upstream.reason, headers=kept
                )
                await out.prepare(http)
                async for piece in upstream.content.iter_any():
                    body += piece
                    arrivals.append((len(body), loop.time() - start))
                    if not client_gone:
                        try:
                            await out.write(piece)
                        except ConnectionError:
                            client_gone = True  # keep reading: the recording is still good
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            problem = self._say(f"upstream {url} failed: {type(exc).__name__}: {exc}", request)
            said = self._say(f"{request.summary()}: {problem} (nothing saved)", request)
            self.failures.append(said)
            log.warning("%s", problem)
            if out is None:
                message = f"Tapedeck could not record: {problem}. Nothing was saved."
                error = match.dialect.error(502, message, "api_error")
                return web.Response(status=502, headers=_plain(error.headers), body=error.body)
            if http.transport is not None:
                http.transport.abort()  # the client sees the cut the upstream made
            return out
        split = urlsplit(url)
        recorded = Request(
            request.method, split.path, request.query, request.headers, request.body,
            request.json, f"{split.scheme}://{split.netloc.rpartition('@')[2]}",  # no userinfo
        )  # fmt: skip
        # Saved before the client sees the end: once its call returns, the cassette is there.
        # A save that fails is reported, and the client still gets the whole answer: the
        # response has started, and anything else written now would corrupt it.
        try:
            response = Response(upstream.status, kept, bytes(body), upstream.reason or "")
            timing = arrival_timing(match, request, response, headers_at, arrivals)
            await loop.run_in_executor(
                None, self._keep, Exchange(recorded, response, timing=timing), match
            )
        except Exception as exc:
            unexpected = not isinstance(exc, (OSError, TapedeckError))  # a bug: its traceback
            self._fail(request, f"not saved to {self.shown}: {_reason(exc)}", unexpected)
        if not client_gone:
            with contextlib.suppress(ConnectionError):
                await out.write_eof()
        return out

    def _refuse(
        self, request: Request, match: RouteMatch, status: int, problem: str
    ) -> web.Response:
        """Nothing sent yet: the client gets the reason in its provider's error shape."""
        self._fail(request, f"{problem} (nothing forwarded, nothing saved)")
        message = f"Tapedeck did not record this request: {problem}."
        kind = match.dialect.default_error_kind if status < 500 else "api_error"
        error = match.dialect.error(status, self._say(message, request), kind)
        headers = {**_plain(error.headers), "x-should-retry": "false"}  # a retry cannot help
        return web.Response(status=status, headers=headers, body=error.body)

    def _fail(self, request: Request, problem: str, trace: bool = False) -> None:
        """List a failure (the pytest plugin fails the test with it) and log it, once."""
        failure = self._say(f"{request.summary()}: {problem}", request)
        self.failures.append(failure)
        log.error("%s", failure, exc_info=trace)

    def _say(self, message: str, request: Request) -> str:
        """A message for a log, a failure list or an answer: without the request's
        credentials (its ``?key=``, its token) or the upstream URL's password."""
        return redact_text(message, request, self.redaction)

    def _keep(self, exchange: Exchange, match: RouteMatch) -> None:
        request, response = exchange.request, exchange.response
        if self.strict and 200 <= response.status < 300 and match.dialect.is_stream(request):
            violations = validate(match.dialect, response.body, request)
            if violations:
                listed = "; ".join(str(v) for v in violations)
                failure = f"{request.summary()}: not saved (--strict-record): {listed}"
                self.failures.append(self._say(failure, request))
                return
        self.save(exchange)


def upstream_name(request: Request, match: RouteMatch) -> str:
    """The NAME of ``--upstream NAME=URL`` that ``request`` goes to."""
    upstream = match.dialect.upstream_for(request)
    return upstream.name if upstream else match.dialect.name


def upstream_url(
    upstreams: Mapping[str, str], request: Request, match: RouteMatch, raw_path: str = ""
) -> str:
    """Where ``request`` goes under its upstream's URL in ``upstreams`` (which has one:
    see ``upstream_name``); the path is ``raw_path``, or else ``request.path``."""
    dialect = match.dialect
    base = upstreams[upstream_name(request, match)]
    path = raw_path or request.path
    # The SDK's base URL maps onto the upstream's: /v1/chat/completions on us is
    # {openai}/chat/completions when the openai upstream already ends in /v1.
    if dialect.base_path and path.startswith(dialect.base_path + "/"):
        path = path[len(dialect.base_path) :]
    query = urlencode(request.query)
    return base + path + (f"?{query}" if query else "")


def arrival_timing(
    match: RouteMatch,
    request: Request,
    response: Response,
    headers_at: float,
    arrivals: list[tuple[int, float]],
) -> Timing:
    """Each frame's arrival: when the piece holding its last byte came in."""
    streaming = 200 <= response.status < 300 and match.dialect.is_stream(request)
    frames = (
        match.dialect.framing_for(request).frames(response.body) if streaming else (response.body,)
    )
    offsets, end, piece = [], 0, 0
    for frame in frames:
        end += len(frame)
        while piece < len(arrivals) - 1 and arrivals[piece][0] < end:
            piece += 1
        offsets.append(arrivals[piece][1] if arrivals else headers_at)
    return Timing(headers_at, tuple(offsets))


def forwarded_path(http: web.Request) -> str | None:
    """The path to forward, encoded as the client sent it (an encoded slash stays one, as
    in a Bedrock model ARN), or None when one of its segments, decoded, is ``.`` or ``..``
    (``..%2f`` included): forwarded, it would reach another path than the one routed."""
    raw = http.rel_url.raw_path
    segments = re.split(r"[/\\]", unquote(raw))  # some servers take a backslash for a slash
    return None if any(segment in (".", "..") for segment in segments) else raw


def _target(url: str, headers: Mapping[str, str]) -> URL:
    """Where to send: a user and password in the upstream's URL (``--upstream
    openai=https://user:PASS@gateway/v1``) go as Basic credentials, unless the client sent
    an Authorization of its own: one request carries one, so the client's key goes."""
    target = URL(url, encoded=True)
    if target.user is not None and any(name.lower() == "authorization" for name in headers):
        return target.with_user(None)
    return target


def _reason(exc: Exception) -> str:
    """Why a save failed, without the absolute path an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror:
        code = errno.errorcode.get(exc.errno or 0, "")
        return f"{exc.strerror} ({code})" if code else exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _plain(headers: Headers) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")}
