"""``tapedeck serve``: the server its options make (``serve_options``): the cassettes
read into a Library (through the index cache), a Player, a Recorder when recording, the
faults and the limits, then the app on the port, in one process or in ``--workers`` forked
ones.

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) parses
the arguments and calls ``run_serve``. Everything heavy is imported inside it, so that
``tapedeck --version`` and the pytest plugin stay light.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
from pathlib import Path

from mockserver import loops


def bundled_cassettes() -> Path:
    """The cassettes shipped with Tapedeck: inside the wheel, or the checkout's folder."""
    here = Path(__file__).resolve().parent.parent  # mockserver/, above this package
    installed = here / "bundled_cassettes"
    return installed if installed.is_dir() else here.parent / "cassettes"


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
