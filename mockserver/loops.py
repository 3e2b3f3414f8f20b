"""Which event loop runs the server: asyncio's own, or uvloop (``serve --loop uvloop``).

Where it sits: beside ``timing``, under ``serving``. uvloop is an optional extra
(``pip install 'llm-tapedeck[uvloop]'``): what it buys is measured by
``benchmarks/run.py`` (README 'Benchmarks'); asking for it without it installed is a
usage error naming the way out, never a silent fall back to asyncio.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Coroutine
from typing import Any

LOOPS = ("asyncio", "uvloop")
DEFAULT_LOOP = "asyncio"


class LoopUnavailable(ValueError):
    """The loop asked for is unknown, or its package is not installed."""


def check(name: str) -> None:
    """LoopUnavailable unless ``name`` can run here: raised before the server loads
    anything, so that a typo costs no cassette load."""
    if name not in LOOPS:
        raise LoopUnavailable(f"unknown event loop {name!r}; known: {', '.join(LOOPS)}")
    if name == "uvloop":
        try:
            importlib.import_module("uvloop")
        except ImportError:
            raise LoopUnavailable(
                "--loop uvloop needs the uvloop package, which is not installed. Way out: "
                "pip install 'llm-tapedeck[uvloop]' (Linux and macOS), or leave --loop out."
            ) from None


def run(main: Coroutine[Any, Any, None], name: str = DEFAULT_LOOP) -> None:
    """``asyncio.run(main)`` on the loop ``name`` (checked first)."""
    try:
        check(name)
    except LoopUnavailable:
        main.close()  # never to run: not an un-awaited coroutine warning on top
        raise
    if name == "uvloop":
        uvloop = importlib.import_module("uvloop")
        uvloop.run(main)
    else:
        asyncio.run(main)
