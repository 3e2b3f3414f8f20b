"""YAML loading that refuses what no cassette needs and an attacker could use: aliases
that expand a small file into gigabytes (the "billion laughs"), or refer to themselves.

Where it sits: under ``cassettes._parse``, which reads every YAML cassette through it. A
file with no anchor (``&name``) has no alias either, and loads as ``yaml.safe_load``
would; one with anchors is composed first, weighed, and built only if it stays small.
"""

from __future__ import annotations

from typing import Any

import yaml

from mockserver.errors import CassetteFormatError

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["load"]

# An anchor starts a node: after a space, a flow bracket or a comma, and before a name.
_BEFORE_ANCHOR = frozenset(b" \t\r\n[{,")
_NOT_A_NAME = frozenset(b" \t\r\n[]{},")
# Aliases may repeat at most as much as the document holds (vcrpy never writes any): a
# 400-byte "billion laughs" expands to gigabytes in whatever walks the loaded data.
_ALIAS_FLOOR = 100_000


def load(text: str | bytes, source: str) -> Any:
    """``yaml.safe_load``, refusing aliases that would expand the document past twice its
    size (or a cycle) before anything is built from it."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not _has_anchor(data):
        return yaml.load(text, Loader=_SafeLoader)
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _has_anchor(data: bytes) -> bool:
    """Whether ``data`` may hold a YAML anchor: a fast look at each ``&`` (a regex would
    cost ~50 us per KB, as much as loading)."""
    found = data.find(b"&")
    while found >= 0:
        before = data[found - 1] if found else ord("\n")
        after = data[found + 1] if found + 1 < len(data) else ord(" ")
        if before in _BEFORE_ANCHOR and after not in _NOT_A_NAME:
            return True
        found = data.find(b"&", found + 1)
    return False


def _check_aliases(root: yaml.Node, source: str) -> None:
    """Weigh the document as composed (an alias is the node it names, shared) and as it
    would be expanded: one per node plus the length of each scalar."""
    weights: dict[int, int] = {}
    open_nodes: set[int] = set()
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            if key not in weights:
                weights[key] = 1 + len(node.value)
                distinct += weights[key]
            continue
        values = node.value if isinstance(node, yaml.SequenceNode) else _flat(node.value)
        if children_done:
            open_nodes.discard(key)
            weights[key] = 1 + sum(weights[id(child)] for child in values)
            distinct += 1
        elif key not in weights:
            if key in open_nodes:
                raise CassetteFormatError(source, None, "a YAML alias refers to itself (a cycle)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in values if id(child) not in weights)
    expanded = weights[id(root)]
    if expanded > max(2 * distinct, _ALIAS_FLOOR):
        raise CassetteFormatError(
            source,
            None,
            f"its YAML aliases (*name) expand it from {distinct:,} to {expanded:,} nodes and "
            "characters, more than twice its size (an alias bomb?); vcrpy never writes "
            "aliases: record the cassette again, or write the repeated values out",
        )


def _flat(pairs: list[tuple[yaml.Node, yaml.Node]]) -> list[yaml.Node]:
    return [node for pair in pairs for node in pair]
