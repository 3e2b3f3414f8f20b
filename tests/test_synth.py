"""The bundled cassettes are exactly what the synthesizer and the writer make; the
``tapedeck synth`` command writes interactions a server then replays."""

from __future__ import annotations

import json
from pathlib import Path

from mockserver import cassettes
from mockserver.cli import main
from mockserver.synth import write_bundled
from tests.conftest import ROOT


def test_bundled_cassettes_are_what_the_synthesizer_makes(tmp_path: Path) -> None:
    written = write_bundled(tmp_path)
    assert written
    for path in written:
        relative = path.relative_to(tmp_path)
        assert path.read_bytes() == (ROOT / "cassettes" / relative).read_bytes(), relative


def test_every_bundled_cassette_is_made_by_a_recipe(tmp_path: Path) -> None:
    made = {p.relative_to(tmp_path) for p in write_bundled(tmp_path)}
    shipped = {p.relative_to(ROOT / "cassettes") for p in (ROOT / "cassettes").rglob("*.yaml")}
    assert shipped == made


def test_synth_command_appends_interactions(tmp_path: Path) -> None:
    out = tmp_path / "made.yaml"
    request = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert main(["synth", "--out", str(out), "--request", request, "--text", "Hello!"]) == 0
    assert main(["synth", "--out", str(out), "--request", request, "--status", "503"]) == 0
    first, second = cassettes.load(out)
    assert json.loads(first.response.body)["choices"][0]["message"]["content"] == "Hello!"
    assert second.response.status == 503
    assert json.loads(second.response.body)["error"]["type"] == "server_error"
