"""What every dialect promises, checked the same way for all of them: a dialect added to the
registry (``DIALECTS``) is covered here without a line of its own.

Routes resolve to their dialect; errors are JSON; rule ids are stable and described; each
rule has a shipped mutation that breaks it and only it; synthesis is deterministic for a
seed and passes the dialect's own rules; ``check`` never raises, whatever it is fed, and
speaks only in the dialect's rule ids (plus the generic ones of ``validate``).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.dialects import DIALECTS, ROUTER, sdk_environment
from mockserver.model import Event, Request, Script, Violation
from mockserver.validation import GENERIC_RULES, validate
from pytest_plugin.strategies import Mutation, knobs, mutated_streams, mutations, streams

NAMES = sorted(DIALECTS)
STREAMING = [name for name in NAMES if knobs(name).streams]
MUTATIONS = [(name, m) for name in NAMES for m in mutations(name)]

# Budgets, as shares of the profile's examples: ~200 mutations draw a stream each per
# example (a fifth: 20 in ci, 10 in dev); synthesis a half; check() on anything gets all.
FEW = settings(max_examples=max(5, settings().max_examples // 5))
SOME = settings(max_examples=max(10, settings().max_examples // 2))


def concrete(pattern: str) -> str:
    """A path the pattern matches: ``{name}`` -> one segment, ``{name*}`` -> a prefix."""
    path = re.sub(r"\{\w+\*\}", "/some/prefix", pattern)
    return re.sub(r"\{(\w+)\}", r"\1-x", path)


@pytest.mark.parametrize("name", NAMES)
def test_every_route_resolves_to_its_dialect(name: str) -> None:
    dialect = DIALECTS[name]
    assert dialect.routes
    for route in dialect.routes:
        match = ROUTER.resolve(route.method, concrete(route.pattern))
        assert match is not None and match.dialect is dialect, route


@pytest.mark.parametrize("name", NAMES)
def test_errors_are_json_with_the_status_asked(name: str) -> None:
    for status in (400, 404, 429, 500):
        response = DIALECTS[name].error(status, "Something went wrong.", "invalid_request_error")
        assert response.status == status
        assert "Something went wrong." in json.dumps(json.loads(response.body))


@pytest.mark.parametrize("name", NAMES)
def test_the_environment_names_the_server(name: str) -> None:
    environment = DIALECTS[name].environment
    assert any("{url}" in value for _, value in environment)
    assert set(dict(environment)) <= set(sdk_environment("http://127.0.0.1:1"))


# --- rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_rules_have_kebab_case_ids_and_say_what_they_require(name: str) -> None:
    for rule, requires in DIALECTS[name].rules.requirements().items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule), rule
        # A sentence a report can print: "Nothing follows message_stop." at the least.
        assert len(requires.split()) >= 3 and len(requires) > 15, (rule, requires)
        assert requires.rstrip(")").endswith("."), (rule, requires)
    assert not set(DIALECTS[name].rules) & set(GENERIC_RULES)


@pytest.mark.parametrize("name", NAMES)
def test_every_rule_has_a_shipped_mutation(name: str) -> None:
    rules = set(DIALECTS[name].rules)
    targeted = [m.rule for m in mutations(name)]
    untargeted = sorted(rules - set(targeted))
    assert not untargeted, (
        f"{len(untargeted)} of {len(rules)} rules of {name} have no mutation that breaks "
        f"them: {untargeted}; add them to the dialect's knobs (Dialect.knobs, knobs.py in its "
        "folder) so that the contract test below can prove the rule fires"
    )
    assert set(targeted) <= rules, f"mutations of {name} target unknown rules"
    names = [m.name for m in mutations(name)]
    assert len(set(names)) == len(names), f"mutation names of {name} repeat: {names}"


@pytest.mark.parametrize(
    ("name", "mutation"), MUTATIONS, ids=[f"{n}:{m.name}" for n, m in MUTATIONS]
)
@FEW
@given(data=st.data())
def test_each_mutation_breaks_its_rule_and_only_it(
    name: str, mutation: Mutation, data: st.DataObject
) -> None:
    broken = data.draw(mutated_streams(name, mutation))
    assert broken.base is not None and broken.base.violations() == []
    assert broken.body != broken.base.body
    assert [v.rule for v in broken.violations()] == [mutation.rule]


# --- synthesis --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_synthesis_is_deterministic_for_a_seed(name: str) -> None:
    # Every dialect, the non-streaming ones too: the first POST route with a body that
    # names every protocol's prompt field.
    dialect = DIALECTS[name]
    route = next(r for r in dialect.routes if r.method == "POST")
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "input": "hi",
        "prompt": "hi",
        "max_tokens": 16,
        "contents": [{"parts": [{"text": "hi"}]}],
    }
    path = concrete(route.pattern)
    request = Request("POST", path, body=json.dumps(body).encode(), json=body)
    first = dialect.synthesize(request, Script(text="same words", seed=5))
    again = dialect.synthesize(request, Script(text="same words", seed=5))
    assert first.status == 200
    assert first.body == again.body


@pytest.mark.parametrize("name", STREAMING)
@SOME
@given(data=st.data())
def test_synthesized_streams_are_deterministic_and_pass_their_own_rules(
    name: str, data: st.DataObject
) -> None:
    stream = data.draw(streams(name, vary=False, split=False))
    again = DIALECTS[name].synthesize(stream.request, stream.script)
    assert again.status == 200
    assert again.body == stream.body
    assert stream.violations() == []


# --- check on anything ------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def damaged(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one thing changed somewhere inside: a member dropped or replaced by
    any JSON (its keys kept, so the checker gets past its first lookups)."""
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(value)))
        changed = dict(value)
        match draw(st.integers(0, 2)):
            case 0:
                del changed[key]
            case 1:
                changed[key] = draw(JSON)
            case _:
                changed[key] = damaged(draw, value[key])
        return changed
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        at = draw(st.integers(0, len(value) - 1))
        return [*value[:at], damaged(draw, value[at]), *value[at + 1 :]]
    return draw(JSON)


def parsed(data: str | None) -> dict[str, Any] | list[Any] | None:
    """The JSON object or array an event carries, if it carries one."""
    try:
        value = json.loads(data or "")
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


@st.composite
def fed_events(draw: st.DrawFn, name: str) -> tuple[Request | None, list[Event]]:
    """Events a checker may meet: a valid stream's events with their JSON damaged, events
    dropped, repeated and moved; or events of any JSON at all."""
    if name not in STREAMING or not draw(st.integers(0, 4)):
        kinds = st.none() | st.text(max_size=12)
        payloads = st.none() | st.text(max_size=12) | JSON.map(json.dumps)
        return None, draw(st.lists(st.builds(Event, data=payloads, event=kinds), max_size=12))
    stream = draw(streams(name, split=False))
    events = list(stream.events)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(events) - 1))
        event = events[at]
        match draw(st.integers(0, 4)):
            case 0:
                del events[at]
            case 1:
                events.insert(draw(st.integers(0, len(events))), event)
            case 2:
                events.insert(draw(st.integers(0, len(events))), events.pop(at))
            case _ if parsed(event.data) is not None:
                data = json.dumps(damaged(draw, parsed(event.data)))
                events[at] = replace(event, data=data)
            case _:
                events[at] = replace(event, data=draw(st.none() | st.text(max_size=12)))
        if not events:
            break
    return draw(st.sampled_from([None, stream.request])), events


@st.composite
def fed_bodies(draw: st.DrawFn, name: str) -> tuple[Request | None, bytes]:
    """Bytes a framing may meet: any at all, or a valid stream's bytes cut short and with
    stretches replaced by any bytes (inside a frame, a header, a length prefix...)."""
    if name not in STREAMING or not draw(st.integers(0, 4)):
        return None, draw(st.binary(max_size=512))
    stream = draw(streams(name, split=False))
    body = stream.body
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=8)) + body[at + draw(st.integers(0, 16)) :]
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return draw(st.sampled_from([None, stream.request])), body


def assert_reported_well(name: str, violations: list[Violation], events: int) -> None:
    allowed = set(DIALECTS[name].rules) | set(GENERIC_RULES)
    rules = [v.rule for v in violations]
    assert set(rules) <= allowed, sorted(set(rules) - allowed)
    assert len(set(rules)) == len(rules), rules  # one violation per rule, counting the rest
    for violation in violations:
        assert -1 <= violation.index < max(events, 1), violation
        # The dialects' sentences (one_per_rule) end with a full stop; validate's own
        # stream-empty reads "expected at least one event, found an empty body".
        assert violation.rule in GENERIC_RULES or violation.message.endswith("."), violation


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_check_never_raises_on_any_events(name: str, data: st.DataObject) -> None:
    request, events = data.draw(fed_events(name))
    assert_reported_well(name, DIALECTS[name].check(request, events), len(events))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_validate_never_raises_on_any_bytes(name: str, data: st.DataObject) -> None:
    request, body = data.draw(fed_bodies(name))
    events = DIALECTS[name].framing_for(request).events(body)
    assert_reported_well(name, validate(name, body, request), len(events))
