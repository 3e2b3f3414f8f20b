"""Cassettes made by the synthesizer: the recipes of the bundled ones, and the function
behind ``tapedeck synth``.

Sits beside the CLI at the end of the flow: it routes a request to its dialect, asks the
dialect to synthesize the answer, and writes the exchange with the cassette writer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockserver import cassettes
from mockserver.dialects import resolve
from mockserver.errors import TapedeckError
from mockserver.model import Exchange, Request, Script, ToolCall

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]


def _chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}


@dataclass(frozen=True)
class Recipe:
    """One bundled cassette: where it goes, what was asked, what the answer says."""

    file: str
    path: str
    body: dict[str, Any]
    script: Script
    origin: str = "https://api.openai.com"


USAGE = {"include_usage": True}
BUNDLED: tuple[Recipe, ...] = (
    Recipe(
        "openai_chat/stream-include-usage.yaml",
        "/v1/chat/completions",
        _chat("Say hello in five words.", stream=True, stream_options=USAGE),
        Script(text="Hello there, how are you?", seed=1),
    ),
    Recipe(
        "openai_chat/stream-no-usage.yaml",
        "/v1/chat/completions",
        _chat("Name three primary colours.", stream=True),
        Script(text="Red, yellow and blue — the three primary colours. 🎨", seed=2),
    ),
    Recipe(
        "openai_chat/stream-parallel-tool-calls.yaml",
        "/v1/chat/completions",
        _chat(
            "What is the weather and the time in Paris?",
            stream=True,
            stream_options=USAGE,
            tools=WEATHER_TOOLS,
            tool_choice="auto",
        ),
        Script(
            tool_calls=(
                ToolCall("get_weather", '{"city": "Paris", "unit": "celsius"}'),
                ToolCall("get_time", '{"city": "Paris"}'),
            ),
            chunk_size=3,
            seed=3,
        ),
    ),
    Recipe(
        "openai_chat/stream-n2.yaml",
        "/v1/chat/completions",
        _chat("Give me a one-word mood.", stream=True, stream_options=USAGE, n=2),
        Script(text="Serene.", chunk_size=2, seed=4),
    ),
    Recipe(
        "openai_chat/nonstream.yaml",
        "/v1/chat/completions",
        _chat("What is the capital of France?"),
        Script(text="The capital of France is Paris.", seed=5),
    ),
    Recipe(
        "openai_chat/error-429.yaml",
        "/v1/chat/completions",
        _chat("This request is rate limited.", stream=True),
        Script(
            status=429,
            error_kind="requests",
            error_message=(
                "Rate limit reached for gpt-4o-mini in organization org-tapedeck on requests "
                "per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."
            ),
            headers=(("retry-after", "20"),),
            seed=6,
        ),
    ),
)


def synthesize(path: str, body: dict[str, Any], script: Script, origin: str = "") -> Exchange:
    """The exchange a dialect synthesizes for a POST of ``body`` to ``path``."""
    match = resolve("POST", path)
    if match is None:
        raise TapedeckError(f"no dialect serves POST {path}; see README 'Base URLs'")
    raw = json.dumps(body).encode()
    request = Request("POST", path, body=raw, json=body, origin=origin)
    response = match.dialect.synthesize(request, script)
    return Exchange(request, response)


def write_bundled(
    folder: str | os.PathLike[str], recipes: Sequence[Recipe] = BUNDLED
) -> list[Path]:
    """Write every bundled cassette under ``folder``; returns the files written."""
    written = []
    for recipe in recipes:
        target = Path(folder) / recipe.file
        target.parent.mkdir(parents=True, exist_ok=True)
        exchange = synthesize(recipe.path, recipe.body, recipe.script, recipe.origin)
        cassettes.dump([exchange], target)
        written.append(target)
    return written
