"""A recording nested past Python's recursion limit is a clear cassette error at start-up,
never a RecursionError that takes the server down."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mockserver import CassetteFormatError, Library, Script, loads
from mockserver.cassettes import dumps
from mockserver.synth import synthesize


def test_a_recorded_body_nested_too_deep_names_the_file_and_interaction() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "x": 1}
    plain = synthesize("/v1/chat/completions", body, Script(text="hi"))
    deep = json.dumps(body).replace('"x": 1', '"x": ' + "[" * 900 + "]" * 900)
    exchange = replace(plain, request=replace(plain.request, body=deep.encode(), json=None))
    text = dumps([plain, exchange])
    with pytest.raises(CassetteFormatError) as caught:
        Library(loads(text, "deep.yaml"))
    assert caught.value.path == "deep.yaml" and caught.value.index == 1
    assert "too deep" in str(caught.value)
