"""``tapedeck drift``: are the cassettes still true to the live provider?

Each recorded request goes again to a live upstream, where recording would send it
(``recorder.upstream_url``), with the user's own key from the environment (its upstream's
``ApiKey``; a key from a cassette, never), and the answer's shape is compared with the
recording's (``shape``): event types and their order, field paths, usage placement, finish
reasons, content type. ``rewrite`` then writes each cassette that drifted again, with the
new answers in place of the old, redacted as the recorder redacts, in one atomic replace.

Where it sits: at the end of the flow, beside the recorder (whose URL mapping, header
hygiene and timing it reuses); the CLI calls ``drift`` and ``rewrite``, and prints
``Report.lines``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import aiohttp
from yarl import URL

from mockserver import cassettes, credentials
from mockserver.dialects import RouteMatch, resolve
from mockserver.errors import TapedeckError
from mockserver.index import cassette_files
from mockserver.model import Exchange, Request, Response, Timing
from mockserver.recorder import HOP_HEADERS, arrival_timing, upstream_name, upstream_url
from mockserver.redaction import DEFAULT_REDACTION, Redaction, redact_text
from mockserver.shape import Difference, compare, shape_of

__all__ = ["Outcome", "Report", "drift", "rewrite"]

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 120.0
Verdict = Literal["unchanged", "drifted", "not compared", "skipped"]
# Answers that say nothing of the shape: a refused key, a busy or broken upstream.
_REFUSED = frozenset({401, 403, 407})
_TRANSIENT = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What drift made of one recorded interaction (``source``: ``file#index``)."""

    source: str
    verdict: Verdict
    request: str = ""
    url: str = ""
    differences: tuple[Difference, ...] = ()
    reason: str = ""
    file: Path | None = None
    index: int = -1
    recorded: Request | None = None
    fresh: Exchange | None = None
    """The live answer as a new recording (drifted interactions only), for ``rewrite``."""

    def lines(self) -> list[str]:
        if self.verdict in ("unchanged", "drifted"):
            head = f"{self.source} {self.verdict}: {self.request} sent to {self.url}"
            return [head, *(f"    {difference}" for difference in self.differences)]
        return [f"{self.source} {self.verdict}: {self.reason}"]


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: tuple[Outcome, ...]
    files: int
    unreadable: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def count(self, verdict: Verdict) -> int:
        return sum(outcome.verdict == verdict for outcome in self.outcomes)

    @property
    def exit_code(self) -> int:
        """2: something could not be compared (or nothing was); 1: something drifted; 0."""
        compared = self.count("unchanged") + self.count("drifted")
        if self.unreadable or self.count("not compared") or not compared:
            return 2
        return 1 if self.count("drifted") else 0

    def lines(self) -> list[str]:
        out = [*self.notes, *self.unreadable]
        for outcome in self.outcomes:
            out += outcome.lines()
        counts = ", ".join(
            f"{self.count(v)} {v}" for v in ("unchanged", "drifted", "not compared", "skipped")
        )
        out.append(f"{self.files} file(s), {len(self.outcomes)} interaction(s): {counts}")
        return out


@dataclass(frozen=True, slots=True)
class _Plan:
    """One interaction ready to send: where, and the request as it goes out."""

    exchange: Exchange
    file: Path
    index: int
    match: RouteMatch
    url: str
    sent: Request
    """The recorded request with the user's key and without any credential of the cassette."""
    key: tuple[tuple[str, str], ...]
    hint: str
    """What to do when the upstream refuses the key."""


def drift(
    paths: Sequence[str | os.PathLike[str]],
    upstreams: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Send every interaction of the cassettes at ``paths`` to its live upstream (URLs by
    upstream name, as ``--upstream NAME=URL`` gives them; keys from ``environ``, by
    default the process environment) and compare each answer's shape with the recording."""
    environ = os.environ if environ is None else environ
    files = cassette_files(paths)
    unreadable: list[str] = []
    planned: list[_Plan | Outcome] = []
    notes: dict[str, str] = {}
    for file in files:
        try:
            exchanges = cassettes.load(file, str(file))
        except (TapedeckError, OSError) as exc:
            unreadable.append(f"{file}: cannot be read: {exc}")
            continue
        for index, exchange in enumerate(exchanges):
            planned.append(_plan(exchange, file, index, upstreams, environ, notes))
    outcomes = asyncio.run(_send_all(planned, concurrency, timeout)) if planned else []
    return Report(tuple(outcomes), len(files), tuple(unreadable), tuple(notes.values()))


def _plan(
    exchange: Exchange,
    file: Path,
    index: int,
    upstreams: Mapping[str, str],
    environ: Mapping[str, str],
    notes: dict[str, str],
) -> _Plan | Outcome:
    request = exchange.request

    def refuse(verdict: Verdict, reason: str) -> Outcome:
        return Outcome(exchange.source, verdict, request.summary(), reason=reason)

    match = resolve(request.method, request.path)
    if match is None:
        return refuse("skipped", f"no dialect serves {request.method} {request.path}")
    # The recorder's rule: a dot segment would reach another path than the one recorded.
    if any(part in (".", "..") for part in re.split(r"[/\\]", unquote(request.path))):
        return refuse("not compared", f"the path {request.path!r} has a '.' or '..' segment")
    name = upstream_name(request, match)
    if not upstreams.get(name):
        return refuse(
            "not compared",
            f"no URL for upstream {name}: pass --upstream {name}=https://... "
            f"(the base URL its SDK would use)",
        )
    upstream = match.dialect.upstream_for(request)
    spec = upstream.key if upstream is not None else None
    key = spec.headers(environ) if spec is not None else {}
    if spec is None:
        hint = f"Tapedeck knows no key for upstream {name} (signed requests, or none needed)"
    else:
        variables = " or ".join(spec.variables)
        hint = f"set {variables} to a valid key for upstream {name}"
        if not key:
            notes[name] = f"note: {variables} not set: requests to upstream {name} carry no key"
    # Never a credential from the cassette (recordings hold none, others may): the user's.
    headers = tuple(
        (k, v)
        for k, v in request.headers
        if k.lower() not in HOP_HEADERS and credentials.header_kind(k) is None
    )
    headers += (("Accept-Encoding", "identity"), *key.items())
    query = tuple(
        (k, v) for k, v in request.query if credentials.normalized(k) not in credentials.PARAMS
    )
    sent = replace(request, headers=headers, query=query)
    url = upstream_url(upstreams, sent, match)
    return _Plan(exchange, file, index, match, url, sent, tuple(key.items()), hint)


async def _send_all(
    planned: Sequence[_Plan | Outcome], concurrency: int, timeout: float
) -> list[Outcome]:
    gate = asyncio.Semaphore(max(1, concurrency))
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 30.0))
    async with aiohttp.ClientSession(timeout=limits, auto_decompress=True) as client:

        async def one(item: _Plan | Outcome) -> Outcome:
            if isinstance(item, Outcome):
                return item
            async with gate:
                return await _judge(item, client, timeout)

        return list(await asyncio.gather(*(one(item) for item in planned)))


async def _judge(plan: _Plan, client: aiohttp.ClientSession, timeout: float) -> Outcome:
    recorded = plan.exchange
    shown = _say(plan.url, plan)
    base = Outcome(
        recorded.source,
        "not compared",
        recorded.request.summary(),
        shown,
        file=plan.file,
        index=plan.index,
        recorded=recorded.request,
    )
    try:
        response, timing = await _fetch(plan, client)
    except aiohttp.ClientConnectorError as exc:
        why = exc.os_error.strerror or str(exc.os_error)
        reason = f"cannot reach {shown} ({why}): is the upstream up, and is --upstream right?"
        return replace(base, reason=_say(reason, plan))
    except asyncio.TimeoutError:
        reason = f"no whole answer from {shown} within {timeout:g} s (--timeout)"
        return replace(base, reason=reason)
    except aiohttp.ClientError as exc:
        reason = f"the exchange with {shown} failed: {type(exc).__name__}: {exc}"
        return replace(base, reason=_say(reason, plan))
    status, was = response.status, recorded.response.status
    if status != was and (status in _REFUSED or status in _TRANSIENT or status >= 500):
        said = f"{shown} answered {status} {response.reason}".rstrip() + f": {_excerpt(response)}"
        way = plan.hint if status in _REFUSED else "nothing can be told of the shape; try again"
        return replace(base, reason=_say(f"{said}; {way}", plan))
    if status != was:  # the rest would only follow from it; the answer says why
        detail = f"was {was}, now {status}: {_say(_excerpt(response), plan)}"
        differences = [Difference("changed", "status", detail)]
    else:
        dialect = plan.match.dialect
        differences = compare(
            shape_of(dialect, recorded.request, recorded.response),
            shape_of(dialect, recorded.request, response),
        )
    if not differences:
        return replace(base, verdict="unchanged")
    drifted = replace(base, verdict="drifted", differences=tuple(differences))
    if status >= 400 > was:
        return replace(drifted, reason=f"kept: the live answer is an error ({status})")
    # Recorded as the recorder would: with the key it went out with, so that redaction
    # removes it and cuts it out wherever the answer echoes it.
    request = replace(recorded.request, headers=recorded.request.headers + plan.key)
    return replace(drifted, fresh=Exchange(request, response, recorded.source, timing))


async def _fetch(plan: _Plan, client: aiohttp.ClientSession) -> tuple[Response, Timing]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    body = bytearray()
    arrivals: list[tuple[int, float]] = []
    sent = plan.sent
    async with client.request(
        sent.method, URL(plan.url, encoded=True), data=sent.body or None,
        headers=list(sent.headers), allow_redirects=False,
    ) as answer:  # fmt: skip
        headers_at = loop.time() - start
        kept = tuple(
            (str(k), v)
            for k, v in answer.headers.items()
            if k.lower() not in HOP_HEADERS and k.lower() != "content-encoding"
        )
        async for piece in answer.content.iter_any():
            body += piece
            arrivals.append((len(body), loop.time() - start))
    response = Response(answer.status, kept, bytes(body), answer.reason or "")
    timing = arrival_timing(plan.match, plan.exchange.request, response, headers_at, arrivals)
    return response, timing


def _say(message: str, plan: _Plan) -> str:
    """A message without the user's key or the upstream URL's password."""
    return redact_text(message, plan.sent)


def _excerpt(response: Response, limit: int = 200) -> str:
    text = " ".join(response.body.decode("utf-8", errors="replace").split())
    return (text[:limit] + "...") if len(text) > limit else text or "(empty body)"


def rewrite(report: Report, redaction: Redaction = DEFAULT_REDACTION) -> list[str]:
    """Write each cassette that drifted again, the live answers in place of the recorded
    ones, everything redacted, in one atomic replace per file; one line per file. A file
    that changed since ``drift`` read it is left alone (its line says so)."""
    fresh: dict[Path, list[Outcome]] = {}
    said = []
    for outcome in report.outcomes:
        if outcome.fresh is not None and outcome.file is not None:
            fresh.setdefault(outcome.file, []).append(outcome)
        elif outcome.verdict == "drifted":  # an error where an answer was: not a recording
            said.append(f"{outcome.source}: {outcome.reason}")
    for file, outcomes in fresh.items():
        try:
            current = list(cassettes.load(file, str(file)))
        except (TapedeckError, OSError) as exc:
            said.append(f"{file}: not rewritten: cannot be read again: {exc}")
            continue
        moved = [
            o.source
            for o in outcomes
            if o.index >= len(current) or current[o.index].request != o.recorded
        ]
        if moved:
            said.append(
                f"{file}: not rewritten: it changed since drift read it ({', '.join(moved)} "
                "no longer holds the request sent); run tapedeck drift again"
            )
            continue
        for outcome in outcomes:
            assert outcome.fresh is not None
            current[outcome.index] = outcome.fresh
        cassettes.dump(current, file, redaction=redaction)
        said.append(f"{file}: rewrote {len(outcomes)} interaction(s) with the live answers")
    return said
