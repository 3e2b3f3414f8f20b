"""The recipes of the bundled cassettes, one module per dialect: what each cassette asks
and what its synthesized answer says. ``tapedeck synth --bundled`` writes them all; a test
checks the files in cassettes/ are exactly what they make."""

from __future__ import annotations

from mockserver.recipes import (
    anthropic,
    bedrock,
    gemini,
    ollama,
    openai_chat,
    openai_completions,
    openai_embeddings,
    openai_responses,
)
from mockserver.synth import Recipe

BUNDLED: tuple[Recipe, ...] = (
    *openai_chat.RECIPES,
    *openai_completions.RECIPES,
    *openai_embeddings.RECIPES,
    *openai_responses.RECIPES,
    *ollama.RECIPES,
    *anthropic.RECIPES,
    *bedrock.RECIPES,
    *gemini.RECIPES,
)
