"""The ``tapedeck`` command: ``serve`` cassettes, ``lint`` them, ``check`` a proxy.

The last module of the flow: it parses arguments, builds a Library, and hands it to the
app or to the validators. Exit codes: 0 fine, 1 violations found, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mockserver.conformance.scenarios import CATALOGUES
from mockserver.dialects import DEFAULT_DIALECT, upstreams
from mockserver.errors import TapedeckError
from mockserver.recorder import RECORD_MODES

DEFAULT_PORT = 8787


def bundled_cassettes() -> Path:
    """The cassettes shipped with Tapedeck: inside the wheel, or the checkout's folder."""
    here = Path(__file__).resolve().parent
    installed = here / "bundled_cassettes"
    return installed if installed.is_dir() else here.parent / "cassettes"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tapedeck", description="Record/replay mock server for LLM provider APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve cassettes over HTTP")
    serve.add_argument(
        "--cassettes",
        action="append",
        metavar="PATH",
        help="cassette file or folder (repeatable; default: the bundled cassettes)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
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

    synth = commands.add_parser(
        "synth", help="write a synthesized interaction into a cassette file"
    )
    synth.add_argument("--bundled", action="store_true", help="remake the bundled cassettes")
    synth.add_argument("--out", help="cassette file to append to (folder with --bundled)")
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
    check.add_argument("--model", default="gpt-4o-mini", help="the model name to ask the proxy")
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

    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return run_check(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "synth":
            return run_synth(args, parser)
        return run_lint(args.paths, args.dialect, args.include_usage, args.request)
    except TapedeckError as exc:
        print(f"tapedeck: {exc}", file=sys.stderr)
        return 2


def run_check(args: argparse.Namespace) -> int:
    """Exit 0: no fail; 1: a fail (a warn too, with --strict); 2: the run could not happen."""
    from mockserver.conformance import run_conformance

    try:
        report = run_conformance(
            args.proxy,
            args.upstream_port,
            model=args.model,
            api_key=args.api_key,
            dialects=args.dialect or [DEFAULT_DIALECT],
            scenarios=args.scenario,
            timeout=args.timeout,
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


def run_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from mockserver.app import ServerState, make_app
    from mockserver.dialects import sdk_environment
    from mockserver.library import Library, Player
    from mockserver.recorder import Recorder, parse_upstreams
    from mockserver.redaction import DEFAULT_REDACTION
    from mockserver.timing import Profile

    recording = args.record_mode != "none"
    paths = args.cassettes or [Path("cassettes") if recording else bundled_cassettes()]
    if recording:
        target = Path(args.record_to or _record_target(Path(paths[0])))
        paths = [p for p in paths if Path(p).exists()]
    library = Library.from_paths(paths)
    try:
        profile = Profile.parse(args.profile) if args.profile else None
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
    # A server runs for hours: it keeps no log of the requests it answered.
    player = Player(
        library,
        allow_repeats=not args.no_repeats,
        synthesize=args.synthesize,
        keep_requests=False,
    )
    state = ServerState(player, recorder=recorder, speed=args.speed, profile=profile)
    app = make_app(state, max_body=int(args.max_body_mb * 1024 * 1024))
    url = f"http://{args.host}:{args.port}"
    lines = [f"Tapedeck serving {len(library)} recorded interactions at {url}"]
    lines += [f"  not served (no dialect for its route): {x.source}" for x in library.unserved]
    lines.append("Point the SDKs at it (the keys are dummies: Tapedeck never checks them):")
    lines += [f"  export {name}={value}" for name, value in sdk_environment(url).items()]
    if args.synthesize:
        lines.append("  requests that match no recording are answered by the synthesizer")
    if recorder is not None:
        lines.append(f"  recording ({recorder.mode}) into {recorder.cassette}")

    def banner(_: str) -> None:
        # run_app calls this once the socket listens: the first line means "ready".
        print("\n".join(lines), flush=True)

    web.run_app(app, host=args.host, port=args.port, print=banner, access_log=None)
    return 0


def _record_target(path: Path) -> Path:
    """Recording into a cassette file named by --cassettes, or recorded.yaml in a folder."""
    return path if path.suffix in (".yaml", ".yml", ".json") else path / "recorded.yaml"


def run_synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    from mockserver import cassettes, synth
    from mockserver.model import Script, ToolCall

    if args.bundled:
        for path in synth.write_bundled(args.out or bundled_cassettes()):
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
    import json

    from mockserver.checks import lint_path, stream_request
    from mockserver.dialects import DIALECTS
    from mockserver.library import cassette_files

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
    failures = 0
    broken = 0
    for path in files:
        try:
            findings = lint_path(path, dialect, raw_request)
        except (TapedeckError, OSError) as exc:
            hint = "" if dialect else " (a raw stream body? name its protocol with --dialect)"
            print(f"{path}: cannot be read: {exc}{hint}")
            broken += 1
            continue
        for source, violation in findings:
            print(f"{source} {violation.rule} (event {violation.index}): {violation.message}")
        failures += len(findings)
    print(f"{len(files)} file(s), {failures} violation(s), {broken} unreadable")
    if broken:
        return 2
    return 1 if failures else 0
