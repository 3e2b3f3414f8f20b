"""Tapedeck under gunicorn, for those who run their servers with it::

    TAPEDECK_CASSETTES=cassettes gunicorn 'mockserver.gunicorn:app' \\
        -k aiohttp.GunicornWebWorker -w 2 -b 127.0.0.1:8787

gunicorn owns the command line, so the few settings come from the environment:
``TAPEDECK_CASSETTES`` (files or folders, separated by ``os.pathsep``; default the bundled
cassettes) and ``TAPEDECK_SYNTHESIZE=1`` (answer misses with the synthesizer). Everything
else is ``tapedeck serve``'s defaults, and replay only: recording from several processes
would duplicate and lose interactions (README 'More than one core').

aiohttp's gunicorn worker calls ``app()`` once in each worker after the fork, and serves
the runner it returns: the guarded connections and the ``ServerLimits`` timeouts of
``serving`` hold there too. Each worker loads the cassettes itself and has its own
player, as with ``serve --workers``.

Where it sits: beside the CLI, at the end of the flow.
"""

from __future__ import annotations

import os
from pathlib import Path

from mockserver.app import ServerState, make_app
from mockserver.cli import bundled_cassettes
from mockserver.index import Library
from mockserver.player import Player
from mockserver.server_limits import ServerLimits
from mockserver.serving import GuardedRunner

CASSETTES = "TAPEDECK_CASSETTES"
SYNTHESIZE = "TAPEDECK_SYNTHESIZE"


async def app() -> GuardedRunner:
    """The runner one gunicorn worker serves (``mockserver.gunicorn:app``)."""
    given = os.environ.get(CASSETTES, "")
    paths = [Path(part) for part in given.split(os.pathsep) if part] or [bundled_cassettes()]
    synthesize = os.environ.get(SYNTHESIZE, "").lower() in ("1", "true", "yes")
    limits = ServerLimits()
    # As ``tapedeck serve``: the last match answers again (a worker cannot promise "once"),
    # and nothing is kept per request (a worker runs for days).
    player = Player(Library.from_paths(paths), allow_repeats=True, synthesize=synthesize, log=0)
    state = ServerState(player)
    return GuardedRunner(make_app(state, server_limits=limits), limits)
