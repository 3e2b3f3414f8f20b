"""No real network by accident: while a test replays, a connection from this process to
anything but the Tapedeck server (and the hosts the user allowed) raises ``NetworkBlocked``
naming the host, and is listed so the plugin fails the test even when a client swallowed
the error (the SDKs retry, then wrap it).

Where it sits: entered by the ``tapedeck`` fixture for a test that records nothing, and
by the pytest-recording compatibility (``--block-network``). Blocks at the socket level,
for the test's duration only:

- ``socket.getaddrinfo``: a host name is refused before any DNS query leaves (so the
  message names the host, not an address, and a machine without DNS fails the same way);
  what an allowed name resolves to is allowed too;
- ``socket.socket.connect`` / ``connect_ex``: every IPv4/IPv6 connection, whatever made
  it: ``socket.create_connection``, http.client, httpx/httpcore, urllib3, and asyncio's
  ``loop.sock_connect`` (its selector loops call ``sock.connect``). Unix sockets pass.

The patches are process-wide, so the server's own thread is under them too: it replays
without connecting anywhere, and a recording test (which forwards upstream) is never
blocked. Imported only when a fixture runs: it may import the server's modules.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn

from mockserver.errors import TapedeckError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
PATCHED = ("connect", "connect_ex")


class NetworkBlocked(TapedeckError, ConnectionRefusedError):
    """A connection (or a host name look-up) refused while a test may not use the network.
    An OSError, as a refused connection is: ``socket.create_connection`` then closes the
    socket and tries the host's next address, and clients report it as a connection
    error (the plugin fails the test with the message anyway)."""


def while_replaying(server_url: str) -> Callable[[str], str]:
    """The message for a connection refused in a replaying test."""

    def explain(target: str) -> str:
        host = target.rpartition(":")[0].strip("[]")
        return (
            f"Tapedeck blocked a connection to {target}: this test replays cassettes, so "
            f"nothing in it may reach the network (only the Tapedeck server, {server_url}).\n"
            "Way out: let the client reach Tapedeck (create it inside the test or a fixture: "
            "Tapedeck points OPENAI_BASE_URL and the other SDKs' variables at its server; or "
            "pass base_url=tapedeck.base_url(...)); record the test (--tapedeck-record-mode="
            "once, or record_mode= on its marker); or allow the host: "
            f"--tapedeck-allowed-hosts='{re.escape(host)}' (or the tapedeck_allowed_hosts ini key)."
        )

    return explain


def while_blocked(target: str) -> str:
    """The message for a connection refused under ``--block-network``."""
    host = target.rpartition(":")[0].strip("[]")
    return (
        f"Network is disabled: Tapedeck blocked a connection to {target} "
        "(--block-network, or @pytest.mark.block_network).\n"
        f"Way out: allow the host: --allowed-hosts='{re.escape(host)}' (or "
        "@pytest.mark.block_network(allowed_hosts=[...]), or the tapedeck_allowed_hosts ini key)."
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


@dataclass
class NetworkGuard:
    """``with NetworkGuard(...) as guard:`` blocks; ``guard.blocked`` lists what was refused.

    ``allowed_hosts``: regular expressions, matched against the whole host name or address.
    ``loopback_ports``: ports reachable on loopback (the Tapedeck server's).
    ``explain``: the message for a refused ``host:port`` (why, and the way out)."""

    allowed_hosts: Collection[str]
    loopback_ports: Collection[int]
    explain: Callable[[str], str] = field(repr=False)
    blocked: list[str] = field(default_factory=list)
    _resolved: set[str] = field(default_factory=set, repr=False)
    _saved: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def named(self, host: str) -> bool:
        """Whether an allowed-hosts pattern matches ``host``, or an allowed name resolved
        to it."""
        if any(re.fullmatch(pattern, host) for pattern in self.allowed_hosts):
            return True
        with self._lock:
            return host in self._resolved

    def allows(self, host: str, port: int) -> bool:
        return self.named(host) or (_is_loopback(host) and port in self.loopback_ports)

    def refuse(self, host: str, port: object) -> NoReturn:
        __tracebackhide__ = True  # the user's call is the interesting frame
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        with self._lock:
            if target not in self.blocked:
                self.blocked.append(target)
        raise NetworkBlocked(self.explain(target))

    def report(self) -> str:
        """What was blocked, and the way out ("" when nothing was): the client may have
        swallowed the error, so the plugin fails the test with this too."""
        with self._lock:
            blocked = list(self.blocked)
        if not blocked:
            return ""
        return f"{len(blocked)} connection(s) blocked: {', '.join(blocked)}\n" + self.explain(
            blocked[0]
        )

    def __enter__(self) -> NetworkGuard:
        original_getaddrinfo = socket.getaddrinfo
        self._saved["getaddrinfo"] = original_getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            name = host.decode() if isinstance(host, (bytes, bytearray)) else host
            if name is None or _is_address(name):
                return original_getaddrinfo(host, port, *args, **kwargs)  # no DNS query
            allowed = self.named(name)
            if not (allowed or _is_loopback(name)):  # loopback: checked port by port
                self.refuse(name, port)
            found = original_getaddrinfo(host, port, *args, **kwargs)
            if allowed:
                with self._lock:
                    self._resolved.update(str(info[4][0]) for info in found)
            return found

        socket.getaddrinfo = getaddrinfo
        for name in PATCHED:
            self._saved[name] = vars(socket.socket).get(name)
            setattr(socket.socket, name, self._guard(getattr(socket.socket, name)))
        return self

    def _guard(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(sock: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0]
                host = host.decode() if isinstance(host, (bytes, bytearray)) else str(host)
                if not self.allows(host, address[1]):
                    self.refuse(host, address[1])
            return original(sock, address, *args, **kwargs)

        return guarded

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        socket.getaddrinfo = self._saved.pop("getaddrinfo")
        for name in PATCHED:
            saved = self._saved.pop(name)
            if saved is None:
                delattr(socket.socket, name)  # inherited from _socket.socket again
            else:
                setattr(socket.socket, name, saved)
