"""Recipes of the bundled Anthropic Messages cassettes (cassettes/anthropic/)."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

ORIGIN = "https://api.anthropic.com"
MODEL = "claude-sonnet-4-6"  # not deprecated: the SDK warns on those
WEATHER_TOOLS = [
    {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]


def _messages(content: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
        **fields,
    }


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "anthropic/stream-text.yaml",
        "/v1/messages",
        _messages("Say hello in five words.", stream=True),
        Script(text="Hello there, how are you?", seed=11),
        ORIGIN,
    ),
    Recipe(
        "anthropic/nonstream.yaml",
        "/v1/messages",
        _messages("What is the capital of France?", system="Answer in one sentence."),
        Script(text="The capital of France is Paris.", seed=12),
        ORIGIN,
    ),
    Recipe(
        "anthropic/stream-tool-use.yaml",
        "/v1/messages",
        _messages(
            "What is the weather and the time in Paris?",
            stream=True,
            tools=WEATHER_TOOLS,
        ),
        Script(
            text="I'll look up both for you.",
            tool_calls=(
                ToolCall("get_weather", '{"city": "Paris", "unit": "celsius"}'),
                ToolCall("get_time", '{"city": "Paris"}'),
            ),
            chunk_size=5,
            seed=13,
        ),
        ORIGIN,
    ),
    Recipe(
        "anthropic/stream-thinking.yaml",
        "/v1/messages",
        _messages(
            "Is 1021 a prime number?",
            max_tokens=4096,
            stream=True,
            thinking={"type": "enabled", "budget_tokens": 2048},
        ),
        Script(text="Yes, 1021 is prime. 🧮", chunk_size=6, seed=14),
        ORIGIN,
    ),
    Recipe(
        "anthropic/count-tokens.yaml",
        "/v1/messages/count_tokens",
        {"model": MODEL, "messages": [{"role": "user", "content": "How many tokens is this?"}]},
        Script(seed=15),
        ORIGIN,
    ),
    Recipe(
        "anthropic/stream-midstream-overloaded.yaml",
        "/v1/messages",
        _messages("Tell me a long story.", stream=True),
        Script(
            text="Once upon a time, in a land far away, there lived a dragon.",
            error_kind="overloaded_error",
            error_message="Overloaded",
            chunk_size=12,
            seed=16,
        ),
        ORIGIN,
    ),
    Recipe(
        "anthropic/error-529-overloaded.yaml",
        "/v1/messages",
        _messages("This request meets an overloaded API.", stream=True),
        Script(status=529, error_message="Overloaded", seed=17),
        ORIGIN,
    ),
)
