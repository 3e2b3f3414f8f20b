"""How a cassette grows and what is read back: one append per recording (the file is never
rewritten, so the cost does not grow with it), a reader never sees half an interaction
(concurrent writers, or one killed mid-write), vcrpy still loads the file; a YAML alias
bomb is refused before it expands; temp files left by a killed writer are removed and
never read as cassettes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import vcr
import yaml

from mockserver import cassettes
from mockserver.errors import CassetteFormatError
from mockserver.index import Library
from mockserver.model import Exchange, Request, Response, Timing
from mockserver.recorder import Recorder

GROWING = b"version: 1\ninteractions:\n"
END = b"# end of interaction\n"


def exchange(words: str, body: bytes = b"") -> Exchange:
    sent = {"model": "m", "messages": [{"role": "user", "content": words}], "stream": True}
    request = Request(
        "POST",
        "/v1/chat/completions",
        headers=(("content-type", "application/json"),),
        body=json.dumps(sent).encode(),
        json=sent,
        origin="https://api.openai.com",
    )
    stream = body or f'data: {{"said": "{words}"}}\n\ndata: [DONE]\n\n'.encode()
    response = Response(200, (("content-type", "text/event-stream"),), stream, "OK")
    return Exchange(request, response, timing=Timing(0.1, (0.2, 0.3)))


def asked(path: Path) -> list[str]:
    return [e.request.json["messages"][0]["content"] for e in cassettes.load(path)]


def test_append_adds_bytes_at_the_end_and_never_rewrites(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    cassettes.append(target, exchange("one"))
    before = target.read_bytes()
    inode = target.stat().st_ino
    cassettes.append(target, exchange("two"))
    after = target.read_bytes()
    assert target.stat().st_ino == inode  # the same file, not a replacement
    assert after.startswith(before)  # what was there is untouched
    assert after.startswith(GROWING) and after.endswith(END)
    assert asked(target) == ["one", "two"]
    # The appended bytes are exactly one interaction, as a fresh cassette would hold it.
    alone = tmp_path / "alone.yaml"
    cassettes.append(alone, exchange("two"))
    assert after[len(before) :] == alone.read_bytes()[len(GROWING) :]


def test_a_grown_cassette_is_one_vcrpy_replays(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    for words in ("one", "two", "three"):
        cassettes.append(target, exchange(words))
    document = yaml.safe_load(target.read_text())
    assert document["version"] == 1 and len(document["interactions"]) == 3
    with vcr.VCR(record_mode="none").use_cassette(str(target)) as tape:
        for words in ("one", "two", "three"):
            sent = {"model": "m", "messages": [{"role": "user", "content": words}], "stream": True}
            reply = httpx.post("https://api.openai.com/v1/chat/completions", json=sent)
            assert reply.content == exchange(words).response.body
        assert tape.all_played


def test_a_cassette_in_another_layout_is_rewritten_once_then_appended(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    cassettes.dump([exchange("one")], target)  # vcrpy's layout: version last
    assert not target.read_bytes().startswith(GROWING)
    cassettes.append(target, exchange("two"))
    assert target.read_bytes().startswith(GROWING)
    inode = target.stat().st_ino
    cassettes.append(target, exchange("three"))
    assert target.stat().st_ino == inode
    assert asked(target) == ["one", "two", "three"]


def test_replace_starts_the_cassette_over(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    cassettes.append(target, exchange("one"))
    cassettes.append(target, exchange("two"), replace=True)
    assert asked(target) == ["two"]


def test_a_tail_cut_short_is_not_read_and_is_cut_by_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tapedeck")
    target = tmp_path / "c.yaml"
    cassettes.append(target, exchange("one"))
    whole = target.read_bytes()
    # A writer killed part-way through its append: the start of an interaction whose
    # literal block would load as a shorter, wrong body if it were read.
    alone = tmp_path / "alone.yaml"
    cassettes.append(alone, exchange("two"))
    item = alone.read_bytes()[len(GROWING) :]
    cut = item.index(b"data: [DONE]")
    with target.open("ab") as stream:
        stream.write(item[:cut])
    assert asked(target) == ["one"]  # the unfinished interaction is not read
    assert "ignored" in caplog.text and "after its last complete record" in caplog.text
    cassettes.append(target, exchange("three"))
    assert target.read_bytes().startswith(whole)
    assert asked(target) == ["one", "three"]
    assert "cut" in caplog.text and "a writer was killed while appending" in caplog.text


def test_a_hand_edited_cassette_without_end_lines_is_kept_whole(tmp_path: Path) -> None:
    target = tmp_path / "c.yaml"
    cassettes.append(target, exchange("one"))
    cassettes.append(target, exchange("two"))
    edited = target.read_bytes().replace(END, b"")  # e.g. rewritten by another YAML tool
    target.write_bytes(edited)
    assert asked(target) == ["one", "two"]
    cassettes.append(target, exchange("three"))
    assert asked(target) == ["one", "two", "three"]


def _append_many(target: str, worker: int, count: int, size: int) -> None:
    for number in range(count):
        body = (f"data: {worker}-{number} ".encode() + b"x" * size) + b"\n\n"
        cassettes.append(Path(target), exchange(f"{worker}-{number}", body))


def test_readers_never_see_half_an_interaction_while_writers_append(tmp_path: Path) -> None:
    """Big interactions (many pages each, so a write is not one copy in the kernel), two
    writer processes, and a reader loading the file as fast as it can meanwhile."""
    target = tmp_path / "shared.yaml"
    cassettes.append(target, exchange("first"))
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_append_many, args=(str(target), w, 6, 100_000)) for w in (1, 2)
    ]
    for process in writers:
        process.start()
    loads, seen = 0, 0
    while any(process.is_alive() for process in writers) or loads == 0:
        loaded = cassettes.load(target)  # never a CassetteFormatError, never a short body
        for item in loaded[1:]:
            assert item.response.body.endswith(b"x" * 100_000 + b"\n\n")
        assert len(loaded) >= seen  # and never fewer than before
        seen, loads = len(loaded), loads + 1
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    assert len(cassettes.load(target)) == 13
    assert loads > 1


BOMB = textwrap.dedent(
    """\
    interactions:
    - request: {method: POST, uri: 'http://x/v1/chat/completions', headers: {}, body: null}
      response:
        status: {code: 200, message: OK}
        headers: {}
        body: {string: ''}
      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
      i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    version: 1
    """
)

# Loads the cassette under a 1 GiB address-space limit: an alias bomb that is expanded
# dies of MemoryError instead of taking the machine's memory.
LOAD_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from mockserver import cassettes
from mockserver.errors import CassetteFormatError
try:
    cassettes.load(sys.argv[1])
except CassetteFormatError as exc:
    print(exc)
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    # The bomb: a few hundred bytes that expand to 387 million strings.
    assert len(BOMB.encode()) < 1000
    done = subprocess.run(
        [sys.executable, "-c", LOAD_LIMITED, str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"{bomb}: its YAML aliases (*name) expand it from")
    assert "more than twice its size" in done.stdout


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("interactions: &x [*x]\nversion: 1\n")
    with pytest.raises(CassetteFormatError, match="refers to itself"):
        cassettes.load(path)


def test_a_few_shared_values_still_load(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        interactions:
        - request: {method: POST, uri: 'http://x/v1/embeddings', headers: &h {a: [b]}}
          response: {status: {code: 200, message: OK}, headers: *h, body: {string: '{}'}}
        - request: {method: POST, uri: 'http://x/v1/embeddings', headers: *h}
          response: {status: {code: 200, message: OK}, headers: *h, body: {string: '{}'}}
        version: 1
        """
    )
    loaded = cassettes.loads(text, "shared.yaml")
    assert [e.request.headers for e in loaded] == [(("a", "b"),), (("a", "b"),)]


def test_a_temp_file_left_by_a_killed_writer_is_removed_and_never_read(
    tmp_path: Path,
) -> None:
    target = tmp_path / "c.yaml"
    # What kill -9 between mkstemp and rename leaves: an empty (or partial) temp file.
    stale = tmp_path / ".c.yaml.k2j4h6g8.tmp"
    stale.write_bytes(b"")
    other = tmp_path / ".other.yaml.k2j4h6g8.tmp"  # another cassette's: not ours to remove
    other.write_bytes(cassettes.dumps([exchange("temp")]).encode())
    assert len(Library.from_paths([tmp_path])) == 0  # neither is read as a cassette
    cassettes.append(target, exchange("one"))  # creating the cassette removes its own
    assert not stale.exists()
    assert other.exists()
    # Once the cassette grows by appends, a recorder removes them when it starts.
    stale.write_bytes(b"")
    Recorder("all", target)
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [other.name]
    assert asked(target) == ["one"]
