"""Framings: how a protocol's body is cut into events (``frames``) and read back (decoders).

Each framing is a ``Framing`` value; this package maps their names to them.
"""

from mockserver.framing.aws_eventstream import AWS_EVENTSTREAM
from mockserver.framing.json_array import JSON_ARRAY
from mockserver.framing.ndjson import NDJSON
from mockserver.framing.sse import SSE
from mockserver.model import Framing

FRAMINGS: dict[str, Framing] = {
    framing.name: framing for framing in (SSE, NDJSON, AWS_EVENTSTREAM, JSON_ARRAY)
}

__all__ = ["AWS_EVENTSTREAM", "FRAMINGS", "JSON_ARRAY", "NDJSON", "SSE"]
