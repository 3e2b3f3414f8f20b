"""The comparison at the heart of a conformance run: what the client got from the proxy
against the client protocol's rules and against what the upstream sent.

Rule ids come from two places (both listed in ``report``): the dialect's own
rules (``checks.validate`` on what the client got; verdict ``fail`` unless
``PROTOCOL_VERDICTS`` says otherwise) and the differential rules in ``RULES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mockserver.conformance.report import PROTOCOL_VERDICTS, RULES, Finding
from mockserver.conformance.scenarios import Scenario
from mockserver.conformance.upstream import Sent
from mockserver.dialects import dialect
from mockserver.dialects._kit.summary import Key, Summary
from mockserver.model import Event, header
from mockserver.validation import validate

if TYPE_CHECKING:
    from mockserver.conformance.client import Downstream

BUFFERED = 0.5
"""Share of the upstream's span after which a first arrival means the proxy buffered."""

_END_KEYS: dict[str, Key] = {"done-missing": ("done",), "usage-chunk-missing": ("usage",)}


NOISE = ("id", "object", "created", "model", "service_tier", "system_fingerprint", "obfuscation")
"""Fields left out of evidence: the same on every chunk, and other findings report them."""
SHOWN_WHOLE = frozenset(
    {"model-rewritten", "id-rewritten", "chunk-identity-changed", "object-not-chunk"}
)


def summarize(name: str, events: Sequence[Event]) -> Summary | None:
    """What a stream of that protocol says, or None for a protocol without a summarizer."""
    protocol = dialect(name).conformance
    return protocol.summarize(events) if protocol else None


def summarize_body(name: str, body: bytes) -> Summary | None:
    """What a non-streamed answer says, where the protocol can tell."""
    protocol = dialect(name).conformance
    return protocol.summarize_body(body) if protocol and protocol.summarize_body else None


def _show(
    events: Sequence[Event], times: Sequence[float], i: int | None, t0: float, strip: bool
) -> str:
    if i is None or not events:
        return ""
    i = i if 0 <= i < len(events) else len(events) - 1
    when = f" @{times[i] - t0:+.3f}s" if i < len(times) else ""
    event = events[i]
    raw = event.raw.decode("utf-8", "replace").strip()
    try:
        value = json.loads(event.data or "")
    except ValueError:
        value = None
    if strip and isinstance(value, dict) and any(k in value for k in NOISE):
        kept = {k: v for k, v in value.items() if k not in NOISE}
        raw = f"data: {json.dumps(kept, ensure_ascii=False)}  (id, model... left out)"
    return f"event {i}{when}: {raw[:300] + '...' if len(raw) > 300 else raw}"


def _short(text: str, at: int) -> str:
    return repr(text[max(0, at - 10) : at + 20])


def compare(scenario: Scenario, down: Downstream, sents: Sequence[Sent]) -> list[Finding]:
    """Every finding for one scenario (empty: the proxy passed it)."""
    found: list[Finding] = []
    up = sents[-1] if sents else None
    up_events = (
        list(dialect(up.dialect).framing_for(up.request).events(up.body))
        if up and up.streaming
        else []
    )
    t0 = up.times[0] if up and up.times else (down.times[0] if down.times else 0.0)

    def add(
        rule: str,
        message: str,
        d: int | None = None,
        u: int | None = None,
        verdict: str | None = None,
    ) -> None:
        verdict = verdict or RULES.get(rule, ("fail", ""))[0]
        strip = rule not in SHOWN_WHOLE
        up_text = _show(up_events, up.times if up else [], u, t0, strip)
        down_text = _show(down.events, down.times, d, t0, strip)
        found.append(Finding(scenario.label, rule, verdict, message, down_text, up_text))

    if down.status != 200:
        body = down.body[:300].decode("utf-8", "replace")
        asked = "the upstream was asked" if sents else "the upstream was never asked"
        add("proxy-http-error", f"expected 200, found {down.status} ({asked}): {body}")
        return found
    if not sents:
        add("upstream-not-reached", "expected the request at the upstream, found none")
    elif len(sents) > 1:
        add("upstream-retried", f"the upstream got this request {len(sents)} times")
    framing = dialect(scenario.dialect).framing
    content_type = header(down.headers, "content-type") or ""
    if not content_type.lower().startswith(framing.content_type):
        add("content-type", f"expected {framing.content_type}, found {content_type!r}")
    mine = summarize(scenario.dialect, down.events)
    theirs = summarize(up.dialect, up_events) if up and up.streaming else None
    if up and not up.streaming:
        add("upstream-not-streamed", "expected a streamed upstream call, found a plain one")
        theirs = summarize_body(up.dialect, up.body)
    counterpart = _counterpart(mine, theirs, same=up is not None and up.dialect == scenario.dialect)
    violations = validate(scenario.dialect, down.events, down.request)
    if down.broken:
        violations = [v for v in violations if v.index >= 0]  # its end is the breakage
        verdict = "info" if scenario.error_after is not None else None
        add(
            "stream-broken",
            f"expected a clean end, found {down.broken}",
            len(down.events) - 1,
            verdict=verdict,
        )
    for v in violations:
        key = _END_KEYS.get(v.rule)
        u = theirs.where(key) if key and theirs else counterpart(v.index)
        add(v.rule, v.message, v.index, u, PROTOCOL_VERDICTS.get(v.rule, "fail"))
    if mine is None or theirs is None or up is None:
        return found
    _semantics(scenario, mine, theirs, up, add)
    if scenario.gap and up.streaming:
        _liveness(down, up, add)
    return found


Add = Callable[..., None]


def _counterpart(
    mine: Summary | None, theirs: Summary | None, same: bool
) -> Callable[[int], int | None]:
    def find(i: int) -> int | None:
        if mine is None or theirs is None or not 0 <= i < len(mine.keys):
            return None
        at = theirs.where(mine.keys[i])
        return at if at is not None or not same else (i if i < len(theirs.keys) else None)

    return find


def _semantics(
    scenario: Scenario,
    mine: Summary,
    theirs: Summary,
    up: Sent,
    add: Add,
) -> None:
    for n in sorted(set(theirs.texts) | set(mine.texts)):
        want, got = theirs.texts.get(n, ""), mine.texts.get(n, "")
        if want == got:
            continue
        ours, upstream = mine.fragments.get(n, []), theirs.fragments.get(n, [])
        if sorted(ours) == sorted(upstream):
            k = next(k for k, (a, b) in enumerate(zip(ours, upstream, strict=True)) if a != b)
            add(
                "content-reordered",
                f"expected fragment {k} of choice {n} to be {upstream[k]!r}, found {ours[k]!r}",
                mine.at[n][k],
                theirs.at[n][k],
            )
            continue
        p = _parting(want, got)
        add(
            "text-mismatch",
            f"expected choice {n} to read {_short(want, p)} at character "
            f"{p}, found {_short(got, p)} ({len(got)} of {len(want)} characters)",
            _event_at(ours, mine.at.get(n, []), p),
            _event_at(upstream, theirs.at.get(n, []), p),
        )
    for key in sorted(set(theirs.calls) | set(mine.calls)):
        want_call, got_call = theirs.calls.get(key), mine.calls.get(key)
        where = f"tool call {key[1]} of choice {key[0]}"
        if want_call is None or got_call is None:
            add(
                "tool-call-mismatch",
                f"expected {where} {'absent' if want_call is None else 'present'}, "
                "found the opposite",
            )
            continue
        want_args, got_args = want_call.arguments, got_call.arguments
        if want_call.name != got_call.name or not _same_json(want_args, got_args):
            add(
                "tool-call-mismatch",
                f"expected {where} {want_call.name}({want_args}), "
                f"found {got_call.name}({got_args})",
                _event_at(got_call.fragments, got_call.at, p := _parting(want_args, got_args)),
                _event_at(want_call.fragments, want_call.at, p),
            )
        if want_call.id != got_call.id:
            add(
                "tool-call-id-rewritten",
                f"expected {where} id {want_call.id!r}, found {got_call.id!r}",
            )
    for n, reason in sorted(theirs.finishes.items()):
        got_reason = mine.finishes.get(n)
        if reason is not None and got_reason is not None and got_reason != reason:
            add(
                "finish-reason-mismatch",
                f"expected choice {n} to finish with {reason!r}, found {got_reason!r}",
                mine.where(("finish", n)),
                theirs.where(("finish", n)),
            )
    if theirs.usage and mine.usage and theirs.usage != mine.usage:
        add(
            "usage-mismatch",
            f"expected usage (input, output, total) = {theirs.usage}, found {mine.usage}",
            mine.where(("usage",)),
            theirs.where(("usage",)),
        )
    elif mine.usage and any(mine.usage) and not theirs.usage:  # zeros: a placeholder
        add(
            "usage-invented",
            f"expected no usage (the upstream sent none), found {mine.usage}",
            mine.where(("usage",)),
        )
    if theirs.model and mine.model and theirs.model != mine.model:
        add("model-rewritten", f"expected model {theirs.model!r}, found {mine.model!r}", 0, 0)
    if theirs.ids and mine.ids and theirs.ids != mine.ids:
        ids = f"expected id {_brief(sorted(theirs.ids))}, found {_brief(sorted(mine.ids))}"
        add("id-rewritten", ids, 0, 0)
    if up.dialect != scenario.dialect:
        add("upstream-translated", f"the proxy asked its upstream in {up.dialect}")
    if scenario.error_after is not None and not mine.error:
        add(
            "midstream-error-swallowed",
            "expected the upstream's error to reach the client, found a stream without one",
            len(mine.keys) - 1,
            theirs.where(("error",)),
        )
    if up.dialect != scenario.dialect:
        return
    # usage has rules of its own (usage-null-missing...), obfuscation is random padding.
    added = sorted(mine.fields - theirs.fields - {"obfuscation", "usage"})
    dropped = sorted(theirs.fields - mine.fields - {"obfuscation", "usage"})
    if mine.fields and theirs.fields and (added or dropped):
        add(
            "chunk-fields-changed",
            f"expected the upstream's fields, found {added} added and {dropped} removed",
        )
    sent, forwarded = (
        scenario.body(""),
        up.request.json if isinstance(up.request.json, dict) else {},
    )
    changed = sorted(
        k for k in set(sent) | set(forwarded) if k != "model" and sent.get(k) != forwarded.get(k)
    )
    if changed:
        detail = "; ".join(
            f"{k}: {_brief(sent.get(k))} -> {_brief(forwarded.get(k))}" for k in changed
        )
        add("upstream-request-changed", f"forwarded body differs: {detail}")


def _brief(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _same_json(a: str, b: str) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return a == b


def _event_at(fragments: Sequence[str], at: Sequence[int], position: int) -> int | None:
    """The event holding character ``position`` of the text these fragments make."""
    seen = 0
    for fragment, event in zip(fragments, at, strict=True):
        seen += len(fragment)
        if seen > position:
            return event
    return at[-1] if at else None


def _parting(want: str, got: str) -> int:
    """The first character position where two texts differ."""
    return next(
        (p for p, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
        min(len(want), len(got)),
    )


def _liveness(down: Downstream, up: Sent, add: Add) -> None:
    data = [i for i, e in enumerate(down.events) if e.data is not None]
    if not data or len(up.times) < 2:
        return
    span = up.times[-1] - up.times[0]
    first, last = down.times[data[0]], down.times[data[-1]]
    if first >= up.times[0] + BUFFERED * span:
        add(
            "stream-buffered",
            f"expected the first event while the upstream was still "
            f"sending ({span:.2f}s), found it {first - up.times[0]:.2f}s after the upstream's "
            "first event",
            data[0],
            0,
        )
    elif last - first < BUFFERED * span:
        add(
            "gaps-collapsed",
            f"expected events spread over about {span:.2f}s like the "
            f"upstream's, found {last - first:.2f}s",
            data[-1],
            len(up.times) - 1,
        )
