"""Recipes of the bundled OpenAI embeddings cassettes (cassettes/openai_embeddings/).

``base64.yaml`` and ``float.yaml`` embed the same text with the same seed, so they hold
the same vectors in the two encodings (the openai SDK asks for base64 unless told)."""

from __future__ import annotations

from mockserver.dialects.contract import Recipe
from mockserver.model import Script

PATH = "/v1/embeddings"
TEXT = "The food was delicious and the waiter was friendly."

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "openai_embeddings/base64.yaml",
        PATH,
        {"model": "text-embedding-3-small", "input": TEXT, "encoding_format": "base64"},
        Script(seed=31),
    ),
    Recipe(
        "openai_embeddings/float.yaml",
        PATH,
        {"model": "text-embedding-3-small", "input": TEXT, "encoding_format": "float"},
        Script(seed=31),
    ),
    Recipe(
        "openai_embeddings/batch-dimensions.yaml",
        PATH,
        {
            "model": "text-embedding-3-large",
            "input": ["A cat sat on the mat.", "Stock markets rallied today."],
            "dimensions": 256,
            "encoding_format": "base64",
        },
        Script(seed=32),
    ),
    Recipe(
        "openai_embeddings/token-ids.yaml",
        PATH,
        {
            "model": "text-embedding-ada-002",
            "input": [[9906, 1917], [15339]],
            "encoding_format": "base64",
        },
        Script(seed=33),
    ),
    Recipe(
        "openai_embeddings/error-404.yaml",
        PATH,
        {"model": "nonexistent", "input": ["Hello, world!"], "encoding_format": "base64"},
        Script(
            status=404,
            error_message="The model `nonexistent` does not exist or you do not have access to it.",
            seed=34,
        ),
    ),
)
