"""The rules the engine runs: :class:`EngineRule`, built from a store row or from text.

An ``EngineRule`` is everything one evaluation needs, worked out once: the
compiled rule (terms, predicate), the state-machine :class:`Clauses`, the
channels to notify, ``every``, the ``labels`` clause, the templates, and
which term gives the template's ``value`` (the first aggregate of the firing
condition, in source order).

:class:`RuleBuilder` turns store rows into engine rules and caches them by
``(id, version)``: a rule is compiled again only when it changes. A rule that
no longer compiles is logged and skipped; it never stops a tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl.printer import print_expr

from .state import Clauses, FlapDetection

__all__ = ["EngineRule", "RuleBuilder", "StoreRules", "rule_from_text", "rules_from_text", "condition_text"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EngineRule:
    """One rule, ready to evaluate. ``id`` is a string (the store's id, or a name for text rules)."""

    id: str
    name: str | None
    compiled: monitors_dsl.CompiledRule
    clauses: Clauses
    owner_id: int | None = None
    version: int = 1
    channels: tuple[str, ...] = ()
    every: int = 60
    labels: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    message: str | None = None
    description: str | None = None
    condition: str = ""
    value_column: str | None = None

    @property
    def terms(self):
        return self.compiled.terms

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.compiled.group_by

    @property
    def store_id(self) -> int | None:
        """The store's integer id, when the rule comes from the store."""
        return int(self.id) if self.id.isdigit() else None

    def __repr__(self) -> str:
        return f"<EngineRule {self.id} {self.name or self.condition!r} v{self.version}>"


def condition_text(rule: a.Rule) -> str:
    """The firing condition's canonical text (``critical when …; warning when …`` for several)."""
    if rule.when is not None:
        return print_expr(rule.when)
    return "; ".join(f"{severity} when {print_expr(cond)}" for severity, cond in rule.conditions)


def _value_column(compiled: monitors_dsl.CompiledRule) -> str | None:
    """The column of the first aggregate of the firing condition(s), in source order."""
    nodes = [node for _, cond in compiled.rule.conditions for node in a.aggregates(cond)]
    if not nodes:
        return None
    first = min(enumerate(nodes), key=lambda pair: (pair[1].span.start, pair[0]))[1]
    return compiled.column(first)


def build_rule(compiled: monitors_dsl.CompiledRule, *, id: str, name: str | None = None, owner_id: int | None = None,
               version: int = 1, flap: FlapDetection | None = None) -> EngineRule:
    """An :class:`EngineRule` from a compiled rule; ``name`` overrides the rule's own."""
    rule = compiled.rule
    return EngineRule(
        id=str(id),
        name=name if name is not None else rule.name,
        compiled=compiled,
        clauses=Clauses.from_rule(rule, flap=flap),
        owner_id=owner_id,
        version=version,
        channels=tuple(rule.notify),
        every=max(1, rule.every.seconds),
        labels=dict(rule.labels),
        title=rule.title,
        message=rule.message,
        description=rule.description,
        condition=condition_text(rule),
        value_column=_value_column(compiled),
    )


def rules_from_text(text: str, *, flap: FlapDetection | None = None) -> list[EngineRule]:
    """Every rule of a rule document (raises ``monitors_dsl.DslError`` when it has errors).

    Ids are the rule names, or ``#1``, ``#2`` … for unnamed rules.
    """
    out = []
    for index, rule in enumerate(monitors_dsl.parse(text), start=1):
        compiled = monitors_dsl.compile_rule(rule)
        out.append(build_rule(compiled, id=rule.name or f"#{index}", flap=flap))
    return out


def rule_from_text(text: str, *, id: str | None = None, name: str | None = None,
                   flap: FlapDetection | None = None) -> EngineRule:
    """One rule from text (raises ``monitors_dsl.DslError`` when it has errors)."""
    compiled = monitors_dsl.compile_rule(text)
    return build_rule(compiled, id=id or name or compiled.name or "#1", name=name, flap=flap)


class RuleBuilder:
    """Store rows → engine rules, compiled once per ``(id, version)``."""

    def __init__(self, flap: FlapDetection | None = None) -> None:
        self.flap = flap
        self._cache: dict[tuple[int, int], EngineRule | None] = {}
        self.failed: dict[int, str] = {}  # rule id → why it did not compile

    def build(self, row: Any) -> EngineRule | None:
        """The engine rule for a ``monitors_mcp.store.Rule`` row (or any object with its columns)."""
        key = (int(row.id), int(row.version))
        if key in self._cache:
            return self._cache[key]
        try:
            compiled = monitors_dsl.compile_rule(row.canonical)
            rule = build_rule(compiled, id=str(row.id), name=row.name, owner_id=row.owner_id, version=row.version,
                              flap=self.flap)
            self.failed.pop(key[0], None)
        except Exception as error:  # a stored rule the language no longer accepts: skip it, keep running
            reason = " ".join(str(error).split())[:500]
            log.warning("rule %s (version %s) does not compile and is skipped: %s", row.id, row.version, reason)
            self.failed[key[0]] = reason
            rule = None
        self._cache[key] = rule
        return rule

    def build_all(self, rows: Iterable[Any]) -> list[EngineRule]:
        rows = list(rows)
        live = {(int(r.id), int(r.version)) for r in rows}
        for key in [k for k in self._cache if k not in live]:
            del self._cache[key]
        return [rule for rule in (self.build(row) for row in rows) if rule is not None]


class StoreRules:
    """The enabled, live rules of the store, reloaded only when something changed.

    ``current()`` first reads a fingerprint of the rules table — count, newest
    ``updated_at``, sum of versions, largest id — which every create, update,
    enable, disable and delete changes (each bumps ``version``); only when it
    differs are the rules read again, and only changed rules are compiled
    again. So rule changes are picked up by the next tick, without a restart.
    """

    def __init__(self, db, builder: RuleBuilder | None = None) -> None:
        self.db = db
        self.builder = builder or RuleBuilder()
        self._fingerprint: tuple | None = None
        self._rules: list[EngineRule] = []
        self.reloads = 0

    def fingerprint(self) -> tuple:
        from sqlalchemy import func, select

        from monitors_mcp.store import Rule

        with self.db.session() as session:
            row = session.execute(select(func.count(Rule.id), func.max(Rule.updated_at), func.sum(Rule.version),
                                         func.max(Rule.id))).one()
        return tuple(row)

    def current(self) -> list[EngineRule]:
        from sqlalchemy import select

        from monitors_mcp.store import Rule

        fingerprint = self.fingerprint()
        if fingerprint == self._fingerprint:
            return self._rules
        with self.db.session() as session:
            rows = session.execute(
                select(Rule.id, Rule.owner_id, Rule.name, Rule.version, Rule.canonical)
                .where(Rule.enabled.is_(True), Rule.deleted_at.is_(None)).order_by(Rule.id)
            ).all()
        self._rules = self.builder.build_all(rows)
        self._fingerprint = fingerprint
        self.reloads += 1
        log.info("loaded %d rules (%d do not compile)", len(self._rules), len(rows) - len(self._rules))
        return self._rules
