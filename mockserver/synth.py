"""Cassettes made by the synthesizer: what a recipe is, and the functions behind
``tapedeck synth`` (the bundled recipes are data, in each dialect folder's ``recipes``).

Sits beside the CLI at the end of the flow: it routes a request to its dialect, asks the
dialect to synthesize the answer, and writes the exchange with the cassette writer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from mockserver import cassettes
from mockserver.dialects import RECIPES, Recipe, resolve
from mockserver.errors import TapedeckError
from mockserver.model import Exchange, Request, Script


def synthesize(
    path: str, body: dict[str, Any], script: Script, origin: str = "", method: str = "POST"
) -> Exchange:
    """The exchange a dialect synthesizes for a request of ``body`` to ``path`` (a GET
    sends no body). A query in ``path`` (Gemini's ``?alt=sse``) becomes the request's."""
    path, _, query = path.partition("?")
    match = resolve(method, path)
    if match is None:
        raise TapedeckError(f"no dialect serves {method} {path}; see README 'Base URLs'")
    raw = b"" if method == "GET" else json.dumps(body).encode()
    params = tuple(parse_qsl(query, keep_blank_values=True))
    request = Request(method, path, params, body=raw, json=body if raw else None, origin=origin)
    response = match.dialect.synthesize(request, script)
    return Exchange(request, response)


def write_bundled(
    folder: str | os.PathLike[str], recipes: Sequence[Recipe] | None = None
) -> list[Path]:
    """Write every bundled cassette (or ``recipes``) under ``folder``; returns the files."""

    written = []
    for recipe in RECIPES if recipes is None else recipes:
        target = Path(folder) / recipe.file
        target.parent.mkdir(parents=True, exist_ok=True)
        exchange = synthesize(recipe.path, recipe.body, recipe.script, recipe.origin, recipe.method)
        cassettes.dump([exchange], target)
        written.append(target)
    return written
