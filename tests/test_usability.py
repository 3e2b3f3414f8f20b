"""The small things that trip a new user, each driven the way a user meets it: a miss that
a client must not take for a rate limit, defaults spelled out or left out, entry points
given a dict or a misspelt dialect, the command line on a busy port, the plugin's port,
the bundled Azure recording, the README's property-test example."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import openai
import pytest

from mockserver import cassettes
from mockserver.cli import bundled_cassettes, main
from mockserver.errors import UnknownDialectError
from mockserver.index import Library
from mockserver.model import Request, Script
from mockserver.server_thread import BackgroundServer
from mockserver.synth import synthesize
from mockserver.validation import stream_request, validate
from pytest_plugin.properties import StreamServer, fetch_stream
from pytest_plugin.strategies import knobs
from tests.conftest import ROOT
from tests.proxies import free_port

README_EXAMPLE = ROOT / "tests" / "data" / "readme_property_example.py"


def chat_body(content: str, **fields: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}


def recording(path: Path, content: str, text: str = "recorded answer") -> None:
    exchange = synthesize("/v1/chat/completions", chat_body(content), Script(text=text, seed=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cassettes.dump([exchange], path)


# --- 1. a miss is never mistaken for a rate limit -----------------------------------------


# litellm imports a module on first call whose pydantic schema warns (not ours to fix).
LITELLM_WARNS = pytest.mark.filterwarnings("ignore:Items? .* `ReadOnly` qualifier:UserWarning")


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    # litellm's sync logging asks for the thread's event loop, and would make one that
    # nobody closes (a ResourceWarning, an error here): it gets ours, closed after.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no price list fetch
            import litellm  # in the dev extra: these tests need the real SDK

            yield litellm
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def ask_litellm(litellm: ModuleType, server: BackgroundServer, content: str) -> None:
    from litellm.types.router import RetryPolicy

    # What a careful caller configures: rate limits retried, bad requests not.
    policy = RetryPolicy(RateLimitErrorRetries=2, TimeoutErrorRetries=2, BadRequestErrorRetries=0)
    # Our own client, closed after: litellm would cache one and leave its socket open.
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
        litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=server.url + "/v1",
            api_key="x",
            messages=[{"role": "user", "content": content}],
            stream=True,
            retry_policy=policy,
            client=client,
        )


@LITELLM_WARNS
def test_a_miss_near_the_bundled_rate_limit_recording_is_a_bad_request(
    litellm: ModuleType,
) -> None:
    library = Library.from_paths([bundled_cassettes() / "openai_chat"])
    with BackgroundServer(library) as server:
        with pytest.raises(litellm.BadRequestError) as raised:
            ask_litellm(litellm, server, "This request is rate limited!")
        player = server.state.player
        assert len(player.requests) == 1  # not retried
    message = str(raised.value)
    assert not isinstance(raised.value, litellm.RateLimitError)
    # Still says which recording was nearest and how it differed.
    assert "\n  error-429.yaml#0 differs in:\n" in message
    assert '"This request is rate\u00b7limited."' in message
    assert '"This request is rate\u00b7limited!"' in message
    assert "splits words that clients read as an error kind" in message
    # The test's own report quotes the recording as it is.
    (miss,) = player.misses
    assert '"This request is rate limited."' in miss.explanation


@LITELLM_WARNS
@pytest.mark.parametrize(
    ("cassette", "prompt", "named"),
    [
        # pytest-recording names cassettes after the test: test_rate_limit_retry.yaml
        ("test_rate_limit_retry.yaml", "Hello there.", "test_rate\u00b7limit_retry.yaml#0"),
        ("timeouts.yaml", "The read operation timed out.", "time\u00b7outs.yaml#0"),
        ("overload.yaml", "The model is overloaded. Try later.", "over\u00b7load.yaml#0"),
        ("context.yaml", "This model's maximum context length is 8 tokens.", "context.yaml#0"),
        ("quota.yaml", "429 Quota exceeded; Resource exhausted.", "quo\u00b7ta.yaml#0"),
        ("large.yaml", "Request too large for gpt-4o-mini.", "large.yaml#0"),
    ],
)
def test_no_recorded_name_or_prompt_turns_a_miss_into_another_error(
    litellm: ModuleType, tmp_path: Path, cassette: str, prompt: str, named: str
) -> None:
    recording(tmp_path / cassette, prompt)
    with BackgroundServer(Library.from_paths([tmp_path])) as server:
        with pytest.raises(litellm.BadRequestError) as raised:
            ask_litellm(litellm, server, prompt + "!")
        assert len(server.state.player.requests) == 1
    assert type(raised.value) is litellm.BadRequestError  # no subclass: not a context error
    assert f"{named} differs in:" in str(raised.value)


def test_a_miss_without_such_words_is_sent_as_it_is(tmp_path: Path) -> None:
    recording(tmp_path / "chat.yaml", "Name three colours.")
    with BackgroundServer(Library.from_paths([tmp_path])) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        with client, pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(**chat_body("Name four colours."))
        (miss,) = server.state.player.misses
    assert raised.value.body["message"] == miss.explanation


# --- 2. tool_choice: the default spelled out equals the default left out --------------


@pytest.fixture(scope="module")
def bundled() -> Iterator[BackgroundServer]:
    with BackgroundServer(Library.from_paths([bundled_cassettes()])) as server:
        server.state.player.allow_repeats = True
        yield server


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name, description in (
        ("get_weather", "Current weather in a city."),
        ("get_time", "Local time in a city."),
    )
]


def tool_names(server: BackgroundServer, **fields: object) -> list[str]:
    body = chat_body("What is the weather and the time in Paris?", tools=TOOLS, **fields)
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **body
        )
        return [
            call.function.name
            for chunk in stream
            for choice in chunk.choices
            for call in choice.delta.tool_calls or ()
            if call.function and call.function.name
        ]


def test_tool_choice_auto_left_out_replays_a_recording_that_spelled_it_out(
    bundled: BackgroundServer,
) -> None:
    # stream-parallel-tool-calls.yaml was recorded with tool_choice "auto"; litellm omits it.
    assert tool_names(bundled) == ["get_weather", "get_time"]
    assert tool_names(bundled, tool_choice="auto") == ["get_weather", "get_time"]
    with pytest.raises(openai.BadRequestError, match="tool_choice: recorded \\(absent\\)"):
        tool_names(bundled, tool_choice="required")


def test_tool_choice_none_is_the_default_only_without_tools(bundled: BackgroundServer) -> None:
    body = chat_body("What is the capital of France?")  # nonstream.yaml: no tools, no choice
    with openai.OpenAI(base_url=bundled.url + "/v1", api_key="x", max_retries=0) as client:
        reply = client.chat.completions.create(tool_choice="none", **body)
        assert reply.choices[0].message.content == "The capital of France is Paris."
        with pytest.raises(
            openai.BadRequestError, match='tool_choice: recorded \\(absent\\), got "auto"'
        ):
            client.chat.completions.create(tool_choice="auto", **body)
    with pytest.raises(openai.BadRequestError, match="tool_choice: recorded \\(absent\\)"):
        tool_names(bundled, tool_choice="none")  # with tools, "none" is not the default


# --- 3. validate takes a dict; an unknown dialect name is an UnknownDialectError -------


def test_validate_takes_the_request_body_as_a_dict() -> None:
    (exchange,) = cassettes.load(bundled_cassettes() / "openai_chat" / "stream-include-usage.yaml")
    body = exchange.response.body
    asked = json.loads(exchange.request.body)
    assert validate("openai_chat", body, asked) == []
    assert validate("openai_chat", body, exchange.request) == []
    without = {key: value for key, value in asked.items() if key != "stream_options"}
    assert [v.rule for v in validate("openai_chat", body, without)] == ["usage-unrequested"]


def stream_server_base_url(name: str) -> str:
    with StreamServer() as server:
        return server.base_url(name)


@pytest.mark.parametrize(
    "call",
    [
        lambda: validate("openai-chat", b"data: [DONE]\n\n"),
        lambda: stream_request("opneai_chat", include_usage=True),
        lambda: knobs("antropic"),
        lambda: stream_server_base_url("gemni"),
        lambda: fetch_stream("http://127.0.0.1:9/v1", {}, dialect="olama"),
    ],
    ids=["validate", "stream_request", "knobs", "StreamServer.base_url", "fetch_stream"],
)
def test_an_unknown_dialect_name_lists_the_known_ones(call: Callable[[], object]) -> None:
    with pytest.raises(UnknownDialectError, match="; known dialects: openai_chat, ") as raised:
        call()
    # Callers that caught KeyError or ValueError before still do.
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, ValueError)


# --- 4, 5. the command line ---------------------------------------------------------------


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mockserver", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_serve_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = serve("--port", str(port))
    assert done.returncode == 2
    assert done.stderr == (
        f"tapedeck serve: cannot listen on 127.0.0.1:{port}: Address already in use. "
        "Way out: stop what holds that port, or choose another with --port N.\n"
    )


@pytest.mark.parametrize("port", ["70000", "-1", "eighty"])
def test_serve_refuses_a_port_that_cannot_be(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("tapedeck serve: error: argument --port: expected a port")
    assert port in error and "Traceback" not in error


def test_serve_on_an_address_not_of_this_machine_says_so() -> None:
    done = serve("--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: never a local address
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("tapedeck serve: cannot listen on 192.0.2.1:0: ")
    assert "Way out: give the host as an address of this machine" in done.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    declared = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"tapedeck {declared[1]}\n"


def test_synth_bundled_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in bundled_cassettes().rglob("*.yaml")}
    with pytest.raises(SystemExit) as exited:
        main(["synth", "--bundled"])
    assert exited.value.code == 2
    assert "synth --bundled needs --out DIR" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in bundled_cassettes().rglob("*.yaml")} == before


def test_synth_bundled_writes_where_it_is_told(tmp_path: Path) -> None:
    assert main(["synth", "--bundled", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "openai_chat" / "azure-stream.yaml").is_file()


# --- 6. the plugin's port -----------------------------------------------------------------

PORT_TEST = """
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_port(tapedeck, n):
    with open("url-" + tapedeck.url.rsplit(":", 1)[1], "w"):
        pass
"""


def test_the_plugin_listens_on_the_port_it_is_given(pytester: pytest.Pytester) -> None:
    port = free_port()
    pytester.makeini(f"[pytest]\ntapedeck_port = {port}\n")
    pytester.makepyfile(PORT_TEST.format(count=1))
    pytester.runpytest().assert_outcomes(passed=1)
    assert [p.name for p in pytester.path.glob("url-*")] == [f"url-{port}"]
    other = free_port()
    (pytester.path / f"url-{port}").unlink()
    pytester.runpytest("--tapedeck-port", str(other)).assert_outcomes(passed=1)  # beats ini
    assert [p.name for p in pytester.path.glob("url-*")] == [f"url-{other}"]


def test_each_xdist_worker_takes_the_next_port(pytester: pytest.Pytester) -> None:
    while True:  # two free ports in a row
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        break
    pytester.makepyfile(PORT_TEST.format(count=8))
    result = pytester.runpytest_subprocess("-n", "2", "--tapedeck-port", str(port))
    result.assert_outcomes(passed=8)
    assert sorted(p.name for p in pytester.path.glob("url-*")) == [
        f"url-{port}",
        f"url-{port + 1}",
    ]


def test_a_busy_plugin_port_errors_each_test_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PORT_TEST.format(count=1))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = pytester.runpytest("--tapedeck-port", str(port))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"tapedeck: the replay server cannot listen on 127.0.0.1:{port}: Address already "
            "in use. Way out: stop what holds that port, or choose another with "
            "--tapedeck-port N."
        ]
    )


def test_a_bad_plugin_port_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PORT_TEST.format(count=1))
    result = pytester.runpytest("--tapedeck-port", "http")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--tapedeck-port / tapedeck_port: expected a port from 0 to 65535 (0: any free "
            "port), found 'http'"
        ]
    )


# --- 7. the license -----------------------------------------------------------------------


def test_the_license_is_the_one_pyproject_names() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n\nCopyright (c) ")
    assert "Tapedeck contributors" in license_text.splitlines()[2]
    assert re.search(r'^license = "MIT"$', (ROOT / "pyproject.toml").read_text(), re.M)


# --- 8. the README's Azure example against `tapedeck serve`'s own cassettes -------------


def azure(port: int, version: str) -> openai.AzureOpenAI:
    """The client of README 'Azure OpenAI'."""
    return openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{port}",
        api_version=version,
        api_key="anything",
        max_retries=0,
    )


def test_the_azure_example_replays_from_the_bundled_cassettes() -> None:
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port)]
    messages = [{"role": "user", "content": "Say hello from Azure."}]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().startswith("Tapedeck serving ")  # listening
            with azure(port, "2024-10-21") as client:
                stream = client.chat.completions.create(
                    model="my-deployment", messages=messages, stream=True
                )
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == "Hello from Azure OpenAI!"
            with (
                azure(port, "2024-06-01") as other,
                pytest.raises(openai.BadRequestError, match=r"azure\.api-version: recorded "),
            ):
                other.chat.completions.create(model="my-deployment", messages=messages, stream=True)
        finally:
            server.terminate()


def test_the_bundled_azure_recording_is_an_azure_request() -> None:
    (exchange,) = cassettes.load(bundled_cassettes() / "openai_chat" / "azure-stream.yaml")
    request: Request = exchange.request
    assert request.origin.endswith(".openai.azure.com")
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert request.query == (("api-version", "2024-10-21"),)
    assert validate("openai_chat", exchange.response.body) == []


# --- 9. the README's property-test example, verbatim ------------------------------------


def test_the_readme_property_example_passes_as_written(pytester: pytest.Pytester) -> None:
    # A subprocess: hypothesis's defaults (a 200 ms deadline), not this suite's profile.
    # Fewer examples than the default 100 keep it quick; the deadline is what tripped.
    pytester.makeconftest(
        "from hypothesis import settings\n"
        "settings.register_profile('readme', max_examples=10)\n"
        "settings.load_profile('readme')\n"
    )
    pytester.makepyfile(test_readme_example=README_EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_readme_shows_the_property_example_as_tested() -> None:
    readme = (ROOT / "README.md").read_text()
    marker = "<!-- tests/data/readme_property_example.py -->\n```python\n"
    assert marker in readme, (
        "README 'Property tests' must show tests/data/readme_property_example.py"
    )
    shown = readme.split(marker, 1)[1].split("```\n", 1)[0]
    assert shown == README_EXAMPLE.read_text()
