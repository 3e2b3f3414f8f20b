"""Recipes of the bundled OpenAI legacy completions cassettes (cassettes/openai_completions/).

The legacy API has no tools, so there is no tool-use cassette; echo, logprobs, several
prompts and n stand in for it."""

from __future__ import annotations

from typing import Any

from mockserver.dialects.contract import Recipe
from mockserver.model import Script

MODEL = "gpt-3.5-turbo-instruct"
PATH = "/v1/completions"
USAGE = {"include_usage": True}


def _completion(prompt: Any, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, "max_tokens": 32, **fields}


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "openai_completions/stream-include-usage.yaml",
        PATH,
        _completion("Write a haiku about the sea.", stream=True, stream_options=USAGE),
        Script(
            text="\n\nWaves fold into foam,\nsalt wind combs the grey water,\nthe tide keeps time.",
            seed=21,
        ),
    ),
    Recipe(
        "openai_completions/stream-no-usage.yaml",
        PATH,
        _completion("Once upon a time", stream=True, temperature=0),
        Script(text=", in a village by the sea, there lived a lighthouse keeper.", seed=22),
    ),
    Recipe(
        "openai_completions/stream-two-prompts-n2.yaml",
        PATH,
        _completion(
            ["The sky is", "Grass is"], n=2, stream=True, stream_options=USAGE, max_tokens=3
        ),
        Script(text=" usually blue.", chunk_size=3, finish_reason="length", seed=23),
    ),
    Recipe(
        "openai_completions/nonstream.yaml",
        PATH,
        _completion("Say this is a test", max_tokens=7, temperature=0),
        Script(text="\n\nThis is indeed a test", seed=24),
    ),
    Recipe(
        "openai_completions/nonstream-echo-logprobs.yaml",
        PATH,
        _completion("1, 2, 3,", echo=True, logprobs=2, max_tokens=6),
        Script(text=" 4, 5, 6", chunk_size=2, finish_reason="length", seed=25),
    ),
    Recipe(
        "openai_completions/error-401-stream.yaml",
        PATH,
        _completion("how does openai tokenize prompts?", stream=True),
        Script(
            status=401,
            error_message=(
                "Incorrect API key provided: sk-wrong****-key. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            ),
            seed=26,
        ),
    ),
)
