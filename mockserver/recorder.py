"""Recording: forward a request to the real upstream, pass its answer to the client as it
arrives, and save what was seen — exact bytes, when each event arrived, no secrets.

Record modes mean what they mean in pytest-recording: ``none`` never forwards; ``once``
records only when the cassette does not exist yet; ``new_episodes`` replays what it has and
records the rest; ``all`` forwards everything and appends; ``rewrite`` forwards everything
and replaces the cassette. A failed upstream exchange is never saved (no half-files): the
client gets a provider-shaped 502, or the partial stream as it came, and the failure is
listed in ``Recorder.failures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from mockserver import cassettes
from mockserver.checks import validate
from mockserver.dialects import RouteMatch, upstreams
from mockserver.errors import RecordingError
from mockserver.model import Exchange, Headers, Request, Response, Timing
from mockserver.redaction import DEFAULT_REDACTION, Redaction

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
            raise ValueError(
                f"--upstream wants NAME=URL (e.g. openai=https://api.openai.com/v1), got {pair!r}"
            )
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
    _replace: bool = False

    def __post_init__(self) -> None:
        if self.mode not in RECORD_MODES:
            raise ValueError(f"unknown record mode {self.mode!r}; valid: {', '.join(RECORD_MODES)}")
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

    def upstream_url(self, request: Request, match: RouteMatch) -> str:
        dialect = match.dialect
        upstream = dialect.upstream_for(request)
        name = upstream.name if upstream else dialect.name
        base = self.upstreams.get(name)
        if not base:
            raise RecordingError(
                f"no upstream for {name}: start tapedeck with "
                f"--upstream {name}=https://... to record {request.path}"
            )
        path = request.path
        # The SDK's base URL maps onto the upstream's: /v1/chat/completions on us is
        # {openai}/chat/completions when the openai upstream already ends in /v1.
        if dialect.base_path and path.startswith(dialect.base_path + "/"):
            path = path[len(dialect.base_path) :]
        query = urlencode(request.query)
        return base + path + (f"?{query}" if query else "")

    def save(self, exchange: Exchange) -> None:
        """Append ``exchange`` to the cassette under a lock on its folder, atomically, so
        several workers or servers recording into one folder lose nothing."""
        folder = self.cassette.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            fresh = self._replace or not self.cassette.exists()
            existing = () if fresh else cassettes.load(self.cassette)
            cassettes.dump([*existing, exchange], self.cassette, redaction=self.redaction)
            self._replace = False
        finally:
            os.close(fd)  # closing releases the lock
        self.recorded.append(exchange)

    async def forward(
        self, http: web.Request, request: Request, match: RouteMatch, client: aiohttp.ClientSession
    ) -> web.StreamResponse:
        """Send ``request`` upstream and tee the answer to the client as it arrives."""
        url = self.upstream_url(request, match)
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
                request.method, url, data=request.body or None, headers=headers,
                allow_redirects=False,
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
            problem = f"upstream {url} failed: {type(exc).__name__}: {exc}"
            self.failures.append(f"{request.summary()}: {problem} (nothing saved)")
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
            request.json, f"{split.scheme}://{split.netloc}",
        )  # fmt: skip
        response = Response(upstream.status, kept, bytes(body), upstream.reason or "")
        timing = _timing(match, request, response, headers_at, arrivals)
        # Saved before the client sees the end: once its call returns, the cassette is there.
        await loop.run_in_executor(
            None, self._keep, Exchange(recorded, response, timing=timing), match
        )
        if not client_gone:
            with contextlib.suppress(ConnectionError):
                await out.write_eof()
        return out

    def _keep(self, exchange: Exchange, match: RouteMatch) -> None:
        request, response = exchange.request, exchange.response
        if self.strict and 200 <= response.status < 300 and match.dialect.is_stream(request):
            violations = validate(match.dialect, response.body, request)
            if violations:
                listed = "; ".join(str(v) for v in violations)
                self.failures.append(f"{request.summary()}: not saved (--strict-record): {listed}")
                return
        self.save(exchange)


def _timing(
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


def _plain(headers: Headers) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")}
