"""The recipes of the bundled cassettes, one module per dialect: what each cassette asks
and what its synthesized answer says. ``tapedeck synth --bundled`` writes them all; a test
checks the files in cassettes/ are exactly what they make."""

from __future__ import annotations

from mockserver.recipes import openai_chat
from mockserver.synth import Recipe

BUNDLED: tuple[Recipe, ...] = (*openai_chat.RECIPES,)
