"""Recipes of the bundled Ollama cassettes (cassettes/ollama/): request bodies as
ollama-python 0.6 sends them (``stream`` always spelled out, ``"tools": []`` on chat)."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

ORIGIN = "http://127.0.0.1:11434"
MODEL = "llama3.2"

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {
                    "city": {"type": "string", "description": "The city, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
            },
        },
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]


def _chat(content: str, stream: bool, **fields: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}]
    return {"model": MODEL, "stream": stream, "messages": messages, "tools": [], **fields}


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "ollama/chat-stream.yaml",
        "/api/chat",
        _chat("Why is the sky blue? One sentence.", True),
        Script(
            text="Sunlight scatters off air molecules, and blue light scatters the most.",
            seed=1,
        ),
        ORIGIN,
    ),
    Recipe(
        "ollama/chat-nonstream.yaml",
        "/api/chat",
        _chat("What is the capital of France?", False, options={"temperature": 0}),
        Script(text="The capital of France is Paris.", seed=2),
        ORIGIN,
    ),
    Recipe(
        "ollama/chat-stream-thinking.yaml",
        "/api/chat",
        _chat("Is 17 a prime number?", True, think=True),
        Script(
            text="<think>17 has no divisors between 2 and 4, so it is prime.</think>Yes, 17 is "
            "prime.",
            chunk_size=6,
            seed=3,
        ),
        ORIGIN,
    ),
    Recipe(
        "ollama/chat-stream-tool-calls.yaml",
        "/api/chat",
        _chat("What is the weather and the time in Paris?", True, tools=WEATHER_TOOLS),
        Script(
            tool_calls=(
                ToolCall("get_weather", '{"city": "Paris", "unit": "celsius"}'),
                ToolCall("get_time", '{"city": "Paris"}'),
            ),
            seed=4,
        ),
        ORIGIN,
    ),
    Recipe(
        "ollama/generate-stream.yaml",
        "/api/generate",
        {"model": MODEL, "stream": True, "prompt": "Name three primary colours."},
        Script(text="Red, yellow and blue — the three primary colours. 🎨", seed=5),
        ORIGIN,
    ),
    Recipe(
        "ollama/generate-nonstream.yaml",
        "/api/generate",
        {"model": MODEL, "stream": False, "prompt": "Say hello in five words."},
        Script(text="Hello there, how are you?", seed=6),
        ORIGIN,
    ),
    Recipe(
        "ollama/embed.yaml",
        "/api/embed",
        {
            "model": "nomic-embed-text",
            "input": ["The sky is blue.", "Grass is green."],
            "dimensions": 8,
        },
        Script(seed=7),
        ORIGIN,
    ),
    Recipe("ollama/tags.yaml", "/api/tags", {}, Script(seed=8), ORIGIN, method="GET"),
    Recipe(
        "ollama/error-404.yaml",
        "/api/chat",
        {**_chat("Why is the sky blue?", True), "model": "nonexistent-model:latest"},
        Script(status=404, error_message="model 'nonexistent-model:latest' not found", seed=9),
        ORIGIN,
    ),
)
