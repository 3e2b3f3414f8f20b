"""Recipes of the bundled Cohere v2 chat cassettes (cassettes/cohere/)."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

ORIGIN = "https://api.cohere.com"
PATH = "/v2/chat"
MODEL = "command-a-03-2025"
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]
CALLS = (
    ToolCall("get_time", '{"location": "Tokyo"}'),
    ToolCall("get_weather", '{"location": "Tokyo"}'),
)


def _chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "cohere/stream-text.yaml",
        PATH,
        _chat("Tell me a joke, pirate style.", stream=True),
        Script(text="Why did the pirate go to school? To improve his arrrticulation!", seed=21),
        ORIGIN,
    ),
    Recipe(
        "cohere/stream-tool-calls.yaml",
        PATH,
        _chat("What is the weather and the time in Tokyo?", tools=WEATHER_TOOLS, stream=True),
        Script(
            text="I will look up the time and the weather in Tokyo.",
            tool_calls=CALLS,
            chunk_size=5,
            seed=22,
        ),
        ORIGIN,
    ),
    Recipe(
        "cohere/nonstream.yaml",
        PATH,
        _chat("What is the capital of France?"),
        Script(text="The capital of France is Paris.", seed=23),
        ORIGIN,
    ),
    Recipe(
        "cohere/nonstream-tool-calls.yaml",
        PATH,
        _chat("What is the weather in Tokyo?", tools=WEATHER_TOOLS),
        Script(
            text="I will look up the weather in Tokyo.",
            tool_calls=(CALLS[1],),
            seed=24,
        ),
        ORIGIN,
    ),
    Recipe(
        "cohere/stream-midstream-error.yaml",
        PATH,
        _chat("Tell me a long story.", stream=True),
        Script(
            text="Once upon a time, in a land far away, there lived a dragon.",
            error_kind="error",
            error_message="An internal error occurred while generating the response.",
            chunk_size=12,
            seed=25,
        ),
        ORIGIN,
    ),
    Recipe(
        "cohere/error-429-rate-limited.yaml",
        PATH,
        _chat("This request meets a rate limit.", stream=True),
        Script(
            status=429,
            error_message="You have hit the rate limit of this API key; try again later.",
            seed=26,
        ),
        ORIGIN,
    ),
)
