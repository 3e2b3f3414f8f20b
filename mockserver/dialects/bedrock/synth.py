"""The Bedrock answer builder: what a synthesized answer says (``Answer``), laid out as a
converse body, converse-stream events, or an Anthropic model's invoke body and stream
events.

Behind ``bedrock.synthesize``, which picks the endpoint, draws every random value from the
Script's seed and then frames and serializes what this returns. Imports nothing of the
project's. It must never draw randomness of its own (the padding comes in through
``pad``), encode bytes, or judge a stream: the same Script must give the same bytes, which
the bundled cassettes in cassettes/bedrock/ pin. Key order in the invoke dicts is the order
on the wire (those bodies are written unsorted), so it is part of the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """What a synthesized answer says, cut into pieces, ready for any endpoint's shape:
    reasoning (with its signature), text, then tool calls, each its own content block."""

    reasoning: list[str]
    signature: str
    text: list[str]
    tools: list[tuple[str, str]]  # (id, name)
    fragments: list[list[str]]  # each tool's input, cut into pieces
    stop: str
    input_tokens: int
    latency: int

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.text) + sum(map(len, self.fragments))

    def calls(self) -> Iterator[tuple[str, str, list[str]]]:
        for (tool_id, name), pieces in zip(self.tools, self.fragments, strict=True):
            yield tool_id, name, pieces

    def usage(self) -> dict[str, int]:
        tokens = (self.input_tokens, self.output_tokens, self.input_tokens + self.output_tokens)
        return dict(zip(("inputTokens", "outputTokens", "totalTokens"), tokens, strict=True))

    def converse(self) -> dict[str, Any]:
        """The converse body (keys sorted by the caller, as Bedrock writes them)."""
        content: list[dict[str, Any]] = []
        if self.reasoning:
            said = {"signature": self.signature, "text": "".join(self.reasoning)}
            content.append({"reasoningContent": {"reasoningText": said}})
        if self.text:
            content.append({"text": "".join(self.text)})
        for tool_id, name, pieces in self.calls():
            tool = {"input": json.loads("".join(pieces)), "name": name, "toolUseId": tool_id}
            content.append({"toolUse": tool})
        return {
            "metrics": {"latencyMs": self.latency},
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": self.stop,
            "usage": self.usage(),
        }

    def converse_events(self, pad: Callable[[], str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The converse-stream events, each with its random-length ``p`` padding."""
        yield "messageStart", {"p": pad(), "role": "assistant"}
        blocks: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
        if self.reasoning:
            deltas = [{"reasoningContent": {"text": piece}} for piece in self.reasoning]
            blocks.append((None, [*deltas, {"reasoningContent": {"signature": self.signature}}]))
        if self.text:
            blocks.append((None, [{"text": piece} for piece in self.text]))
        for tool_id, name, pieces in self.calls():
            tool = {"toolUse": {"name": name, "toolUseId": tool_id}}
            blocks.append((tool, [{"toolUse": {"input": piece}} for piece in pieces]))
        for n, (start, deltas) in enumerate(blocks):
            if start is not None:
                yield "contentBlockStart", {"contentBlockIndex": n, "p": pad(), "start": start}
            for delta in deltas:
                yield "contentBlockDelta", {"contentBlockIndex": n, "delta": delta, "p": pad()}
            yield "contentBlockStop", {"contentBlockIndex": n, "p": pad()}
        yield "messageStop", {"p": pad(), "stopReason": self.stop}
        metrics = {"latencyMs": self.latency}
        yield "metadata", {"metrics": metrics, "p": pad(), "usage": self.usage()}

    def anthropic_message(self, message_id: str, model: str) -> dict[str, Any]:
        """The invoke body of an Anthropic model: a Messages API message (§6)."""
        content = [block for block, _ in self.anthropic_blocks(whole=True)]
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": content,  # before model, as Bedrock's message_start has it
            "model": model,
            "stop_reason": self.stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def anthropic_blocks(self, whole: bool) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each Anthropic content block, whole or as its content_block_start value, with its
        deltas."""
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if self.reasoning:
            thinking, signature = ("".join(self.reasoning), self.signature) if whole else ("", "")
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in self.reasoning]
            deltas.append({"type": "signature_delta", "signature": self.signature})
            block = {"type": "thinking", "thinking": thinking, "signature": signature}
            blocks.append((block, deltas))
        if self.text:
            deltas = [{"type": "text_delta", "text": piece} for piece in self.text]
            blocks.append(({"type": "text", "text": "".join(self.text) if whole else ""}, deltas))
        for tool_id, name, pieces in self.calls():
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            tool_input = json.loads("".join(pieces)) if whole else {}
            tool = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
            blocks.append((tool, deltas))
        return blocks

    def anthropic_events(self, message_id: str, model: str) -> list[dict[str, Any]]:
        """The Anthropic stream events the chunks of invoke-with-response-stream carry (§10),
        the last with Bedrock's invocation metrics."""
        message = {**self.anthropic_message(message_id, model), "content": [], "stop_reason": None}
        message["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
        for n, (block, deltas) in enumerate(self.anthropic_blocks(whole=False)):
            events.append({"type": "content_block_start", "index": n, "content_block": block})
            events += [{"type": "content_block_delta", "index": n, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": n})
        delta = {"stop_reason": self.stop, "stop_sequence": None}
        usage = {"output_tokens": self.output_tokens}
        events.append({"type": "message_delta", "delta": delta, "usage": usage})
        metrics = {
            "inputTokenCount": self.input_tokens,
            "outputTokenCount": self.output_tokens,
            "invocationLatency": self.latency,
            "firstByteLatency": max(1, self.latency // 3),
        }
        events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
        return events
