"""``tapedeck lint`` and ``tapedeck redact``: their options, and the runs that judge
recorded streams against their protocol (``validation``) and find, or remove, the secrets
in cassettes (``cassette_secrets``); both print the secrets found the same way.

Where it sits: in the ``cli`` package, the last layer; ``main`` (``cli/__init__``) parses
the arguments and calls ``run_lint`` or ``run_redact``, which import what they use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mockserver.errors import TapedeckError


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
