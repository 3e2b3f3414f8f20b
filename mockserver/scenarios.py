"""The catalogue of proxy-conformance scenarios: what the client asks the proxy, what the
upstream (Tapedeck) answers, and how the upstream delivers it (paced, split inside a
character, cut by an error).

Each request carries a nonce in its user message, ``[tapedeck <scenario> <nonce>]``. A
proxy may rewrite the body (model name, key order, added ``stream_options``, another
protocol altogether) but forwards the user's words, so the upstream finds the nonce
anywhere in the forwarded bytes and answers with that scenario's script.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from mockserver.model import Script, ToolCall

NONCE = re.compile(r"\[tapedeck ([a-z0-9-]+) ([0-9a-f]{12})\]")


@dataclass(frozen=True)
class Scenario:
    """One conversation through the proxy.

    ``gap`` paces the upstream (seconds between events; liveness is judged on paced
    scenarios only); ``split_utf8`` writes each event in two pieces cut inside a
    multi-byte character; ``error_after`` ends the upstream stream with a mid-stream
    error after that many events."""

    name: str
    dialect: str
    description: str
    script: Script
    include_usage: bool | None = None
    n: int = 1
    tools: tuple[str, ...] = ()
    gap: float = 0.0
    split_utf8: bool = False
    error_after: int | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def label(self) -> str:
        """How reports name it: ``text`` for OpenAI chat, ``anthropic/text`` otherwise."""
        return self.name if self.dialect == "openai_chat" else f"{self.dialect}/{self.name}"

    @property
    def tag(self) -> str:
        return f"[tapedeck {self.name} {self.nonce}]"

    def fresh(self) -> Scenario:
        """The same scenario under a new nonce (one per run)."""
        return replace(self, nonce=secrets.token_hex(6))

    def body(self, model: str) -> dict[str, Any]:
        """The request body the client sends to the proxy."""
        prompt = f"{self.tag} Please answer."
        if self.dialect == "anthropic":
            body: dict[str, Any] = {
                "model": model,
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": prompt}],
            }
            tools: list[dict[str, Any]] = [
                {"name": name, "input_schema": {"type": "object"}} for name in self.tools
            ]
        elif self.dialect == "openai_responses":
            body = {"model": model, "input": prompt}
            tools = [{"type": "function", "name": name, "parameters": {}} for name in self.tools]
        else:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
            tools = [
                {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
                for name in self.tools
            ]
            if self.n > 1:
                body["n"] = self.n
            if self.include_usage is not None:
                body["stream_options"] = {"include_usage": self.include_usage}
        if tools:
            body["tools"] = tools
        body["stream"] = True
        return body


TEXT = "Hello from the upstream. Streams must arrive intact, in order, and on time."
UNICODE = "naïve café — 你好世界 🌍🚀 ℵ₀ Ελληνικά ✓ 👍🏽"
LONG = " ".join(f"w{i}" for i in range(500))
CALLS = (
    ToolCall("get_weather", '{"city": "Paris", "unit": "celsius", "note": "ça va"}', "call_w1"),
    ToolCall("get_time", '{"tz": "Europe/Paris", "format": {"h24": true}}', "call_t2"),
)


def _catalogue(dialect: str, choices: bool, usage_option: bool) -> list[Scenario]:
    usage = True if usage_option else None
    out = [
        Scenario("text", dialect, "plain text", Script(text=TEXT)),
        Scenario(
            "tools-parallel",
            dialect,
            "two parallel tool calls, arguments in 3-character fragments",
            Script(tool_calls=CALLS, chunk_size=3),
            usage,
            tools=("get_weather", "get_time"),
        ),
        Scenario(
            "long", dialect, "a long stream (about 1,200 events)", Script(text=LONG, chunk_size=2)
        ),
        Scenario(
            "midstream-error",
            dialect,
            "the upstream fails after 8 events",
            Script(text=TEXT),
            error_after=8,
        ),
        Scenario(
            "slow",
            dialect,
            "events 150 ms apart: a buffering proxy delivers them all at the end",
            Script(text="One. Two. Three. Four. Five.", chunk_size=6),
            usage,
            gap=0.15,
        ),
        Scenario(
            "unicode-split",
            dialect,
            "multi-byte characters, every event written in two pieces cut inside one",
            Script(text=UNICODE, chunk_size=3),
            usage,
            split_utf8=True,
        ),
    ]
    if usage_option:
        described = "plain text with stream_options.include_usage"
        out.insert(1, Scenario("text-usage", dialect, described, Script(text=TEXT), True))
    if choices:
        two = Scenario(
            "n2", dialect, "n = 2, choices interleaved", Script(text=TEXT, n=2), usage, n=2
        )
        out.insert(3, two)
    return out


CATALOGUES: dict[str, list[Scenario]] = {
    "openai_chat": _catalogue("openai_chat", choices=True, usage_option=True),
    "anthropic": _catalogue("anthropic", choices=False, usage_option=False),
    "openai_responses": _catalogue("openai_responses", choices=False, usage_option=False),
}
"""The scenarios per client protocol (the protocol the client speaks to the proxy)."""


def catalogue(dialect: str = "openai_chat", names: list[str] | None = None) -> list[Scenario]:
    """The scenarios for a client protocol (only ``names``, when given), fresh nonces."""
    if dialect not in CATALOGUES:
        raise ValueError(f"no conformance scenarios for {dialect!r}; known: {sorted(CATALOGUES)}")
    scenarios = [s.fresh() for s in CATALOGUES[dialect]]
    if names:
        unknown = set(names) - {s.name for s in scenarios}
        if unknown:
            known = ", ".join(s.name for s in scenarios)
            raise ValueError(f"unknown scenario(s) {sorted(unknown)} for {dialect}; known: {known}")
        scenarios = [s for s in scenarios if s.name in names]
    return scenarios
