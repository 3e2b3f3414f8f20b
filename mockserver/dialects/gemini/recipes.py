"""Recipes of the bundled Gemini cassettes (cassettes/gemini/).

Bodies are what google-genai sends for the same call (camelCase; the identity takes the
SDK's snake_case spellings as the same request), so the SDK replays them as they are."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

ORIGIN = "https://generativelanguage.googleapis.com"
MODEL = "gemini-2.5-flash"
WEATHER_TOOLS = [
    {
        "functionDeclarations": [
            {
                "description": description,
                "name": name,
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
            for name, description in (
                ("get_weather", "Current weather in a city."),
                ("get_time", "Local time in a city."),
            )
        ]
    }
]


def _ask(text: str, **fields: Any) -> dict[str, Any]:
    return {"contents": [{"parts": [{"text": text}], "role": "user"}], **fields}


def _path(method: str, model: str = MODEL, alt: bool = False) -> str:
    return f"/v1beta/models/{model}:{method}" + ("?alt=sse" if alt else "")


def _recipe(file: str, path: str, body: dict[str, Any], script: Script) -> Recipe:
    return Recipe(f"gemini/{file}", path, body, script, ORIGIN)


THINKING = {"thinkingConfig": {"includeThoughts": True}}
RECIPES: tuple[Recipe, ...] = (
    _recipe(
        "stream-sse.yaml",
        _path("streamGenerateContent", alt=True),
        _ask("Say hello in five words."),
        Script(text="Hello there, how are you?", chunk_size=8, seed=21),
    ),
    _recipe(
        "stream-sse-thinking.yaml",
        _path("streamGenerateContent", alt=True),
        _ask("Is 7 a prime number?", generationConfig=THINKING),
        Script(
            text="<think>7 has no divisors but 1 and itself.</think>Yes, 7 is prime.",
            chunk_size=12,
            seed=22,
        ),
    ),
    _recipe(
        "stream-sse-tool-calls.yaml",
        _path("streamGenerateContent", alt=True),
        _ask("What is the weather and the time in Paris?", tools=WEATHER_TOOLS),
        Script(
            tool_calls=(
                ToolCall("get_weather", '{"city": "Paris"}'),
                ToolCall("get_time", '{"city": "Paris"}'),
            ),
            seed=23,
        ),
    ),
    _recipe(
        "stream-json-array.yaml",
        _path("streamGenerateContent"),
        _ask("Name three primary colours."),
        Script(text="Red, yellow and blue — the three primary colours. 🎨", chunk_size=16, seed=24),
    ),
    _recipe(
        "nonstream.yaml",
        _path("generateContent"),
        _ask("What is the capital of France?"),
        Script(text="The capital of France is Paris.", seed=25),
    ),
    _recipe(
        "count-tokens.yaml",
        _path("countTokens"),
        _ask("How many tokens is this?"),
        Script(prompt_tokens=7, seed=26),
    ),
    _recipe(
        "embeddings.yaml",
        _path("batchEmbedContents", "gemini-embedding-001"),
        {
            "requests": [
                {
                    "content": {"parts": [{"text": text}], "role": "user"},
                    "outputDimensionality": 8,
                    "model": "models/gemini-embedding-001",
                }
                for text in ("Some text", "Other text")
            ]
        },
        Script(seed=27),
    ),
    _recipe(
        "error-429.yaml",
        _path("streamGenerateContent", alt=True),
        _ask("This request is rate limited."),
        Script(
            status=429,
            error_kind="RESOURCE_EXHAUSTED",
            error_message=(
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 "
                "for more details."
            ),
            seed=28,
        ),
    ),
)
