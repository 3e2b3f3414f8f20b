"""Recipes of the bundled OpenAI Responses cassettes (cassettes/openai_responses/): a text
stream, parallel function calls, a reasoning summary (the ``<think>`` convention), an
answer cut by max_output_tokens, a non-stream answer and a rate-limit error."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

PATH = "/v1/responses"
TOOLS = [
    {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]


def _ask(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4.1-mini", "input": text, **fields}


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "openai_responses/stream-text.yaml",
        PATH,
        _ask("What is four plus five?", stream=True),
        Script(text="Four plus five equals **nine**.", seed=31),
    ),
    Recipe(
        "openai_responses/stream-tool-calls.yaml",
        PATH,
        _ask(
            "What is the weather and the time in Paris?",
            instructions="Use the tools; call both at once.",
            stream=True,
            tools=TOOLS,
            tool_choice="auto",
        ),
        Script(
            tool_calls=(
                ToolCall("get_weather", '{"city":"Paris"}'),
                ToolCall("get_time", '{"city":"Paris"}'),
            ),
            chunk_size=3,
            seed=32,
        ),
    ),
    Recipe(
        "openai_responses/stream-reasoning.yaml",
        PATH,
        {
            "model": "o4-mini",
            "input": [{"role": "user", "content": "Is 221 a prime number?"}],
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "store": False,
            "stream": True,
        },
        Script(
            text="<think>**Checking divisors**\n\n221 = 13 * 17, so it has divisors other than "
            "1 and itself.</think>No: 221 = 13 * 17.",
            chunk_size=8,
            seed=33,
        ),
    ),
    Recipe(
        "openai_responses/stream-incomplete.yaml",
        PATH,
        _ask("Write a long poem about the sea.", stream=True, max_output_tokens=16),
        Script(
            text="The sea, the sea, the restless grey sea, rolling",  # 16 pieces of 3
            chunk_size=3,
            finish_reason="max_output_tokens",
            seed=34,
        ),
    ),
    Recipe(
        "openai_responses/nonstream.yaml",
        PATH,
        _ask("What is the capital of France?", instructions="Answer in one sentence."),
        Script(text="The capital of France is Paris.", seed=35),
    ),
    Recipe(
        "openai_responses/error-429.yaml",
        PATH,
        _ask("This request is rate limited.", stream=True),
        Script(
            status=429,
            error_kind="requests",
            error_message=(
                "Rate limit reached for gpt-4.1-mini in organization org-tapedeck on requests "
                "per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."
            ),
            headers=(("retry-after", "20"),),
            seed=36,
        ),
    ),
)
