"""``compile_rule``: a checked rule's compiled form, ready for the engine.

    >>> from datetime import datetime
    >>> rule = compile_rule('last(crypto.price{symbol="BTC"}) > 70000')
    >>> [t.text for t in rule.terms]
    ['last(crypto.price{symbol="BTC"}, 5m)']
    >>> rule.decide({rule.terms[0].column: 71000.0})
    Decision(result=True, severity='warning', resolve=False)

A ``CompiledRule`` holds the terms, the SQL for any evaluation time, the
predicate over a row of that SQL (``decide``), the canonical text and an
English reading. Rows are mappings from ``Term.column`` to value (``None``
for no data), as the SQL returns them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from . import ast as a
from ._api import analyze
from .describe import describe
from .errors import Diagnostic, DslError
from .predicate import Decision, Predicate, compile_predicate
from .printer import print_rule, print_rules
from .sql import Term, sql_for_terms, terms_of

__all__ = ["compile_rule", "CompiledRule", "Decision", "Term"]


class CompiledRule:
    """A rule compiled to SQL and a Python predicate. Build it with ``compile_rule``."""

    __slots__ = ("rule", "terms", "canonical", "_predicate", "_columns")

    def __init__(self, rule: a.Rule):
        self.rule = rule
        self.terms: tuple[Term, ...] = terms_of(rule)
        self.canonical: str = print_rules([rule])
        columns: dict[a.Aggregate, str] = {}
        for expr in [cond for _, cond in rule.conditions] + [rule.resolve_when]:
            if expr is not None:
                for node in a.aggregates(expr):
                    columns[node] = Term.from_aggregate(node, rule.group_by).column
        self._columns = columns
        self._predicate: Predicate = compile_predicate(rule, columns.__getitem__, f"<rule {rule.name or ''}>")

    @property
    def name(self) -> str | None:
        return self.rule.name

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.rule.group_by

    @property
    def predicate_source(self) -> str:
        """The generated Python source of ``condition(r)`` and ``decide(r)``."""
        return self._predicate.source

    @property
    def condition(self):
        """The firing condition over a row: ``True`` / ``False`` / ``None`` (no data)."""
        return self._predicate.condition

    def column(self, node: a.Aggregate) -> str:
        """The row key holding an aggregate of this rule."""
        return self._columns[node]

    def sql(self, at: datetime | int) -> str:
        """The query computing every term at time ``at`` (a datetime, naive = UTC, or ns since the epoch)."""
        return sql_for_terms(self.terms, at, self.rule.group_by)

    def decide(self, row: Mapping) -> Decision:
        """The decision for one row of ``sql(at)``'s result."""
        return self._predicate.decide(row)

    def describe(self) -> str:
        """The rule in one English sentence."""
        return describe(self.rule)

    def __repr__(self) -> str:
        return f"<CompiledRule {print_rule(self.rule).splitlines()[0]!r}>"


def _one_rule_error(count: int) -> DslError:
    message = ("the text holds no rule" if count == 0
               else f"the text holds {count} rules; compile_rule takes one rule")
    return DslError([Diagnostic("error", message, 1, 1, 1, 1, "pass the text of one rule, or a parsed Rule",
                                "not-one-rule")])


def compile_rule(rule_or_text: a.Rule | str) -> CompiledRule:
    """Compiles one rule, given as text or as a ``Rule``; raises ``DslError`` when it has errors."""
    if isinstance(rule_or_text, a.Rule):
        rules, diagnostics = analyze(print_rule(rule_or_text))
        if any(d.severity == "error" for d in diagnostics):
            raise DslError(diagnostics)
        return CompiledRule(rule_or_text)
    if not isinstance(rule_or_text, str):
        raise TypeError(f"compile_rule takes rule text or a Rule, got {type(rule_or_text).__name__}")
    rules, diagnostics = analyze(rule_or_text)
    if any(d.severity == "error" for d in diagnostics):
        raise DslError(diagnostics)
    if len(rules) != 1:
        raise _one_rule_error(len(rules))
    return CompiledRule(rules[0])
