"""Why a request missed: the nearest recordings and the fields that differed.

    Player.next (no recording left for the key) -> explain_miss -> NoMatchingExchange

What the pytest plugin fails the test with at teardown, and (through ``for_clients``) what
a client is told in the provider's error shape. Reads the index only; a miss must stay
cheap whatever its size.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Sequence

from mockserver.index import Key, Library
from mockserver.model import Identity, Request
from mockserver.redaction import redact_text


def _short(value: str | None, limit: int = 120) -> str:
    if value is None:
        return "(absent)"
    return value if len(value) <= limit else value[: limit - 3] + "..."


def differences(recorded: Identity, got: Identity) -> list[str]:
    """One line per field that differs between two identities: recorded vs got."""
    left, right = dict(recorded), dict(got)
    lines = []
    for name in sorted(left.keys() | right.keys()):
        if left.get(name) != right.get(name):
            lines.append(
                f"{name}: recorded {_short(left.get(name))}, got {_short(right.get(name))}"
            )
    return lines


SHORTLIST = 50
"""How many recordings, fewest differing fields first, are ranked by similarity."""
WINDOW = 1_000
"""Characters compared at each end of a value: difflib's time grows with the square of
its input, and a miss must answer in milliseconds whatever the size of the body."""


def _window(value: str) -> str:
    return value if len(value) <= 2 * WINDOW else value[:WINDOW] + value[-WINDOW:]


def nearest(
    library: Library, key: Key, candidates: Sequence[int], count: int = 3
) -> list[tuple[list[str], int]]:
    """The ``count`` recordings closest to ``key``: fewest differing fields first, then,
    among the first SHORTLIST, the most similar values (their ends: see WINDOW)."""
    got_pairs = frozenset(key[3])
    got = {name: _window(value) for name, value in key[3]}

    def changed(position: int) -> set[str]:
        return {name for name, _ in got_pairs.symmetric_difference(library.key_at(position)[3])}

    def distance(position: int) -> float:
        recorded = dict(library.key_at(position)[3])
        names = changed(position)
        similar = sum(
            difflib.SequenceMatcher(None, _window(recorded.get(n, "")), got.get(n, "")).ratio()
            for n in names
        )
        return len(names) - similar

    shortlist = heapq.nsmallest(
        max(SHORTLIST, count), candidates, key=lambda p: (len(changed(p)), p)
    )
    ranked = sorted(shortlist, key=lambda p: (distance(p), p))[:count]
    return [(differences(library.key_at(p)[3], key[3]), p) for p in ranked]


def explain_miss(library: Library, request: Request, key: Key, played: Sequence[int]) -> str:
    """What a client and a failing test are told: the request, the nearest recordings and
    how each differs, and the way out."""
    named = redact_text(request.summary(), request)  # a ?key= stays out of test logs
    head = f"Tapedeck has no recording for {named} [{key[1]} {key[2]}]."
    if played:
        sources = ", ".join(library.entries[p].source for p in played)
        return (
            f"{head} Identical requests were recorded ({sources}) but every one was already "
            f"played ({len(played)} recorded, request #{len(played) + 1}). Way out: record the "
            "extra call, or allow repeats (marker allow_repeats=True)."
        )
    candidates = library.bucket(key)
    if not candidates:
        return (
            f"{head} The loaded cassettes hold no {key[1]} {key[2]} request at all "
            f"({len(library)} served interactions loaded). Way out: record it (record mode "
            "once or new_episodes), or load the cassette that holds it."
        )
    lines = [head, "Nearest recorded requests:"]
    for diffs, position in nearest(library, key, candidates):
        lines.append(f"  {library.entries[position].source} differs in:")
        lines.extend(f"    {line}" for line in diffs)
    lines.append(
        "Way out: record this request (record mode new_episodes), or change it to match a "
        "recording."
    )
    return "\n".join(lines)


# Clients classify an error by searching its text: litellm raises RateLimitError (and
# retries) on "rate limit" anywhere in a 400, Timeout on "timed out", InternalServerError
# on "overloaded". A miss quotes recorded prompts and cassette names, which say exactly
# such things (the bundled error-429 recording asks "This request is rate limited."), so
# in what a client is sent a middle dot splits each phrase that names an error kind.
_ERROR_WORDS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"(rate)[\s_-]*(limit)",
        r"(over)[\s_-]*(load)",
        r"(?<![a-z])(timed?)[\s_-]*(out)(?!put)",
        r"(thrott)(l)",
        r"(quo)(ta)",
        r"(capa)(city)",
        r"(resource)[\s_-]*(exhaust)",
        r"(internal)[\s_-]*(server)",
        r"(?<![a-z])(too)[\s_-]+(long|large|many)",
        r"(context)[\s_-]*(length|limit|window|size)",
    )
)
SPLIT = "\u00b7"
SPLIT_NOTE = (
    f"(A {SPLIT} splits words that clients read as an error kind: this is not such an error.)"
)


def for_clients(explanation: str) -> str:
    """``explanation`` as a client is sent it: every phrase that a client could take for
    an error kind (a rate limit, a timeout, an overload...) split by a middle dot, and a
    note saying so when there was one. The test's own report keeps the text as it is."""
    text = explanation
    for pattern in _ERROR_WORDS:
        text = pattern.sub(lambda m: m[1] + SPLIT + m[2], text)
    return text if text == explanation else f"{text}\n{SPLIT_NOTE}"
