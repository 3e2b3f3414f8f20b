"""The index cache: a second load of unchanged cassettes maps what the first one prepared,
and is the same library; a change to a cassette (even one that keeps its size and its
modification time), to Tapedeck or to the cache file itself makes it read the cassette
again; a cache that cannot be used never stops a start.

The expected values come from loading without a cache, and replay is compared through
two real servers on loopback, one on each library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import cassettes, index_codec
from mockserver.dialects import resolve
from mockserver.index import LazyEntries, Library, segment_of
from mockserver.index_cache import OFF, IndexCache, directory, fingerprint
from mockserver.misses import explain_miss
from mockserver.model import Exchange, Request, Response, Timing
from mockserver.server_thread import BackgroundServer
from tests import rawhttp

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "cassettes"
CHAT = "/v1/chat/completions"
STAMP = fingerprint("test")  # one stamp per test run: the source cannot change under a test


def chat_exchange(content: str, answer: str, *, stream: bool = False) -> Exchange:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
        events = [{"choices": [{"index": 0, "delta": {"content": part}}]} for part in answer]
        text = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
        response = Response(200, (("content-type", "text/event-stream"),), text.encode())
    else:
        reply = {"object": "chat.completion", "choices": [{"message": {"content": answer}}]}
        response = Response(
            200, (("content-type", "application/json"),), json.dumps(reply).encode()
        )
    raw = json.dumps(body).encode()
    return Exchange(
        Request("POST", CHAT, body=raw, json=body, origin="https://api.openai.com"), response
    )


def write(path: Path, *exchanges: Exchange) -> Path:
    cassettes.dump(list(exchanges), path)
    return path


def cached(paths: list[Path], folder: Path, stamp: bytes = STAMP) -> tuple[Library, IndexCache]:
    """A load through a cache in ``folder``, its writes done (as ``tapedeck serve`` does
    them, after the load)."""
    cache = IndexCache(folder, stamp=stamp)
    library = Library.from_paths(paths, store=cache)
    cache.save()
    return library, cache


def assert_same(got: Library, expected: Library) -> None:
    """Everything Player and misses read, and every entry, equal."""
    assert len(got) == len(expected)
    assert got.unserved == expected.unserved
    for position, entry in enumerate(expected.entries):
        key = got.key_at(position)
        assert key == entry.key and hash(key) == hash(entry.key)
        assert got.entries[position] == entry  # exchange, source, dialect, headers, wire...
        assert got.positions(entry.key) == expected.positions(entry.key)
        assert got.bucket(entry.key) == expected.bucket(entry.key)


def test_a_second_load_maps_the_cache_and_is_the_same_library(tmp_path: Path) -> None:
    expected = Library.from_paths([BUNDLED])
    first, cache = cached([BUNDLED], tmp_path)
    assert (cache.hits, cache.misses) == (0, len(list(BUNDLED.rglob("*.yaml"))))
    assert_same(first, expected)
    second, cache = cached([BUNDLED], tmp_path)
    assert (cache.hits, cache.misses) == (len(list(BUNDLED.rglob("*.yaml"))), 0)
    assert isinstance(second.entries, LazyEntries)
    assert_same(second, expected)
    assert second.entries[0].source == "anthropic/" + expected.entries[0].source.split("/", 1)[1]


def replay_all(library: Library, requests: list[Exchange]) -> list[Any]:
    """Every request sent to a real server on ``library``: status, headers (but the
    date), chunks and body of each answer, as the bytes came."""
    answers = []
    with BackgroundServer(library) as server:
        for exchange in requests:
            request = exchange.request
            query = "&".join(f"{k}={v}" for k, v in request.query)
            headers = {
                k: v for k, v in request.headers if k.lower() not in ("host", "content-length")
            }
            got = rawhttp.request(
                server.url,
                request.path + (f"?{query}" if query else ""),
                request.body,
                method=request.method,
                headers=headers,
            )
            kept = [(k, v) for k, v in got.headers if k.lower() != "date"]
            answers.append((got.status, kept, got.chunks, got.body))
    return answers


def test_replay_through_a_server_gives_the_same_bytes(tmp_path: Path) -> None:
    expected = Library.from_paths([BUNDLED])
    cached([BUNDLED], tmp_path)
    second, cache = cached([BUNDLED], tmp_path)
    assert cache.misses == 0
    requests = [entry.exchange for entry in expected.entries]
    requests.append(chat_exchange("nothing recorded this", "-"))  # a miss, explained
    assert replay_all(second, requests) == replay_all(expected, requests)


def test_a_miss_is_explained_alike(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", *(chat_exchange(f"question {i}", "a") for i in range(5)))
    cached([path], tmp_path / "cache")
    second, cache = cached([path], tmp_path / "cache")
    expected = Library.from_paths([path])
    assert cache.hits == 1
    request = chat_exchange("question 9", "-").request
    match = resolve(request.method, request.path)
    assert match is not None
    key = expected.key(request, match)
    assert explain_miss(second, request, second.key(request, match), ()) == explain_miss(
        expected, request, key, ()
    )


def test_a_cassette_changed_in_place_is_read_again_never_stale(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "alpha"))
    stat = path.stat()
    cached([path], tmp_path / "cache")
    # The same size and the same modification time: only the content tells them apart.
    path.write_bytes(path.read_bytes().replace(b"alpha", b"bravo"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    library, cache = cached([path], tmp_path / "cache")
    assert (cache.hits, cache.misses) == (0, 1)
    assert b"bravo" in library.entries[0].exchange.response.body
    again, cache = cached([path], tmp_path / "cache")
    assert cache.hits == 1 and b"bravo" in again.entries[0].exchange.response.body


def only_file(cache: IndexCache) -> Path:
    (found,) = cache.files.glob("*.tdx")
    return found


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return os.urandom(len(data))


def _flip_an_entry_byte(data: bytes) -> bytes:
    middle = index_codec.HEADER.size + index_codec.DIGEST + 40  # inside the first blob
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _other_format(data: bytes) -> bytes:
    header = list(index_codec.HEADER.unpack_from(data))
    header[1] = index_codec.FORMAT + 1
    return index_codec.HEADER.pack(*header) + data[index_codec.HEADER.size :]


def _empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize(
    "damage", [_truncate, _garbage, _flip_an_entry_byte, _other_format, _empty]
)
def test_a_corrupt_cache_file_is_ignored_and_replaced(tmp_path: Path, damage: Any) -> None:
    path = write(
        tmp_path / "c.yaml",
        chat_exchange("one", "first answer"),
        chat_exchange("two", "second", stream=True),
    )
    _, cache = cached([path], tmp_path / "cache")
    damaged = only_file(cache)
    damaged.write_bytes(damage(damaged.read_bytes()))
    library, cache = cached([path], tmp_path / "cache")
    assert (cache.hits, cache.misses) == (0, 1)
    expected = Library.from_paths([path])
    assert_same(library, expected)
    requests = [entry.exchange for entry in expected.entries]
    assert replay_all(library, requests) == replay_all(expected, requests)
    # Replaced: the next load maps it again.
    again, cache = cached([path], tmp_path / "cache")
    assert cache.hits == 1
    assert_same(again, expected)


def test_an_unwritable_cache_folder_still_starts(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "there"))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")  # even root cannot mkdir
    cache = IndexCache(blocked, stamp=STAMP)
    library = Library.from_paths([path], store=cache)
    assert cache.misses == 1 and cache.save() == 0  # logged, not raised
    assert_same(library, Library.from_paths([path]))
    again, cache = cached([path], blocked)
    assert cache.misses == 1
    assert_same(again, Library.from_paths([path]))


def test_another_tapedeck_misses_the_cache(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "there"))
    assert fingerprint("1.0") != fingerprint("1.1")
    assert fingerprint("1.0") == fingerprint("1.0")
    cached([path], tmp_path / "cache", stamp=fingerprint("1.0"))
    _, cache = cached([path], tmp_path / "cache", stamp=fingerprint("1.1"))
    assert (cache.hits, cache.misses) == (0, 1)
    _, cache = cached([path], tmp_path / "cache", stamp=fingerprint("1.0"))
    assert (cache.hits, cache.misses) == (1, 0)


def test_files_added_to_and_removed_from_a_folder_are_seen(tmp_path: Path) -> None:
    folder = tmp_path / "cassettes"
    write(folder / "a.yaml", chat_exchange("a", "from a"))
    write(folder / "b.yaml", chat_exchange("b", "from b"))
    cached([folder], tmp_path / "cache")
    write(folder / "sub" / "c.yaml", chat_exchange("c", "from c"))
    library, cache = cached([folder], tmp_path / "cache")
    assert (cache.hits, cache.misses) == (2, 1)
    assert_same(library, Library.from_paths([folder]))
    assert [e.source for e in library.entries] == ["a.yaml#0", "b.yaml#0", "sub/c.yaml#0"]
    (folder / "a.yaml").unlink()
    library, cache = cached([folder], tmp_path / "cache")
    assert (cache.hits, cache.misses) == (2, 0)
    assert [e.source for e in library.entries] == ["b.yaml#0", "sub/c.yaml#0"]


def test_one_file_under_two_names_shares_its_cache_file(tmp_path: Path) -> None:
    folder = tmp_path / "cassettes"
    path = write(folder / "x.yaml", chat_exchange("x", "y"))
    cached([folder], tmp_path / "cache")
    library, cache = cached([path], tmp_path / "cache")
    assert cache.hits == 1
    assert library.entries[0].source == f"{path}#0"


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="counts open descriptors in /dev/fd")
def test_a_warm_cache_holds_no_file_descriptor_per_small_cassette(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server counts its descriptors (server_limits.FD_RESERVE): 40 small cassettes must
    # not hold 40 of them; a large index file, mapped, holds one while it is used.
    paths = [write(tmp_path / f"c{n}.yaml", chat_exchange(f"q{n}", "a")) for n in range(40)]
    cached(paths, tmp_path / "cache")
    before = len(os.listdir("/dev/fd"))
    warm, cache = cached(paths, tmp_path / "cache")
    assert cache.hits == 40
    assert len(os.listdir("/dev/fd")) - before <= 1
    monkeypatch.setattr(index_codec, "MAP_ABOVE", 0)  # every file "large": mapped
    mapped, _ = cached(paths[:3], tmp_path / "cache")
    assert len(os.listdir("/dev/fd")) - before >= 3
    assert_same(warm, Library.from_paths(paths))
    assert_same(mapped, Library.from_paths(paths[:3]))


def test_a_missing_cassette_fails_as_without_a_cache(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yaml"
    with pytest.raises(Exception) as without:
        Library.from_paths([missing])
    with pytest.raises(type(without.value)) as with_cache:
        Library.from_paths([missing], store=IndexCache(tmp_path / "cache", stamp=STAMP))
    assert str(with_cache.value) == str(without.value)


def test_where_it_lives_and_how_it_is_turned_off(tmp_path: Path) -> None:
    assert directory({"TAPEDECK_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert directory({"XDG_CACHE_HOME": "/x"}) == Path("/x/tapedeck")
    assert directory({"TAPEDECK_CACHE_DIR": "", "XDG_CACHE_HOME": "/x"}) == Path("/x/tapedeck")
    assert directory({}) == Path.home() / ".cache" / "tapedeck"
    for off in OFF:
        assert IndexCache.from_environment({"TAPEDECK_INDEX_CACHE": off.upper()}) is None
    on = IndexCache.from_environment({"TAPEDECK_CACHE_DIR": str(tmp_path)})
    assert on is not None and on.folder == tmp_path


def test_prune_keeps_the_cache_bounded(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path, stamp=STAMP, max_bytes=2500, max_age=100.0)
    cache.files.mkdir()
    now = time.time()
    ages = {"old": 200.0, "a": 50.0, "b": 40.0, "c": 30.0, "d": 20.0}
    for name, age in ages.items():
        made = cache.files / f"{name}.tdx"
        made.write_bytes(b"x" * 1000)
        os.utime(made, (now - age, now - age))
    stale = cache.files / ".temp.abc"
    stale.write_bytes(b"half")
    os.utime(stale, (now - 7200, now - 7200))
    fresh = cache.files / ".temp.def"
    fresh.write_bytes(b"being written")
    cache.prune(now)
    # "old" is unused too long; then the least recently used go until 2,500 bytes fit.
    assert sorted(p.name for p in cache.files.iterdir()) == [".temp.def", "c.tdx", "d.tdx"]


def test_a_cache_hit_counts_as_a_use(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "there"))
    _, cache = cached([path], tmp_path / "cache")
    file = only_file(cache)
    os.utime(file, (1, 1))
    cached([path], tmp_path / "cache")
    assert file.stat().st_mtime > time.time() - 600


def test_a_growing_cassette_is_keyed_by_what_was_complete(tmp_path: Path) -> None:
    path = tmp_path / "grown.yaml"
    cassettes.append(path, chat_exchange("one", "1"))
    first, _ = cached([path], tmp_path / "cache")
    cassettes.append(path, chat_exchange("two", "2"))
    second, cache = cached([path], tmp_path / "cache")
    assert cache.misses == 1 and len(second) == len(first) + 1


def test_saving_in_the_background_writes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "there"))
    cache = IndexCache(tmp_path / "cache", stamp=STAMP)
    Library.from_paths([path], store=cache)
    cache.save_in_background().join()
    assert only_file(cache).stat().st_size > 0
    assert cache.save() == 0  # nothing left to write


# --------------------------------------------------------------------------- any exchange

any_text = st.text(st.characters(exclude_categories=()), max_size=6)  # surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
header_pairs = st.lists(
    st.tuples(st.sampled_from(["x-a", "X-B", "content-type"]), st.text(max_size=8)), max_size=3
)


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    stream = draw(st.booleans())
    body: dict[str, Any] = {"model": draw(st.text(max_size=5)), "messages": draw(json_values)}
    if stream:
        body["stream"] = True
    raw = json.dumps(body).encode()
    events = draw(st.lists(st.binary(max_size=20), max_size=4))
    answer = b"".join(b"data: " + event.replace(b"\n", b" ") + b"\n\n" for event in events)
    timing = draw(
        st.none() | st.builds(Timing, st.floats(0, 9), st.tuples(st.floats(0, 9), st.floats(0, 9)))
    )
    query = draw(st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), max_size=2))
    origin = draw(st.sampled_from(["", "https://h"]))
    request = Request("POST", CHAT, tuple(query), tuple(draw(header_pairs)), raw, body, origin)
    status, reason = draw(st.sampled_from([200, 429, 500])), draw(st.text(max_size=5))
    response = Response(status, tuple(draw(header_pairs)), answer, reason)
    return Exchange(request, response, "", timing)


@settings(max_examples=30)
@given(st.lists(exchanges(), max_size=4))
def test_any_prepared_cassette_reads_back_equal(
    tmp_path_factory: Any, drawn: list[Exchange]
) -> None:
    folder = tmp_path_factory.mktemp("codec")
    named = [Exchange(x.request, x.response, f"n.yaml#{i}", x.timing) for i, x in enumerate(drawn)]
    expected = Library(named)
    key = b"k" * index_codec.DIGEST
    with (folder / "f.tdx").open("wb") as stream:
        index_codec.write(stream, segment_of(named), key, "n.yaml")
    segment = index_codec.read(folder / "f.tdx", key, "n.yaml")
    assert_same(Library.from_segments([segment]), expected)
    with pytest.raises(index_codec.CorruptIndex):
        index_codec.read(folder / "f.tdx", b"o" * index_codec.DIGEST, "n.yaml")


# --------------------------------------------------------------------------- the command


def serve_once(cassette: Path, cache: Path, *extra: str) -> str:
    """The banner of ``tapedeck serve`` after one request answered, then stopped."""
    environ = {**os.environ, "TAPEDECK_CACHE_DIR": str(cache)}
    environ.pop("TAPEDECK_INDEX_CACHE", None)
    command = [sys.executable, "-m", "mockserver", "serve", "--cassettes", str(cassette)]
    with subprocess.Popen(
        [*command, "--port", "0", *extra], env=environ, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline()]
            url = banner[0].rsplit(" ", 1)[-1].strip()
            while not banner[-1].startswith("  index cache") and "--no-index-cache" not in extra:
                banner.append(process.stdout.readline())
                assert banner[-1], "".join(banner)
            answer = rawhttp.request(url, CHAT, chat_exchange("hello", "-").request.body)
            assert b"there" in answer.body
        finally:
            process.terminate()
            process.wait(timeout=30)
    return "".join(banner)


def test_serve_maps_the_cache_on_its_second_start(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", chat_exchange("hello", "there"))
    assert "0 cassette file(s) from it, 1 read" in serve_once(path, tmp_path / "cache")
    assert "1 cassette file(s) from it, 0 read" in serve_once(path, tmp_path / "cache")
    assert "index cache" not in serve_once(path, tmp_path / "off", "--no-index-cache")
    assert not (tmp_path / "off").exists()
