"""``tapedeck drift``: its options, and the run that replays recorded requests against
the live upstreams and compares the shapes of the answers (``drift``).

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) parses
the arguments and calls ``run_drift``, which imports what it uses.
"""

from __future__ import annotations

import argparse
import sys

from mockserver.dialects import upstreams


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drift = commands.add_parser(
        "drift", help="replay recorded requests against the live upstream, compare shapes"
    )
    drift.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders")
    drift.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help=f"where to send: {', '.join(upstreams())} (repeatable; default: the providers)",
    )
    drift.add_argument(
        "--rewrite", action="store_true", help="rewrite the cassettes that drifted (redacted)"
    )
    drift.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="requests at once (default 4)"
    )
    drift.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="seconds per request (120)"
    )


def run_drift(args: argparse.Namespace) -> int:
    """Exit 0: no drift; 1: something drifted (rewritten or not); 2: something could not
    be compared (an upstream down, a key refused, an unreadable cassette), or nothing was."""
    from mockserver.drift import drift, rewrite
    from mockserver.recorder import parse_upstreams

    try:
        targets = parse_upstreams(args.upstream)
        if args.concurrency < 1:
            raise ValueError(f"--concurrency wants 1 or more, got {args.concurrency}")
        if args.timeout <= 0:
            raise ValueError(f"--timeout wants seconds above 0, got {args.timeout:g}")
    except ValueError as exc:
        print(f"tapedeck drift: {exc}", file=sys.stderr)
        return 2
    report = drift(args.paths, targets, concurrency=args.concurrency, timeout=args.timeout)
    if not report.files:
        print("tapedeck drift: no cassette files in " + ", ".join(args.paths), file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    if args.rewrite:
        print("\n".join(rewrite(report)))
    elif report.count("drifted"):
        print("Way out: if the new shapes are right, re-record with --rewrite.")
    return report.exit_code
