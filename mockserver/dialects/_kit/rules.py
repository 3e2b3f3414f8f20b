"""A protocol's rules as one table, and the bookkeeping every checker shares.

Each ``Rule`` keeps together its stable id, what it requires (one sentence, for docs and
reports) and what a violation says (``expected …, found …`` with ``{fields}`` filled by
the checker). ``Findings`` collects (rule, event, sentence) while a checker walks a
stream, and reports one Violation per rule, at its first event, counting the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.model import Violation


@dataclass(frozen=True, slots=True)
class Rule:
    """One protocol rule. ``says`` is the violation's sentence, a ``str.format`` template;
    ``groups`` name the families a property test can ask for (``"ordering"``...)."""

    id: str
    requires: str
    says: str = "{found}"
    groups: frozenset[str] = frozenset()


class RuleTable(Mapping[str, Rule]):
    """Rules by id, in the order given; immutable. ``a + b`` is both tables (b wins)."""

    __slots__ = ("_rules",)

    def __init__(self, *rules: Rule) -> None:
        table: dict[str, Rule] = {}
        for rule in rules:
            table[rule.id] = rule
        self._rules = table

    def __getitem__(self, rule: str) -> Rule:
        return self._rules[rule]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __add__(self, other: RuleTable) -> RuleTable:
        return RuleTable(*self._rules.values(), *other.values())

    def __repr__(self) -> str:
        return f"RuleTable({', '.join(self._rules)})"

    def group(self, name: str) -> frozenset[str]:
        """The ids of the rules in a group."""
        return frozenset(rule.id for rule in self._rules.values() if name in rule.groups)

    def requirements(self) -> dict[str, str]:
        """id -> what the rule requires, for docs and reports."""
        return {rule.id: rule.requires for rule in self._rules.values()}


def one_per_rule(found: Iterable[tuple[str, int, str]]) -> list[Violation]:
    """(rule, event index, sentence) findings as one Violation per rule, at its first
    event, counting the rest: a report stays readable when every chunk of a stream
    breaks the same rule."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for rule, index, sentence in found:
        grouped.setdefault(rule, []).append((index, sentence))
    out = []
    for rule, hits in grouped.items():
        index, sentence = hits[0]
        if len(hits) > 1:
            sentence += f" ({len(hits) - 1} more like it, the last at event {hits[-1][0]})"
        out.append(Violation(rule, index, sentence + "."))
    return out


class Findings:
    """What a checker found so far, worded by its rule table."""

    __slots__ = ("found", "table")

    def __init__(self, table: RuleTable) -> None:
        self.table = table
        self.found: list[tuple[str, int, str]] = []

    def flag(self, rule: str, index: int, /, **details: Any) -> None:
        self.found.append((rule, index, self.table[rule].says.format(**details)))

    def add(self, rule: str, index: int, sentence: str, /) -> None:
        """A finding whose sentence the checker wrote itself (``says`` is ``{found}``)."""
        self.found.append((rule, index, sentence))

    def violations(self) -> list[Violation]:
        return one_per_rule(self.found)


def table_from(requires: Mapping[str, str], says: Mapping[str, str] | None = None) -> RuleTable:
    """A table from the older pair of dicts (id -> requirement, id -> sentence)."""
    says = says or {}
    return RuleTable(*(Rule(i, text, says.get(i, "{found}")) for i, text in requires.items()))
