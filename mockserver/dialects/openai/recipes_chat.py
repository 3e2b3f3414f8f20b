"""Recipes of the bundled OpenAI chat cassettes (cassettes/openai_chat/)."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

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


USAGE = {"include_usage": True}
RECIPES: tuple[Recipe, ...] = (
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
    # What README 'Azure OpenAI' sends: AzureOpenAI puts the deployment in the path and the
    # API version in the query, and both take part in matching.
    Recipe(
        "openai_chat/azure-stream.yaml",
        "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21",
        {
            "model": "my-deployment",
            "messages": [{"role": "user", "content": "Say hello from Azure."}],
            "stream": True,
        },
        Script(text="Hello from Azure OpenAI!", seed=7),
        origin="https://my-resource.openai.azure.com",
    ),
)
