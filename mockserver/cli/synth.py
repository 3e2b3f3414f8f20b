"""``tapedeck synth``: its options, and the run that writes a synthesized interaction
into a cassette file (``synth``), or remakes the bundled cassettes.

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) parses
the arguments and calls ``run_synth``, which imports what it uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
