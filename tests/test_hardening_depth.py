"""Once the nesting limit holds, nothing that walks a request can hit Python's recursion
limit: every field of every bundled request, nested as deep as the highest limit a server
may be given, goes through matching (and the miss explanation), identity, synthesis, the
validators, redaction and a cassette round trip, and through a running server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from mockserver import cassettes
from mockserver.app import ServerState
from mockserver.cli import bundled_cassettes
from mockserver.dialects import RECIPES, ROUTER, Recipe
from mockserver.errors import NoMatchingExchange
from mockserver.index import Library
from mockserver.intake import nesting_depth
from mockserver.model import Exchange, Request, Script
from mockserver.player import Player
from mockserver.redaction import redact
from mockserver.server_limits import MAX_DEPTH_CEILING, ServerLimits
from mockserver.server_thread import BackgroundServer
from mockserver.validation import lint_one
from tests import rawhttp
from tests.error_shapes import check_error

Path_ = tuple[str | int, ...]


def deep(levels: int) -> Any:
    """Arrays and objects in turn, ``levels`` deep, a string at the bottom."""
    value: Any = "x"
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def leaves(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def put(value: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    if isinstance(value, dict):
        return {**value, path[0]: put(value[path[0]], path[1:], new)}
    return [put(item, path[1:], new) if i == path[0] else item for i, item in enumerate(value)]


def deepest_variants() -> Iterator[tuple[Recipe, Path_, dict[str, Any]]]:
    """Each bundled request with one leaf replaced by a value that makes the whole body
    exactly ``MAX_DEPTH_CEILING`` deep; one variant per dialect, endpoint and field."""
    seen = set()
    for recipe in RECIPES:
        match = ROUTER.resolve(recipe.method, unquote(urlsplit(recipe.path).path))
        assert match is not None
        for leaf in leaves(recipe.body):
            field = tuple(0 if isinstance(part, int) else part for part in leaf)
            if (match.dialect.name, match.route.endpoint, field) in seen:
                continue
            seen.add((match.dialect.name, match.route.endpoint, field))
            yield recipe, leaf, put(recipe.body, leaf, deep(MAX_DEPTH_CEILING - len(leaf)))


VARIANTS = list(deepest_variants())
BUNDLED = Library.from_paths([bundled_cassettes()])


def request_for(recipe: Recipe, body: dict[str, Any]) -> Request:
    parts = urlsplit(recipe.path)
    raw = json.dumps(body).encode()
    headers = (("content-type", "application/json"),)
    query = tuple(parse_qsl(parts.query))
    return Request(recipe.method, unquote(parts.path), query, headers, raw, body)


def test_the_variants_are_exactly_as_deep_as_the_ceiling() -> None:
    assert len(VARIANTS) > 100
    assert {nesting_depth(json.dumps(body).encode()) for _, _, body in VARIANTS} == {
        MAX_DEPTH_CEILING
    }


def test_every_walk_of_a_request_survives_the_deepest_allowed_nesting(tmp_path: Path) -> None:
    exchanges = []
    for number, (recipe, leaf, body) in enumerate(VARIANTS):
        request = request_for(recipe, body)
        match = ROUTER.resolve(request.method, request.path)
        assert match is not None
        dialect = match.dialect
        try:  # the miss explanation compares texts (difflib): the slow part, so 1 in 2
            if number % 2 == 0:
                Player(BUNDLED).next(request, match)
        except NoMatchingExchange as miss:
            assert "Nearest" in str(miss) or "hold no" in str(miss)
        dialect.identity(request)
        dialect.is_stream(request)
        for script in (Script(), recipe.script):
            response = dialect.synthesize(request, script)
            dialect.check(request, dialect.framing_for(request).events(response.body))
            exchange = Exchange(request, response, f"{recipe.file} {leaf}")
            redacted = redact(exchange)
            lint_one(redacted)
            exchanges.append(redacted)
    cassettes.dump(exchanges, tmp_path / "deep.yaml")
    loaded = cassettes.load(tmp_path / "deep.yaml")
    assert [e.request.json for e in loaded] == [e.request.json for e in exchanges]


@pytest.fixture(scope="module")
def ceiling_server() -> Iterator[BackgroundServer]:
    limits = ServerLimits(max_json_depth=MAX_DEPTH_CEILING)
    with BackgroundServer(ServerState(Player(BUNDLED)), server_limits=limits) as running:
        yield running


@pytest.mark.parametrize("synthesize", [False, True], ids=["replay", "synthesize"])
def test_a_server_at_the_ceiling_answers_the_deepest_requests_without_a_500(
    ceiling_server: BackgroundServer, synthesize: bool
) -> None:
    ceiling_server.state.use(Player(BUNDLED, synthesize=synthesize))
    statuses = set()
    for recipe, leaf, body in VARIANTS[::2]:
        reply = rawhttp.request(ceiling_server.url, recipe.path, body, method=recipe.method)
        assert reply.status < 500, (recipe.file, leaf, reply.body[:300])
        if reply.status >= 400:
            assert check_error(reply, recipe.method, unquote(recipe.path)) is None
        statuses.add(reply.status)
    assert (200 if synthesize else 400) in statuses


def test_one_level_more_is_refused_naming_the_limit(ceiling_server: BackgroundServer) -> None:
    recipe, leaf, _ = VARIANTS[0]
    body = put(recipe.body, leaf, deep(MAX_DEPTH_CEILING - len(leaf) + 1))
    reply = rawhttp.request(ceiling_server.url, recipe.path, body)
    assert reply.status == 400
    assert f"at most {MAX_DEPTH_CEILING}" in reply.body.decode()
