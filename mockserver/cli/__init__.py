"""The ``tapedeck`` command: ``serve`` cassettes, ``lint`` them, ``check`` a proxy, ``drift``.

The last module of the flow: it parses arguments, builds a Library, and hands it to the
app or to the validators. Exit codes: 0 fine, 1 violations found, 2 bad input; ``lint``
also 3 when some file held nothing it could check (see ``run_lint``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from mockserver import loops
from mockserver.conformance.scenarios import CATALOGUES, DEFAULT_MODEL
from mockserver.dialects import DEFAULT_DIALECT, LIMITS, upstreams
from mockserver.errors import TapedeckError
from mockserver.loops import DEFAULT_LOOP, LOOPS
from mockserver.recorder import RECORD_MODES

DEFAULT_PORT = 8787
DISTRIBUTION = "llm-tapedeck"


def version() -> str:
    """The installed version (pyproject's), for ``tapedeck --version``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # a checkout put on sys.path by hand, never installed
        return "unknown (not installed)"


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


def bundled_cassettes() -> Path:
    """The cassettes shipped with Tapedeck: inside the wheel, or the checkout's folder."""
    here = Path(__file__).resolve().parent
    installed = here / "bundled_cassettes"
    return installed if installed.is_dir() else here.parent / "cassettes"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tapedeck", description="Record/replay mock server for LLM provider APIs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

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

    lint = commands.add_parser("lint", help="check recorded streams against their protocol")
    lint.add_argument(
        "paths", nargs="+", metavar="PATH", help="cassette files or folders (or raw streams)"
    )
    lint.add_argument(
        "--dialect",
        metavar="NAME",
        help="judge files that are not cassettes as raw stream bodies of this protocol",
    )
    lint.add_argument(
        "--include-usage",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="raw streams: the request set stream_options.include_usage (default: unknown)",
    )
    lint.add_argument("--request", metavar="JSON", help="raw streams: the request body, or @file")

    redact = commands.add_parser(
        "redact", help="remove credentials and account ids from cassettes, in place"
    )
    redact.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders")
    redact.add_argument(
        "--check", action="store_true", help="list what would be removed, write nothing"
    )

    synth = commands.add_parser(
        "synth", help="write a synthesized interaction into a cassette file"
    )
    synth.add_argument("--bundled", action="store_true", help="remake the bundled cassettes")
    synth.add_argument(
        "--out", help="cassette file to append to (with --bundled: the folder to write)"
    )
    synth.add_argument("--path", default="/v1/chat/completions", help="request path")
    synth.add_argument("--request", help="the request body: JSON text, or @file")
    synth.add_argument("--text", help="the answer's text")
    synth.add_argument(
        "--tool", action="append", default=[], metavar="NAME=JSON", help="a tool call (repeatable)"
    )
    synth.add_argument("--status", type=int, default=200, help="an error status (>= 400)")
    synth.add_argument("--message", help="the error message, with --status")
    synth.add_argument("--seed", type=int, default=0)

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

    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return run_check(args)
        if args.command == "drift":
            return run_drift(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "synth":
            return run_synth(args, parser)
        if args.command == "redact":
            return run_redact(args.paths, check=args.check)
        return run_lint(args.paths, args.dialect, args.include_usage, args.request)
    except TapedeckError as exc:
        print(f"tapedeck: {exc}", file=sys.stderr)
        return 2


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
    print(report.table())
    if args.junit:
        Path(args.junit).write_text(report.junit(), encoding="utf-8")
        print(f"JUnit XML written to {args.junit}")
    return report.exit_code


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
    print(report.table())
    if args.junit:
        Path(args.junit).write_text(report.junit(), encoding="utf-8")
        print(f"JUnit XML written to {args.junit}")
    if args.plot:
        write_plot(report, Path(args.plot))
        print(f"Plot written to {args.plot}")
    return report.exit_code


def run_serve(args: argparse.Namespace) -> int:
    from mockserver.app import ServerState, make_app
    from mockserver.dialects import SynthesisLimits, sdk_environment
    from mockserver.faults import Faults, parse_all
    from mockserver.index import Library
    from mockserver.index_cache import IndexCache
    from mockserver.player import Player
    from mockserver.recorder import Recorder, parse_upstreams
    from mockserver.redaction import DEFAULT_REDACTION
    from mockserver.server_limits import ServerLimits, raise_open_file_limit
    from mockserver.server_thread import cannot_listen
    from mockserver.serving import run
    from mockserver.timing import Profile

    refused = _workers_refusal(args)
    try:
        loops.check(args.loop)
    except loops.LoopUnavailable as exc:
        refused = refused or str(exc)
    if refused:
        print(f"tapedeck serve: {refused}", file=sys.stderr)
        return 2
    recording = args.record_mode != "none"
    paths = args.cassettes or [Path("cassettes") if recording else bundled_cassettes()]
    if recording:
        given = args.record_to  # "" is refused with the other names that cannot be files
        target = Path(given) if given is not None else _record_target(Path(paths[0]))
        paths = [p for p in paths if Path(p).exists()]
    # Read, or mapped from the index cache when a start before saved these very bytes.
    cache = None if args.no_index_cache else IndexCache.from_environment()
    library = Library.from_paths(paths, store=cache)
    saving: list[threading.Thread] = []
    try:
        profile = Profile.parse(args.profile) if args.profile else None
        synthesis_limits = SynthesisLimits.parse(args.limit)
        raise_open_file_limit()  # before the connection limit is derived from it
        guard = ServerLimits(
            max_body=int(args.max_body_mb * 1024 * 1024),
            max_json_depth=args.max_json_depth,
            read_timeout=args.read_timeout,
            keepalive_timeout=args.keepalive_timeout,
            shutdown_timeout=args.shutdown_timeout,
            **({} if args.max_connections is None else {"max_connections": args.max_connections}),
        )
        if args.request_log < 0:
            raise ValueError(f"--request-log is a number of requests >= 0, got {args.request_log}")
        faults = Faults(standing=parse_all(args.fault))
        recorder = (
            Recorder(
                args.record_mode,
                target,
                parse_upstreams(args.upstream),
                DEFAULT_REDACTION.extend(args.redact_header, args.redact_query, args.redact_field),
                strict=args.strict_record,
            )
            if recording
            else None
        )
    except ValueError as exc:
        print(f"tapedeck serve: {exc}", file=sys.stderr)
        return 2
    # A server runs for days: it keeps no request unless asked, and then the last few.
    player = Player(
        library,
        allow_repeats=not args.no_repeats,
        synthesize=args.synthesize,
        log=args.request_log,
    )
    state = ServerState(
        player,
        recorder=recorder,
        speed=args.speed,
        profile=profile,
        synthesis_limits=synthesis_limits,
    )
    state.faults = faults
    app = make_app(state, server_limits=guard)

    def banner(url: str) -> None:
        # Called once the socket listens (url has the port, even for --port 0): the first
        # line means "ready".
        lines = [f"Tapedeck serving {len(library)} recorded interactions at {url}"]
        lines += [f"  not served (no dialect for its route): {x.source}" for x in library.unserved]
        lines.append("Point the SDKs at it (the keys are dummies: Tapedeck never checks them):")
        lines += [f"  export {name}={value}" for name, value in sdk_environment(url).items()]
        if args.synthesize:
            lines.append("  requests that match no recording are answered by the synthesizer")
        if recorder is not None:
            lines.append(f"  recording ({recorder.mode}) into {recorder.cassette}")
        lines += [f"  fault on purpose: {spec}" for spec in faults.standing]
        if cache is not None:
            lines.append(
                f"  index cache ({cache.folder}): {cache.hits} cassette file(s) from it, "
                f"{cache.misses} read" + (" (saved to it now)" if cache.misses else "")
            )
        if args.workers > 1:
            lines.append(
                f"  {args.workers} worker processes: repeats, fault counts and the request "
                "log are per worker (README 'More than one core')"
            )
        print("\n".join(lines), flush=True)
        if cache is not None and args.workers == 1:
            saving.append(cache.save_in_background())  # written while serving

    def stop_report() -> str:
        faulted = [request for request in player.requests if request.fault]
        lines = []
        if faulted:
            lines.append(f"Faults applied to the last {len(player.requests)} request(s):")
            lines += [f"--- {r.summary()}: {r.fault}" for r in faulted]
        if player.misses:
            lines.append(f"The last {len(player.misses)} request(s) that matched no recording:")
            lines += [f"--- {miss.explanation}" for miss in player.misses]
        return "\n".join(lines)

    # The recordings live as long as the server: out of the garbage collector's sight, a
    # full collection no longer walks them (a 25 ms stall in paced streams was one), and
    # forked workers share their pages instead of copying them when it would.
    gc.freeze()
    try:
        if args.workers > 1:
            from mockserver.workers import serve_workers

            def log(line: str) -> None:
                print(f"tapedeck serve: {line}", file=sys.stderr, flush=True)

            if cache is not None:
                cache.save()  # now: workers fork only while no other thread runs
            serve_workers(
                app,
                args.host,
                args.port,
                guard,
                args.workers,
                banner,
                log=log,
                report=stop_report,
                loop=args.loop,
            )
            return 0
        run(app, args.host, args.port, guard, ready=banner, loop=args.loop)
    except OSError as exc:  # the port is taken or not ours to bind; the host is unknown
        print(f"tapedeck serve: {cannot_listen(exc, args.host, args.port)}", file=sys.stderr)
        return 2
    finally:
        for thread in saving:
            thread.join()  # a cache half-written is no cache: let it finish
    report = stop_report()
    if report:
        print(report)
    return 0


def _workers_refusal(args: argparse.Namespace) -> str | None:
    """``--workers N`` with a setting that cannot hold across N processes: why, and the
    way out (before anything is loaded)."""
    if args.workers == 1:
        return None
    import contextlib

    from mockserver.faults import parse_all
    from mockserver.workers import refusal

    counted = False
    with contextlib.suppress(ValueError):  # a bad spec: the usual message, further on
        counted = any(spec.times is not None for spec in parse_all(args.fault))
    return refusal(
        args.workers,
        no_repeats=args.no_repeats,
        record_mode=args.record_mode,
        fault_times=counted,
    )


def _record_target(path: Path) -> Path:
    """Recording into a cassette file named by --cassettes, or recorded.yaml in a folder."""
    return path if path.suffix in (".yaml", ".yml", ".json") else path / "recorded.yaml"


def run_synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    from mockserver import cassettes, synth
    from mockserver.model import Script, ToolCall

    if args.bundled:
        if not args.out:
            # Never a default: the bundled folder of an installed Tapedeck is inside
            # site-packages, and remaking it there would change every user's replays.
            parser.error(
                "synth --bundled needs --out DIR, the folder to write the bundled cassettes "
                "into (in a checkout: --out cassettes)"
            )
        for path in synth.write_bundled(args.out):
            print(f"wrote {path}")
        return 0
    if not (args.out and args.request):
        parser.error("synth needs --out FILE and --request JSON (or --bundled)")
    text = Path(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    try:
        body = json.loads(text)
        calls = tuple(ToolCall(*tool.split("=", 1)) for tool in args.tool)
        script = Script(
            text=args.text,
            tool_calls=calls,
            status=args.status,
            seed=args.seed,
            **({"error_message": args.message} if args.message else {}),
        )
    except (ValueError, TypeError) as exc:
        parser.error(f"synth: {exc} (--request is JSON text; --tool is NAME=JSON)")
    exchange = synth.synthesize(args.path, body, script)
    out = Path(args.out)
    existing = cassettes.load(out) if out.exists() else ()
    cassettes.dump([*existing, exchange], out)
    print(f"wrote interaction {len(existing)} of {out}")
    return 0


def run_lint(
    paths: Sequence[str],
    dialect: str | None = None,
    include_usage: bool | None = None,
    request: str | None = None,
) -> int:
    """Lint cassettes (or raw stream bodies, with ``dialect``); print one line per
    violation and per interaction no dialect serves ("not checked"), then the counts.

    Exit code: 2 when a file cannot be read, else 1 when a rule is violated, else 3 when
    some file held nothing that could be checked (no interaction on a route a dialect
    serves, or none at all), else 0. Answers without a stream (not streamed, or an error
    status) are counted but not judged: the rules are about streams."""
    import json

    from mockserver.dialects import DIALECTS
    from mockserver.index import cassette_files
    from mockserver.validation import CHECKED, NOT_A_STREAM, NOT_CHECKED, lint_each, stream_request

    raw_request = None
    if dialect is not None:
        if dialect not in DIALECTS:
            known = ", ".join(sorted(DIALECTS))
            print(f"tapedeck lint: unknown dialect {dialect!r}; known: {known}", file=sys.stderr)
            return 2
        try:
            text = Path(request[1:]).read_text() if request and request[0] == "@" else request
            body = json.loads(text) if text else None
        except (OSError, ValueError) as exc:
            print(f"tapedeck lint: --request is JSON text or @file: {exc}", file=sys.stderr)
            return 2
        raw_request = stream_request(dialect, include_usage, body)
    files = cassette_files(paths)
    if not files:
        print("tapedeck lint: no cassette files found in " + ", ".join(paths), file=sys.stderr)
        return 2
    failures = broken = empty = 0
    secrets = secret_files = 0
    outcomes = dict.fromkeys((CHECKED, NOT_A_STREAM, NOT_CHECKED), 0)
    for path in files:
        try:
            linted = lint_each(path, dialect, raw_request)
        except (TapedeckError, OSError) as exc:
            hint = "" if dialect else " (a raw stream body? name its protocol with --dialect)"
            print(f"{path}: cannot be read: {exc}{hint}")
            broken += 1
            continue
        for item in linted:
            outcomes[item.outcome] += 1
            if item.outcome == NOT_CHECKED:
                print(f"{item.source} not checked: {item.reason}")
            for violation in item.violations:
                print(
                    f"{item.source} {violation.rule} (event {violation.index}): {violation.message}"
                )
            failures += len(item.violations)
        if all(item.outcome == NOT_CHECKED for item in linted):
            empty += 1
            print(f"{path}: nothing checked: " + _why_nothing(len(linted)))
        found = _print_secrets(path)
        secrets, secret_files = secrets + found, secret_files + (found > 0)
    if secrets:
        print(
            f"{secrets} secret(s) in {secret_files} file(s): remove them with "
            "`tapedeck redact PATH...` (`--check` lists them without writing)"
        )
    print(
        f"{len(files)} file(s), {sum(outcomes.values())} interaction(s): "
        f"{outcomes[CHECKED]} checked, {outcomes[NOT_A_STREAM]} without a stream, "
        f"{outcomes[NOT_CHECKED]} not checked; {failures} violation(s), {broken} unreadable"
    )
    if broken:
        return 2
    if failures or secrets:
        return 1
    # Nothing checked is not a pass, nor a violation: its own code (as pytest's 5, "no
    # tests collected"), so that CI fails and a script can tell the two apart.
    return 3 if empty else 0


def _print_secrets(path: Path) -> int:
    """Print the secrets in a cassette, masked (none for a raw stream body); how many."""
    from mockserver.cassette_secrets import find_secrets

    try:
        found = find_secrets(path)
    except TapedeckError:
        return 0  # not a cassette: the stream lint above judged it
    for finding in found:
        print(f"{finding.source} secret: {finding}")
    return len(found)


def run_redact(paths: Sequence[str], *, check: bool = False) -> int:
    """Remove every credential and account id from the cassettes, in place (``check``:
    list them, write nothing). Exit code: 2 when a file cannot be read; else 1 when
    secrets were found (``check``) or some could not be removed; else 0."""
    from mockserver.cassette_secrets import redact_file
    from mockserver.index import cassette_files

    files = cassette_files(paths)
    if not files:
        print("tapedeck redact: no cassette files found in " + ", ".join(paths), file=sys.stderr)
        return 2
    found = left = changed = broken = 0
    for path in files:
        try:
            sweep = redact_file(path, write=not check)
        except (TapedeckError, OSError) as exc:
            print(f"{path}: cannot be read: {exc}")
            broken += 1
            continue
        for finding in sweep.removed:
            print(f"{finding.source} {'found' if check else 'removed'}: {finding}")
        for finding in sweep.left:
            print(f"{finding.source} left in place (inside a binary body): {finding}")
        found, left = found + len(sweep.removed), left + len(sweep.left)
        changed += sweep.rewritten
    done = "found" if check else f"removed ({changed} file(s) rewritten)"
    print(f"{len(files)} file(s): {found} secret(s) {done}, {left} left, {broken} unreadable")
    if broken:
        return 2
    return 1 if left or (check and found) else 0


def _why_nothing(count: int) -> str:
    if not count:
        return "the cassette holds no interactions."
    return (
        f"no dialect serves the route of any of its {count} interaction(s). Way out: lint "
        "judges the protocols Tapedeck speaks (README 'Base URLs' lists their routes); check "
        "the recorded paths, or lint this cassette with the tools of its own protocol."
    )
