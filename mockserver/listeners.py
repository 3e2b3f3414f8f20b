"""The listening sockets of ``serve --workers``: bound by the supervisor before it forks,
so ``--port 0`` works, the banner names the real port, and a port already taken fails
the way a single server's does.

Where it sits: beside ``serving`` (nothing but the socket module and the backlog),
before ``workers``, which hands these sockets to its worker processes.
"""

from __future__ import annotations

import socket
import sys

from mockserver.server_limits import BACKLOG

BALANCED = sys.platform.startswith("linux")
"""One socket per worker, all bound to the port with SO_REUSEPORT: Linux spreads the
connections over them by a hash of their addresses. On one shared socket, the worker that
wakes first accepts every connection waiting (asyncio accepts in batches), so a client
opening its pool at once lands on one worker: measured, 0%/100% of the CPU against
50%/50% (README 'More than one core'). Elsewhere (macOS, the BSDs) SO_REUSEPORT does not
spread connections: the workers share one socket."""


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bound to the first address ``host`` resolves to, listening, non-blocking (OSError
    as a bind's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(infos[0][4])
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """The sockets ``count`` workers accept on: one each where the kernel balances
    (``BALANCED``), else one for all."""
    if not BALANCED:
        return [listening_socket(host, port)]
    # SO_REUSEPORT would also join another server's sockets on that port (one of the same
    # user's): first a plain bind, to fail as a single server would, and to learn the
    # port that 0 stands for.
    with listening_socket(host, port) as probe:
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sockets.append(listening_socket(host, port, reuse_port=True))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
