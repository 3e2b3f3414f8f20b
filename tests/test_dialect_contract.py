"""What every dialect promises, checked the same way for all of them."""

from __future__ import annotations

import json
import re

import pytest

from mockserver.dialects import DIALECTS, ROUTER, sdk_environment
from mockserver.model import Request, Script

NAMES = sorted(DIALECTS)


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
def test_rules_have_stable_kebab_case_ids_and_descriptions(name: str) -> None:
    for rule, description in DIALECTS[name].rules.requirements().items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule), rule
        assert len(description) > 15, rule


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


@pytest.mark.parametrize("name", NAMES)
def test_synthesis_is_deterministic_for_a_seed(name: str) -> None:
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
