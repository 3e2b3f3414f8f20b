"""Recipes of the bundled Amazon Bedrock cassettes (cassettes/bedrock/).

Paths carry the model id as boto3 sends it, the version colon percent-encoded (``%3A``).
"""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script, ToolCall

ORIGIN = "https://bedrock-runtime.us-east-1.amazonaws.com"
CLAUDE = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
NOVA = "/model/us.amazon.nova-micro-v1%3A0"

WEATHER_TOOL = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        }
    ]
}


def _converse(text: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **fields}


def _claude(text: str) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "bedrock/converse-stream.yaml",
        f"{NOVA}/converse-stream",
        _converse(
            "What is the capital of France?",
            system=[{"text": "You are a helpful chatbot."}],
            inferenceConfig={"temperature": 0.0, "maxTokens": 200},
        ),
        Script(text="The capital of France is Paris. 🇫🇷", chunk_size=6, seed=1),
        ORIGIN,
    ),
    Recipe(
        "bedrock/converse-stream-tool-use.yaml",
        f"{CLAUDE}/converse-stream",
        _converse("What is the weather in Paris?", toolConfig=WEATHER_TOOL),
        Script(
            text="Let me look that up.",
            tool_calls=(ToolCall("get_weather", '{"city": "Paris", "unit": "celsius"}'),),
            chunk_size=5,
            seed=2,
        ),
        ORIGIN,
    ),
    Recipe(
        "bedrock/converse.yaml",
        f"{CLAUDE}/converse",
        _converse("Name three primary colours.", inferenceConfig={"maxTokens": 100}),
        Script(text="Red, yellow and blue.", seed=3),
        ORIGIN,
    ),
    Recipe(
        "bedrock/converse-tool-use.yaml",
        f"{CLAUDE}/converse",
        _converse("What is the weather in Lyon?", toolConfig=WEATHER_TOOL),
        Script(tool_calls=(ToolCall("get_weather", '{"city": "Lyon"}'),), seed=4),
        ORIGIN,
    ),
    Recipe(
        "bedrock/invoke.yaml",
        f"{CLAUDE}/invoke",
        _claude("Say hello in five words."),
        Script(text="Hello there, how are you?", seed=5),
        ORIGIN,
    ),
    Recipe(
        "bedrock/invoke-with-response-stream.yaml",
        f"{CLAUDE}/invoke-with-response-stream",
        _claude("Summarize the plot of The Lord of the Rings in a dozen words."),
        Script(
            text="Hobbits embark on an epic quest to destroy a powerful ring.",
            chunk_size=8,
            seed=6,
        ),
        ORIGIN,
    ),
    Recipe(
        "bedrock/error-throttling.yaml",
        f"{CLAUDE}/converse-stream",
        _converse("This request is throttled."),
        Script(
            status=429,
            error_kind="ThrottlingException",
            error_message="Too many requests, please wait before trying again.",
            seed=7,
        ),
        ORIGIN,
    ),
)
