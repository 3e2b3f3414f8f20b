"""The benchmark's inputs, made with Tapedeck's own synthesizer and cassette writer, so the
bytes served are the bytes a real replay serves.

- ``stream_exchange``: one OpenAI chat completion streamed as 100 SSE events;
- ``json_exchange``: a small non-streaming chat completion;
- ``write_size_cassette``: N distinct small non-streaming interactions (a different user
  message each), for the index-scaling measure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mockserver import cassettes
from mockserver.dialects import DIALECTS
from mockserver.index import Entry, prepare
from mockserver.model import Exchange, Request, Script

CHAT_PATH = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
DIALECT = DIALECTS["openai_chat"]

STREAM_EVENTS = 100
CHUNK_SIZE = 4  # characters per content delta, as the synthesizer cuts them
# Beyond the content deltas the synthesizer sends a role event, a finish event and [DONE].
STREAM_TEXT_LENGTH = (STREAM_EVENTS - 3) * CHUNK_SIZE

# cassettes.dump writes (and reads back, to check) every interaction through PyYAML: about
# 0.3 ms each. Above this size the file is stamped from a template instead (see below).
DUMP_LIMIT = 1_000
# Six characters, the width of ``f"{i:06d}"``: every sized interaction then has the same
# length, hence the same token counts, whichever index it carries.
MARKER = "@@@@@@"
CHECKED_PREFIX = 200

LOREM = (
    "Streaming replay has to send every recorded event in order, byte for byte, and "
    "as fast as the client can read them. "
)


def chat_request(content: str, *, stream: bool) -> Request:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    raw = json.dumps(body, separators=(",", ":")).encode()
    return Request(
        "POST",
        CHAT_PATH,
        headers=(("content-type", "application/json"),),
        body=raw,
        json=body,
        origin="https://api.openai.com",
    )


def synthesized(request: Request, text: str, source: str) -> Exchange:
    response = DIALECT.synthesize(request, Script(text=text, chunk_size=CHUNK_SIZE))
    return Exchange(request, response, source)


def stream_exchange() -> Exchange:
    text = (LOREM * (STREAM_TEXT_LENGTH // len(LOREM) + 1))[:STREAM_TEXT_LENGTH]
    exchange = synthesized(chat_request("Tell me about replay.", stream=True), text, "stream")
    events = len(DIALECT.framing.frames(exchange.response.body))
    if events != STREAM_EVENTS:
        # The synthesizer changed how it cuts text; the figures would not compare.
        raise RuntimeError(f"expected a {STREAM_EVENTS}-event stream, synthesized {events}")
    return exchange


def json_exchange() -> Exchange:
    request = chat_request("Say hello.", stream=False)
    return synthesized(request, "Hello! How can I help you today?", "json")


def served(exchange: Exchange) -> Entry:
    """What Tapedeck serves for ``exchange``: its headers and its events (frames)."""
    entry = prepare(exchange)
    if entry is None:
        raise RuntimeError(f"no dialect serves {exchange.request.summary()}")
    return entry


# --------------------------------------------------------------------------- sized cassettes


def _size_template() -> Exchange:
    request = chat_request(f"Benchmark question {MARKER}: what is next?", stream=False)
    exchange = synthesized(request, f"Benchmark answer {MARKER}.", "size")
    # Small interactions: the measure is the index, and 100,000 recordings of a dozen
    # rate-limit headers would only make the file slower to parse.
    response = replace(exchange.response, headers=exchange.response.headers[:1])
    return replace(exchange, response=response)


def size_exchange(template: Exchange, index: int) -> Exchange:
    stamp = f"{index:06d}"
    body = template.request.body.replace(MARKER.encode(), stamp.encode())
    request = replace(template.request, body=body, json=json.loads(body))
    response = replace(
        template.response, body=template.response.body.replace(MARKER.encode(), stamp.encode())
    )
    return Exchange(request, response, f"size#{index}")


def size_exchanges(count: int) -> Iterator[Exchange]:
    template = _size_template()
    return (size_exchange(template, index) for index in range(count))


@dataclass(frozen=True, slots=True)
class SizedCassette:
    path: Path
    interactions: int
    format: str  # "yaml" or "json"
    written_by: str  # how, in words, for the report
    write_seconds: float
    file_bytes: int


def write_size_cassette(count: int, folder: Path, fmt: str) -> SizedCassette:
    """A cassette of ``count`` distinct interactions, as YAML or as vcrpy's JSON layout."""
    started = time.perf_counter()
    path = folder / f"size-{count}.{fmt}"
    if fmt == "yaml" and count <= DUMP_LIMIT:
        cassettes.dump(list(size_exchanges(count)), path)
        how = "cassettes.dump"
    else:
        path.write_text(_stamped(count, fmt))
        how = f"stamped from a cassettes.dumps template (first {CHECKED_PREFIX} checked)"
    return SizedCassette(path, count, fmt, how, time.perf_counter() - started, path.stat().st_size)


def _stamped(count: int, fmt: str) -> str:
    """The cassette text, one interaction written by ``cassettes.dumps`` with a marker and
    copied ``count`` times with the index in place of the marker: seconds instead of the
    minutes PyYAML needs, and checked against the real writer below."""
    template = cassettes.dumps([_size_template()])
    head, tail = "interactions:\n", "version: 1\n"
    if not (template.startswith(head) and template.endswith(tail)):
        raise RuntimeError("cassettes.dumps changed its layout; update the stamping")
    item = template[len(head) : -len(tail)]

    def text(n: int) -> str:
        if fmt == "yaml":
            return head + "".join(item.replace(MARKER, f"{i:06d}") for i in range(n)) + tail
        # vcrpy's JSON serializer: the same document, which cassettes.load reads with json
        # (about 30x faster than YAML for a file this size).
        raw = json.dumps(yaml.safe_load(template)["interactions"][0])
        items = ",\n".join(raw.replace(MARKER, f"{i:06d}") for i in range(n))
        return '{"interactions": [\n' + items + '\n], "version": 1}\n'

    checked = min(count, CHECKED_PREFIX)
    _check_stamped(text(checked), fmt, checked)
    return text(count)


def _check_stamped(text: str, fmt: str, count: int) -> None:
    """The stamped text must load as the exchanges the real writer would have written."""
    expected = list(size_exchanges(count))
    if fmt == "yaml" and text != cassettes.dumps(expected):
        raise RuntimeError("the stamped YAML differs from cassettes.dumps")
    loaded = cassettes.loads(text, "stamped")
    reference = cassettes.loads(cassettes.dumps(expected), "dumped")
    pairs = [(e.request, e.response) for e in loaded]
    if pairs != [(e.request, e.response) for e in reference]:
        raise RuntimeError(f"the stamped {fmt} cassette does not load as the dumped one")


def spread(count: int, samples: int) -> list[int]:
    """``samples`` indices from first to last, evenly spaced (beginning, middle, end)."""
    if count <= samples:
        return list(range(count))
    return sorted({round(k * (count - 1) / (samples - 1)) for k in range(samples)})


def size_items(indices: Sequence[int]) -> list[tuple[bytes, bytes]]:
    """(request body, expected response body) of the sized interactions at ``indices``."""
    template = _size_template()
    return [
        (exchange.request.body, exchange.response.body)
        for exchange in (size_exchange(template, index) for index in indices)
    ]
