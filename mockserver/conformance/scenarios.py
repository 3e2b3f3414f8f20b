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

from mockserver.dialects import DEFAULT_DIALECT, DIALECTS, dialect
from mockserver.model import Script, ToolCall

DEFAULT_MODEL = "tapedeck-model"
"""The model a scenario asks for unless told otherwise: any name the proxy routes to us."""

NONCE = re.compile(r"\[tapedeck ([a-z0-9-]+) ([0-9a-f]{12})\]")


@dataclass(frozen=True)
class Scenario:
    """One conversation through the proxy.

    ``gap`` paces the upstream (seconds between events; liveness is judged on paced
    scenarios only); ``split_utf8`` writes each event in two pieces cut inside a
    multi-byte character; ``error_after`` ends the upstream stream with a mid-stream
    error after that many events; ``fault`` is a fault spec (``mockserver.faults``) the
    upstream applies to its answers (``fault_scenarios``)."""

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
    fault: str | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def label(self) -> str:
        """How reports name it: ``text`` for the default protocol, ``anthropic/text``
        otherwise."""
        return self.name if self.dialect == DEFAULT_DIALECT else f"{self.dialect}/{self.name}"

    @property
    def tag(self) -> str:
        return f"[tapedeck {self.name} {self.nonce}]"

    def fresh(self) -> Scenario:
        """The same scenario under a new nonce (one per run)."""
        return replace(self, nonce=secrets.token_hex(6))

    def body(self, model: str) -> dict[str, Any]:
        """The request body the client sends to the proxy."""
        protocol = dialect(self.dialect).conformance
        if protocol is None or protocol.request_body is None:
            raise ValueError(f"{self.dialect} has no client side for conformance scenarios")
        prompt = f"{self.tag} Please answer."
        return protocol.request_body(prompt, model, self.tools, self.n, self.include_usage)


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
    name: _catalogue(name, choices=d.conformance.choices, usage_option=d.conformance.usage_option)
    for name, d in DIALECTS.items()
    if d.conformance is not None and d.conformance.request_body is not None
}
"""The scenarios per client protocol (the protocol the client speaks to the proxy)."""


def catalogue(name: str = DEFAULT_DIALECT, names: list[str] | None = None) -> list[Scenario]:
    """The scenarios for a client protocol (only ``names``, when given), fresh nonces."""
    if name not in CATALOGUES:
        raise ValueError(f"no conformance scenarios for {name!r}; known: {sorted(CATALOGUES)}")
    scenarios = [s.fresh() for s in CATALOGUES[name]]
    if names:
        unknown = set(names) - {s.name for s in scenarios}
        if unknown:
            known = ", ".join(s.name for s in scenarios)
            raise ValueError(f"unknown scenario(s) {sorted(unknown)} for {name}; known: {known}")
        scenarios = [s for s in scenarios if s.name in names]
    return scenarios
