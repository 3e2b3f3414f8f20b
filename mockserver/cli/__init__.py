"""The ``tapedeck`` command: ``serve`` cassettes, ``lint`` them, ``check`` a proxy, ``drift``.

The last package of the flow: ``main`` parses the arguments (each command's module adds
its parser: ``serve_options``, ``lint`` (and ``redact``), ``synth``, ``check``, ``drift``)
and hands them to the command's run (``serve``, ``lint``, ...), which builds a Library and
hands it to the app or to the validators. Exit codes: 0 fine, 1 violations found, 2 bad
input; ``lint`` also 3 when some file held nothing it could check (see ``lint.run_lint``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mockserver.cli import check, drift, lint, serve, serve_options, synth
from mockserver.cli.serve import bundled_cassettes
from mockserver.errors import TapedeckError

__all__ = ["bundled_cassettes", "main"]

DISTRIBUTION = "llm-tapedeck"


def version() -> str:
    """The installed version (pyproject's), for ``tapedeck --version``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # a checkout put on sys.path by hand, never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tapedeck", description="Record/replay mock server for LLM provider APIs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    # In this order: the order of ``tapedeck --help``.
    serve_options.add_parser(commands)
    lint.add_parsers(commands)  # lint and redact
    synth.add_parser(commands)
    check.add_parser(commands)
    drift.add_parser(commands)

    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check.run_check(args)
        if args.command == "drift":
            return drift.run_drift(args)
        if args.command == "serve":
            return serve.run_serve(args)
        if args.command == "synth":
            return synth.run_synth(args, parser)
        if args.command == "redact":
            return lint.run_redact(args.paths, check=args.check)
        return lint.run_lint(args.paths, args.dialect, args.include_usage, args.request)
    except TapedeckError as exc:
        print(f"tapedeck: {exc}", file=sys.stderr)
        return 2
