"""Taking a request in within the server's limits: the body's encoding, its size after
decoding, the time it takes to arrive, and how deep its JSON nests, each checked before
anything parses or walks it.

Where it sits: between aiohttp and the app's handler. It knows aiohttp's request and the
``ServerLimits``, nothing of the dialects: each refusal is a ``Refused`` that the app answers
in the shape of the route's dialect (``own_error`` where no dialect applies).
"""

from __future__ import annotations

import asyncio
import json
from itertools import accumulate

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from mockserver.model import Response
from mockserver.server_limits import MAX_DEPTH_CEILING, ServerLimits

try:  # which codings aiohttp decodes depends on what is installed
    from aiohttp.compression_utils import HAS_BROTLI
except ImportError:  # pragma: no cover - aiohttp before 3.9
    HAS_BROTLI = False
try:
    from aiohttp.compression_utils import HAS_ZSTD
except ImportError:  # aiohttp before 3.12
    HAS_ZSTD = False

DECODED = ("gzip", "deflate") + (("br",) if HAS_BROTLI else ()) + (("zstd",) if HAS_ZSTD else ())
"""The Content-Encodings the server decodes (aiohttp does, as the body arrives)."""


class Refused(Exception):
    """A request the server will not take: the status, the message for the client, and
    whether a retry could help (a timeout, a shutdown) or cannot (everything else)."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", *, retry: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.retry = retry


def check_encoding(http: web.BaseRequest) -> None:
    """415 unless the body arrives in a coding aiohttp decoded (or none): aiohttp passes
    a coding it does not know through untouched, which would then fail as bad JSON."""
    values = http.headers.getall("Content-Encoding", ())
    if not values:
        return
    codings = [c.strip().lower() for v in values for c in v.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return
    decoded = len(values) == 1 and values[0].strip().lower() in DECODED
    if not decoded:
        shown = ", ".join(values)
        raise Refused(
            415,
            f"Content-Encoding {shown!r} is not supported: this server decodes a single "
            f"coding of {', '.join(DECODED)} (or identity). Way out: send the body in one of "
            "those, or uncompressed without the header.",
        )


async def read_body(http: web.BaseRequest, limits: ServerLimits, stopping: asyncio.Event) -> bytes:
    """The decoded body, or ``Refused``: 415 for a coding not decoded, 400 for a body
    that does not decode or is not framed as its headers say, 413 over ``max_body``
    (counted after decoding: a decompression bomb stops there), 408 when it takes over
    ``read_timeout``, 503 when the server starts shutting down meanwhile."""
    if "Content-Encoding" in http.headers:
        check_encoding(http)
    if http.content.is_eof():  # the whole body came with the head: nothing to wait for
        return await _read(http, limits)
    reading = asyncio.ensure_future(_read(http, limits))
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait(
            (reading, stopped), timeout=limits.read_timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopped.cancel()
        if not reading.done():
            reading.cancel()
    if reading.done() and not reading.cancelled():
        return reading.result()
    if stopping.is_set():
        raise Refused(
            503,
            "Tapedeck is shutting down and did not take in this request. Way out: send it "
            "again once the server is back.",
            "api_error",
            retry=True,
        )
    raise Refused(
        408,
        f"The request body did not arrive within {limits.read_timeout:g} s (the server's read "
        "timeout). Way out: send the whole body promptly, or raise the limit "
        "(tapedeck serve --read-timeout S).",
        retry=True,
    )


async def _read(http: web.BaseRequest, limits: ServerLimits) -> bytes:
    try:
        return await http.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refused(
            413,
            f"Request body too large: over this server's limit of {limits.max_body} bytes "
            "(counted after Content-Encoding is decoded). Way out: send less, or raise the "
            "limit (tapedeck serve --max-body-mb N).",
        ) from None
    except web.RequestPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):
            coding = http.headers.get("Content-Encoding", "")
            raise Refused(
                400,
                f"The request body does not decode as its Content-Encoding {coding!r} says. "
                "Way out: send the body encoded as declared, or drop the header.",
            ) from None
        raise Refused(
            400,
            f"The request body could not be read as its headers frame it ({exc}). Way out: "
            "check Content-Length and the chunked encoding the client sends.",
        ) from None
    except ConnectionError:
        # The client hung up mid-body: nobody will read the answer, but it is not our bug.
        raise Refused(400, "The client closed the connection while sending the body.") from None


_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it (and so
    without recursion): brackets inside strings do not count. Linear, at C speed: the
    escapes go first (``\\\\`` then ``\\"``), then whatever sits between quotes, then all
    but the brackets, whose running sum is the depth. For text that is not JSON, a
    number that errs high, never an exception."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_depth(body: bytes, limit: int) -> None:
    """400 when the JSON nests deeper than ``limit``; cheap when it cannot (fewer
    brackets than the limit), linear otherwise."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    depth = nesting_depth(body)
    if depth > limit:
        raise Refused(
            400,
            f"The JSON body nests {depth} levels deep; this server accepts at most {limit} "
            f"(its max_json_depth limit). Way out: nest less, or raise the limit (tapedeck serve "
            f"--max-json-depth N, at most {MAX_DEPTH_CEILING}).",
        )


def own_error(
    status: int,
    message: str,
    code: str,
    *,
    kind: str = "invalid_request_error",
    retry: bool = False,
) -> Response:
    """Tapedeck's own error shape, where no provider's applies (an unknown route, a
    request too broken to name one): OpenAI's, the shape most clients read."""
    error = {"message": message, "type": kind, "code": code}
    body = json.dumps({"error": error}, ensure_ascii=False).encode("utf-8", "replace")
    headers = (("content-type", "application/json; charset=utf-8"),)
    return Response(status, headers + (() if retry else (("x-should-retry", "false"),)), body)
