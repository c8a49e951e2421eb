"""What every compiled form of a rule offers (:class:`Compiled`), and the parts of it worked out once.

A rule is compiled in one of two ways: on its own (``compiler.CompiledRule``)
or as one rule of a *shape* that rules differing only in their numbers share
(``shapes.BoundRule``). The engine and the tools read either through the
:class:`Compiled` protocol only. What both need from the syntax tree is worked
out here, once, for both:

- :func:`rule_columns` — the distinct terms in source order (firing
  conditions, then ``resolve when``) and each aggregate node's column;
- :func:`condition_text` — the firing condition's canonical text;
- :func:`value_column` — the column of the first aggregate of the firing
  condition in source order (the templates' ``value``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Mapping, Protocol, runtime_checkable

from . import ast as a
from .printer import print_expr
from .sql import Term

if TYPE_CHECKING:
    from .predicate import Decision
    from .shapes import Shape

__all__ = ["Compiled", "RuleColumns", "rule_columns", "condition_text", "value_column"]


@runtime_checkable
class Compiled(Protocol):
    """A compiled rule: what the engine evaluates and the tools show."""

    @property
    def name(self) -> str | None: ...

    @property
    def terms(self) -> tuple[Term, ...]: ...

    @property
    def group_by(self) -> tuple[str, ...]: ...

    @property
    def shape(self) -> Shape | None:
        """The shape the rule is decided with, together with the others of it; ``None`` when on its own."""

    @property
    def value_column(self) -> str | None: ...

    @property
    def condition_text(self) -> str: ...

    @property
    def rule(self) -> a.Rule: ...

    def column(self, node: a.Aggregate) -> str: ...

    def sql(self, at: datetime | int) -> str: ...

    def decide(self, row: Mapping) -> Decision: ...


@dataclass(frozen=True)
class RuleColumns:
    """A rule's distinct terms, in source order, and the column of each of its aggregate nodes."""

    terms: tuple[Term, ...]
    columns: Mapping[a.Aggregate, str]


def _expressions(rule: a.Rule) -> list:
    found = [cond for _, cond in rule.conditions]
    if rule.resolve_when is not None:
        found.append(rule.resolve_when)
    return found


def rule_columns(rule: a.Rule) -> RuleColumns:
    """The terms of ``rule`` (each aggregate computed once) and every aggregate node's column."""
    found: dict[tuple, Term] = {}
    columns: dict[a.Aggregate, str] = {}
    for expr in _expressions(rule):
        for node in a.aggregates(expr):
            term = Term.from_aggregate(node, rule.group_by)
            columns[node] = term.column
            found.setdefault(term.key, term)
    return RuleColumns(tuple(found.values()), columns)


def condition_text(rule: a.Rule) -> str:
    """The firing condition's canonical text (``critical when …; warning when …`` for several)."""
    if rule.when is not None:
        return print_expr(rule.when)
    return "; ".join(f"{severity} when {print_expr(cond)}" for severity, cond in rule.conditions)


def value_column(rule: a.Rule, columns: Mapping[a.Aggregate, str]) -> str | None:
    """The column of the first aggregate of the firing condition(s), in source order."""
    nodes = [node for _, cond in rule.conditions for node in a.aggregates(cond)]
    if not nodes:
        return None
    first = min(enumerate(nodes), key=lambda pair: (pair[1].span.start, pair[0]))[1]
    return columns[first]
