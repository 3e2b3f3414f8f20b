import openai
import pytest
from hypothesis import given, settings

from pytest_plugin.strategies import streams


@pytest.fixture(scope="module")
def client(tapedeck_stream):
    # One client for all examples: a new SDK client per example is slow enough to trip
    # hypothesis's deadline on a loaded CI machine.
    return openai.OpenAI(base_url=tapedeck_stream.base_url(), api_key="k", max_retries=0)


@settings(deadline=None)  # a stream over real HTTP; CI machines are slow and uneven
@given(stream=streams("openai_chat", include_usage=True, tools=False, n=1))
def test_my_client_reads_every_legal_stream(tapedeck_stream, client, stream):
    with tapedeck_stream.serving(stream):
        chunks = list(
            client.chat.completions.create(
                model="m", messages=[], stream=True, stream_options={"include_usage": True}
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == stream.script.text
