"""``tapedeck serve``'s options: the parser of its flags, and the types that check
``--port`` and ``--workers`` as argparse reads them.

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) adds
this parser, ``serve.run_serve`` reads what it parsed.
"""

from __future__ import annotations

import argparse

from mockserver.dialects import LIMITS, upstreams
from mockserver.loops import DEFAULT_LOOP, LOOPS
from mockserver.recorder import RECORD_MODES

DEFAULT_PORT = 8787
DISTRIBUTION = "llm-tapedeck"


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0-65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, found {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, found {port}")
    return port


def worker_count(text: str) -> int:
    """``--workers``: a number of processes, 1 or more."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more processes, found {count}")
    return count


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve cassettes over HTTP")
    serve.add_argument(
        "--cassettes",
        action="append",
        metavar="PATH",
        help="cassette file or folder (repeatable; default: the bundled cassettes)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}"
    )
    serve.add_argument(
        "--synthesize",
        action="store_true",
        help="answer requests that match no recording with a synthesized response",
    )
    serve.add_argument(
        "--no-repeats",
        action="store_true",
        help="answer each recording once (default: the last match answers again)",
    )
    serve.add_argument("--max-body-mb", type=float, default=32.0, help="request size limit")
    serve.add_argument(
        "--no-index-cache",
        action="store_true",
        help="read every cassette, keep no index on disk (README 'Index cache')",
    )
    serve.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        metavar="N",
        help="processes on the port, one core each (default 1; README 'More than one core')",
    )
    serve.add_argument(
        "--loop",
        choices=LOOPS,
        default=DEFAULT_LOOP,
        help="the event loop: asyncio (default) or uvloop, faster, an extra: pip install "
        "'llm-tapedeck[uvloop]' (README 'Benchmarks')",
    )
    guard = serve.add_argument_group("reliability (see README 'Reliability')")
    guard.add_argument(
        "--max-json-depth",
        type=int,
        default=128,
        metavar="N",
        help="levels of JSON nesting accepted (default 128, at most 256)",
    )
    guard.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds for a request's head, and again for its body (default 30)",
    )
    guard.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        metavar="S",
        help="seconds an idle connection stays open (default 75)",
    )
    guard.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open at once (default 1000, fewer if the open-file limit is low)",
    )
    guard.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds answers in flight get on SIGTERM (default 5)",
    )
    serve.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=N",
        help="bound synthesized answers (repeatable; README 'Synthesis limits'): "
        + ", ".join(f"{limit.name} ({limit.default})" for limit in LIMITS),
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="misbehave on purpose (repeatable): KIND or KIND:key=value,... e.g. "
        "status:code=429,retry_after=1,rate=0.1,seed=7 (README 'Faults')",
    )
    serve.add_argument(
        "--request-log",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N requests and misses in memory, and print the misses kept "
        "when the server stops (default 0: keep nothing per request)",
    )
    recording = serve.add_argument_group("recording (see README 'Recording')")
    recording.add_argument(
        "--record-mode",
        choices=RECORD_MODES,
        default="none",
        help="none (default: never forward), once, new_episodes, all, rewrite",
    )
    recording.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help=f"where to forward: {', '.join(upstreams())} (repeatable)",
    )
    recording.add_argument(
        "--record-to", metavar="FILE", help="cassette to record into (default: see README)"
    )
    recording.add_argument(
        "--strict-record", action="store_true", help="refuse to save a stream its validator fails"
    )
    for what in ("header", "query", "field"):
        recording.add_argument(
            f"--redact-{what}",
            action="append",
            default=[],
            metavar="NAME",
            help=f"also remove this {what} from recordings (repeatable)",
        )
    pacing = serve.add_argument_group("pacing")
    pacing.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="0 (default): as fast as possible; 1: the recorded pace; 2: twice as fast",
    )
    pacing.add_argument(
        "--profile",
        metavar="ttft=S,tps=N,jitter=F,seed=N",
        help="pace synthesized streams (time to first token, tokens per second, jitter)",
    )
