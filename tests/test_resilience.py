"""``assert_resilient`` with the real openai SDK against the real server and its real
fault header machinery: a naive stream-joining client is caught when the stream is cut;
a careful one (it checks the finish reason) passes; retries are counted and timed against
retry-after; a client that waits past its own timeout is caught hanging."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings

from mockserver.dialects._kit.wire import DEFAULT_TEXT
from pytest_plugin.handle import Tapedeck
from pytest_plugin.resilience import Resilience, assert_resilient, default_faults
from pytest_plugin.strategies import faults

pytestmark = pytest.mark.tapedeck(synthesize=True)
MESSAGES = [{"role": "user", "content": "hi"}]


def naive(max_retries: int = 0, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    """Joins whatever the stream gave: the bug faults exist to find."""

    def call(base_url: str) -> str:
        with openai.OpenAI(
            base_url=base_url, api_key="sk-test", max_retries=max_retries, timeout=timeout
        ) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,  # type: ignore[arg-type]
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    return call


def careful(max_retries: int = 0, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    """The same, but a stream without a finish reason is an error, not an answer."""

    def call(base_url: str) -> str:
        with openai.OpenAI(
            base_url=base_url, api_key="sk-test", max_retries=max_retries, timeout=timeout
        ) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,  # type: ignore[arg-type]
            )
            text, finish = "", None
            for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
        if finish is None:
            raise ConnectionError(f"the stream ended without a finish reason after {text!r}")
        return text

    return call


def outcome(report: Resilience, fault: str) -> str:
    return next(o.describe() for o in report.outcomes if o.fault == fault)


def test_a_naive_client_returns_a_cut_stream_as_complete(tapedeck: Tapedeck) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_resilient(naive(), ["truncate:after=2"], server=tapedeck, timeout=2)
    message = str(caught.value)
    assert "the call is not resilient to truncate:after=2" in message
    assert "SILENTLY TRUNCATED" in message
    assert f"of {len(DEFAULT_TEXT)} characters (a prefix) without raising" in message


def test_a_careful_client_passes_every_default_fault(tapedeck: Tapedeck) -> None:
    report = assert_resilient(careful(max_retries=2), server=tapedeck, timeout=2, max_retries=2)
    assert report.expected == DEFAULT_TEXT
    assert [o.fault for o in report.outcomes] == list(default_faults(2, 2))
    # The SDK retries the 429 and the 503 (waiting as asked) and completes; a stream cut
    # after its headers cannot be retried by the SDK: the call raises.
    assert outcome(report, "status:code=429,retry_after=1,times=1") == "completed after 1 retry"
    assert outcome(report, "status:code=503,times=1") == "completed after 1 retry"
    assert outcome(report, "truncate:after=2") == "raised ConnectionError"
    assert outcome(report, "reset:after=2").startswith("raised ")
    assert outcome(report, "error:after=2") == "raised APIError"
    retried = next(o for o in report.outcomes if o.fault.startswith("status:code=429"))
    assert retried.requests == 2 and retried.seconds >= 1.0  # its retry-after: 1


def test_retries_are_counted_against_max_retries(tapedeck: Tapedeck) -> None:
    fault = "status:code=429,retry_after=0.05,times=1"
    report = assert_resilient(careful(max_retries=0), [fault], server=tapedeck, timeout=2)
    assert outcome(report, fault) == "raised RateLimitError"
    report = assert_resilient(careful(max_retries=2), [fault], server=tapedeck, timeout=2)
    assert outcome(report, fault) == "completed after 1 retry"
    many = "status:code=500,retry_after=0.05,times=3"
    with pytest.raises(AssertionError, match="retried 3 times, more than the 1 allowed"):
        assert_resilient(careful(max_retries=3), [many], server=tapedeck, timeout=2, max_retries=1)


def test_a_client_retrying_sooner_than_retry_after_is_caught(tapedeck: Tapedeck) -> None:
    def impatient(base_url: str) -> str:
        body = {"model": "gpt-4o-mini", "messages": MESSAGES}
        for _ in range(3):  # retries at once, whatever the server said
            answer = httpx.post(base_url + "/chat/completions", json=body, timeout=2)
            if answer.status_code != 429:
                break
        answer.raise_for_status()
        return str(answer.json()["choices"][0]["message"]["content"])

    fault = "status:code=429,retry_after=1,times=1"
    with pytest.raises(AssertionError) as caught:
        assert_resilient(impatient, [fault], server=tapedeck, timeout=2)
    assert "sooner than the retry-after of 1s the server asked for" in str(caught.value)


def test_a_client_waiting_past_its_own_timeout_is_caught_hanging(tapedeck: Tapedeck) -> None:
    # It says it gives up after 0.5 s, but its SDK waits 30 s for each read.
    with pytest.raises(AssertionError) as caught:
        assert_resilient(
            careful(timeout=30),
            ["stall:before=1,seconds=3", "truncate:after=1"],
            server=tapedeck,
            timeout=0.5,
        )
    message = str(caught.value)
    assert "HUNG" in message and "hung: still running 2.5s after it began" in message
    assert re.search(r"truncate:after=1 +not run \(an earlier call hung\)", message)


def test_a_call_that_never_reaches_the_server_is_refused(tapedeck: Tapedeck) -> None:
    with pytest.raises(AssertionError, match="must send its requests to the base URL it is given"):
        assert_resilient(lambda url: "canned", ["reset"], server=tapedeck, timeout=1)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=faults("openai_chat"))
def test_the_property_recipe_a_careful_client_survives_any_fault(
    tapedeck: Tapedeck, spec: str
) -> None:
    assert_resilient(careful(max_retries=3), [spec], server=tapedeck, timeout=2, max_retries=3)
