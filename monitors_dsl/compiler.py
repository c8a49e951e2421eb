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
from .compiled import condition_text, rule_columns, value_column
from .sql import Term, sql_for_terms

__all__ = ["compile_rule", "CompiledRule", "Decision", "Term"]


class CompiledRule:
    """A rule compiled to SQL and a Python predicate (a :class:`~monitors_dsl.compiled.Compiled`). Build it
    with ``compile_rule``; the predicate is generated on first use."""

    __slots__ = ("rule", "terms", "canonical", "_predicate", "_columns", "value_column", "condition_text")

    #: a rule compiled on its own is decided on its own, not with a shape's other rules
    shape = None

    def __init__(self, rule: a.Rule):
        self.rule = rule
        found = rule_columns(rule)
        self.terms: tuple[Term, ...] = found.terms
        self._columns = found.columns
        self.canonical: str = print_rules([rule])
        self.value_column: str | None = value_column(rule, found.columns)
        self.condition_text: str = condition_text(rule)
        self._predicate: Predicate | None = None

    @property
    def predicate(self) -> Predicate:
        if self._predicate is None:
            self._predicate = compile_predicate(self.rule, self._columns.__getitem__,
                                                f"<rule {self.rule.name or ''}>")
        return self._predicate

    @property
    def name(self) -> str | None:
        return self.rule.name

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.rule.group_by

    @property
    def predicate_source(self) -> str:
        """The generated Python source of ``condition(r)`` and ``decide(r)``."""
        return self.predicate.source

    @property
    def condition(self):
        """The firing condition over a row: ``True`` / ``False`` / ``None`` (no data)."""
        return self.predicate.condition

    def column(self, node: a.Aggregate) -> str:
        """The row key holding an aggregate of this rule."""
        return self._columns[node]

    def sql(self, at: datetime | int) -> str:
        """The query computing every term at time ``at`` (a datetime, naive = UTC, or ns since the epoch)."""
        return sql_for_terms(self.terms, at, self.rule.group_by)

    def decide(self, row: Mapping) -> Decision:
        """The decision for one row of ``sql(at)``'s result."""
        return self.predicate.decide(row)

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
