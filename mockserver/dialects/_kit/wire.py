"""What every protocol's answers are built from, whoever speaks it: evidence in messages,
compact JSON, ids and timestamps fixed by a seed, text cut into pieces, script headers,
and the ``<think>…</think>`` reasoning convention of ``Script.text``.

What it must never do: change a byte it makes. Bundled cassettes and tests pin the
synthesized bytes, so an id alphabet or a JSON separator changed here changes every
recording that uses it.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

from mockserver.model import Headers, Response

DEFAULT_TEXT = "This is a synthesized reply from Tapedeck."
"""What a synthesized answer says when its script gives no text and no tool calls."""


def short(value: Any) -> str:
    """A value as evidence in a sentence: JSON text, cut at 60 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text[:60] + "...") if len(text) > 60 else repr(text)


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8. A lone surrogate has no UTF-8 form: such a value is written
    with ASCII escapes, the same JSON value."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def created(rng: random.Random) -> int:
    """A fixed timestamp per seed (late 2023 to mid 2025), so replays are byte-identical."""
    return 1_700_000_000 + rng.randrange(50_000_000)


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut every ``size`` characters. Python strings cut between code points, so
    a piece never holds half a character and every piece encodes to valid UTF-8."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def with_headers(response: Response, extra: Headers) -> Response:
    """``extra`` appended; a default it names again is dropped, so a script replaces
    ``retry-after`` or ``x-request-id`` instead of sending two of them."""
    names = {name.lower() for name, _ in extra}
    kept = tuple(pair for pair in response.headers if pair[0].lower() not in names)
    return Response(response.status, kept + extra, response.body, response.reason)


def split_thinking(text: str | None) -> tuple[str | None, str | None]:
    """(reasoning, answer) of a Script text under the ``<think>…</think>`` convention;
    (None, text) when the text does not open with the tags."""
    if text is not None and text.startswith("<think>") and "</think>" in text:
        reasoning, _, answer = text[len("<think>") :].partition("</think>")
        return reasoning, answer
    return None, text
