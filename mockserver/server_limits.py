"""How much a running server accepts from a client, and for how long: the limits that keep
one bad or slow client from taking the server down for everyone else.

Pure values at the start of the flow (beside ``model``): the app reads the request limits
(body size, JSON nesting, body read time), the serving module the connection limits
(head read time, keep-alive, connection count, shutdown grace). ``tapedeck serve`` sets
each with the flag of its name (``--read-timeout``; ``--max-body-mb`` in MB), README
"Reliability". How big a *synthesized* answer
may grow is another matter: ``dialects/_kit/limits.py``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128  # as serde_json's default: real requests nest < 30 (tool schemas)
MAX_DEPTH_CEILING = 256
"""The deepest nesting a server may be told to accept: every recursive walk of a request
(matching, redaction, synthesis, the validators) stays clear of Python's recursion limit
below it (tests/test_hardening_depth.py sends this depth through every route)."""
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0  # nginx's: longer than the SDKs' own idle expiry (5-15 s)
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
BACKLOG = 128
"""Connections the kernel queues for accept(), and asyncio accepts at one wake-up."""
FD_RESERVE = 2 * BACKLOG + 64
"""File descriptors kept out of the connection limit: up to two batches of accepted
connections not yet counted (asyncio accepts a batch before any is seen, and the ones
closed to make room free their descriptor a loop turn later), cassette files, the
upstream client's connections while recording, stdio, the event loop."""


def default_max_connections() -> int:
    """``MAX_CONNECTIONS``, or fewer when the open-file limit would run out first: a
    server that runs out of descriptors cannot even accept the requests it could serve."""
    try:
        import resource
    except ImportError:  # Windows: no rlimit to respect
        return MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - FD_RESERVE))


def raise_open_file_limit() -> None:
    """Raise this process's soft open-file limit toward what the default connection
    limit needs (as Go programs do at start-up), within the hard limit; for ``tapedeck
    serve``, which owns its process (never inside a test run)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        if ceiling > soft:
            # Refused (a sandbox): the connection limit follows the lower one instead.
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one server accepts. Seconds are wall-clock seconds; every field is checked at
    construction, so a bad value fails at start-up with its name, not on a request."""

    max_body: int = DEFAULT_MAX_BODY
    """Bytes of request body, after Content-Encoding is decoded (so a small gzip bomb is
    refused at this size, not at its compressed one): 413 above it."""
    max_json_depth: int = DEFAULT_MAX_DEPTH
    """Levels of JSON nesting (``[[1]]`` is 2): 400 above it, before the body is parsed."""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    """Seconds to receive a request's head (from the connection opening, or from its
    first byte on a kept-alive connection) and, again, its body: 408 past either."""
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int = field(default_factory=default_max_connections)
    """Connections open at once. One more closes the connection that has waited longest
    for a request head (idle or trickling); when every one is mid-request, the new one is
    answered 503 and closed."""
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    """Seconds answers in flight get to finish on SIGTERM (requests still sending their
    body are answered 503 at once)."""

    def __post_init__(self) -> None:
        problems = []
        if self.max_body < 1:
            problems.append(f"max_body wants 1 byte or more, got {self.max_body}")
        if not 1 <= self.max_json_depth <= MAX_DEPTH_CEILING:
            problems.append(
                f"max_json_depth wants 1 to {MAX_DEPTH_CEILING} levels, got {self.max_json_depth} "
                "(deeper JSON would exhaust Python's recursion limit while matching)"
            )
        for name in ("read_timeout", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} wants seconds above 0, got {getattr(self, name)}")
        if not self.shutdown_timeout >= 0:
            problems.append(
                f"shutdown_timeout wants 0 seconds or more, got {self.shutdown_timeout}"
            )
        if self.max_connections < 1:
            problems.append(f"max_connections wants 1 or more, got {self.max_connections}")
        if problems:
            raise ValueError("; ".join(problems))
