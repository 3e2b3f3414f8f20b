"""HTTP/1.1's own framing of a body: the chunked transfer coding, one chunk per event, and
the headers that describe how the bytes travel (which the server recomputes for the bytes
it really sends, so a recorded value is never served).

Sits beside the protocol framings: the index codes each recorded stream once at load time
(``Entry.wire``), and the app writes those bytes as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)


def chunked(frames: Sequence[bytes]) -> bytes:
    """HTTP/1.1 chunked transfer coding of the frames: one chunk per event, then the end.

    Empty frames are left out: an empty chunk would end the body early."""
    parts = [b"%x\r\n%b\r\n" % (len(frame), frame) for frame in frames if frame]
    return b"".join(parts) + b"0\r\n\r\n"
