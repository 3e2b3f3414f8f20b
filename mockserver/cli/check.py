"""``tapedeck check``: its options, and the runs that check a proxy with Tapedeck as its
upstream: the conformance scenarios (``conformance.run``), or with ``--load`` concurrent
streams compared straight and through the proxy (``conformance.load``).

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) parses
the arguments and calls ``run_check``, which imports what it uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mockserver.conformance.scenarios import CATALOGUES, DEFAULT_MODEL
from mockserver.dialects import DEFAULT_DIALECT


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check", help="check that a proxy preserves streams (Tapedeck is its upstream)"
    )
    check.add_argument("--proxy", required=True, metavar="URL", help="the proxy's root URL")
    check.add_argument(
        "--upstream-port",
        required=True,
        type=int,
        metavar="PORT",
        help="serve as the proxy's upstream on 127.0.0.1:PORT (where the proxy forwards)",
    )
    check.add_argument("--model", default=DEFAULT_MODEL, help="the model name to ask the proxy")
    check.add_argument("--api-key", default="tapedeck", help="the key the proxy expects")
    check.add_argument(
        "--dialect",
        action="append",
        metavar="NAME",
        help=f"protocol spoken to the proxy: {', '.join(CATALOGUES)} (default {DEFAULT_DIALECT})",
    )
    check.add_argument("--scenario", action="append", metavar="NAME", help="only these scenarios")
    check.add_argument("--junit", metavar="FILE", help="also write the report as JUnit XML")
    check.add_argument("--strict", action="store_true", help="count warnings as failures")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds per scenario")
    check.add_argument(
        "--faults",
        action="store_true",
        help="also run the fault scenarios: the upstream resets, truncates, fails mid-stream, "
        "answers 429 and stalls past --timeout (lower it: --timeout 5)",
    )
    load = check.add_argument_group("load (see README 'Checking a proxy', 'Under load')")
    load.add_argument(
        "--load",
        type=int,
        metavar="C",
        help="send C concurrent streams, straight to the upstream then through the proxy, "
        "and compare (instead of the scenarios)",
    )
    load.add_argument(
        "--duration", type=float, default=10.0, metavar="S", help="seconds each way (default 10)"
    )
    load.add_argument(
        "--gap",
        type=float,
        default=0.02,
        metavar="S",
        help="seconds the upstream leaves between events (default 0.02)",
    )
    load.add_argument(
        "--max-errors",
        type=float,
        default=1.0,
        metavar="PCT",
        help="percent of streams that may fail through the proxy (default 1)",
    )
    load.add_argument(
        "--plot", metavar="FILE", help="write the distributions as a PNG (the 'plot' extra)"
    )


def run_check(args: argparse.Namespace) -> int:
    """Exit 0: no fail; 1: a fail (a warn too, with --strict); 2: the run could not happen."""
    from mockserver.conformance import run_conformance

    if args.load is not None:
        return run_load_check(args)
    if args.plot:
        print("tapedeck check: --plot draws a load run: add --load C", file=sys.stderr)
        return 2
    try:
        report = run_conformance(
            args.proxy,
            args.upstream_port,
            model=args.model,
            api_key=args.api_key,
            dialects=args.dialect or [DEFAULT_DIALECT],
            scenarios=args.scenario,
            timeout=args.timeout,
            faults=args.faults,
        )
    except ValueError as exc:  # an unknown dialect or scenario name
        print(f"tapedeck check: {exc}", file=sys.stderr)
        return 2
    report = report.strict() if args.strict else report
    _publish(report.table(), report.junit(), args.junit)
    return report.exit_code


def run_load_check(args: argparse.Namespace) -> int:
    """``check --load``: the same exit codes as ``run_check``."""
    from mockserver.conformance.load import LoadPlan, run_load
    from mockserver.conformance.plot import require_matplotlib, write_plot

    if args.scenario or args.faults:
        print(
            "tapedeck check: --load sends streams of its own: leave --scenario and --faults out",
            file=sys.stderr,
        )
        return 2
    try:
        plan = LoadPlan(
            args.load, args.duration, gap=args.gap, max_error_rate=args.max_errors / 100
        )
        if args.plot:
            require_matplotlib()  # before the run, not after it
        report = run_load(
            args.proxy,
            args.upstream_port,
            plan,
            model=args.model,
            api_key=args.api_key,
            dialects=args.dialect or [DEFAULT_DIALECT],
            timeout=args.timeout,
        )
    except ValueError as exc:
        print(f"tapedeck check: {exc}", file=sys.stderr)
        return 2
    report = report.as_strict() if args.strict else report
    _publish(report.table(), report.junit(), args.junit)
    if args.plot:
        write_plot(report, Path(args.plot))
        print(f"Plot written to {args.plot}")
    return report.exit_code


def _publish(table: str, junit_xml: str, junit: str | None) -> None:
    """The report on stdout, and as JUnit XML in ``junit`` when asked."""
    print(table)
    if junit:
        Path(junit).write_text(junit_xml, encoding="utf-8")
        print(f"JUnit XML written to {junit}")
