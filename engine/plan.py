"""Shared queries: one query per distinct scan in a tick, whoever owns the rules.

For a tick at time ``T`` and the rules due then, every term of every rule is
collected and deduplicated by ``Term.key`` (terms with equal keys compute the
same value), then grouped into *scans* by (measurement, filters, window,
offset, group tags). Each scan is one query (``monitors_dsl.sql.sql_for_terms``)
answering all of its terms at once; so the queries per tick are the distinct
scans, at most the distinct terms, and never grow with the number of rules:
100,000 rules on the Bitcoin price are one query.

A scan is also the unit of failure: when its query fails, only the rules
that read one of its terms are marked errored.

    plan = plan_tick(rules, at)
    plan.query_count          # what the tick will ask the source
    plan.scans[i].sql         # the query of scan i
    plan.rule_scans[rule.id]  # the scans a rule reads
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

import re
from datetime import timedelta

from monitors_dsl import Term
from monitors_dsl.sql import sql_for_terms, time_ns, timestamp_literal

from .rules import EngineRule

__all__ = ["Scan", "Plan", "plan_tick", "scan_key"]


def scan_key(term: Term) -> tuple:
    """(measurement, filters, window, offset, group tags) of a term: terms with equal scan keys share a query."""
    function, measurement, _field, filters, window, offset, groups, _parameter = term.key
    return (measurement, filters, window, offset, groups)


@dataclass
class Scan:
    """One query of a tick: the terms it computes and their shared group tags."""

    key: tuple
    group_by: tuple[str, ...]
    terms: list[Term] = field(default_factory=list)
    sql: str = ""

    @property
    def measurement(self) -> str:
        return self.key[0]

    @property
    def columns(self) -> list[str]:
        return [t.column for t in self.terms]


@dataclass
class Plan:
    """The queries of one tick and which rules read which of them."""

    at: datetime
    scans: list[Scan]
    rule_scans: dict[str, tuple[int, ...]]
    term_count: int

    @property
    def query_count(self) -> int:
        return len(self.scans)


def plan_tick(rules: Iterable[EngineRule], at: datetime) -> Plan:
    """The shared queries answering every term of ``rules`` at ``at``."""
    scans: dict[tuple, int] = {}
    ordered: list[Scan] = []
    seen_terms: set[tuple] = set()
    rule_scans: dict[str, tuple[int, ...]] = {}
    for rule in rules:
        used: list[int] = []
        for term in rule.terms:
            key = scan_key(term)
            index = scans.get(key)
            if index is None:
                index = scans[key] = len(ordered)
                ordered.append(Scan(key, tuple(term.group_by)))
            if term.key not in seen_terms:
                seen_terms.add(term.key)
                ordered[index].terms.append(term)
            if index not in used:
                used.append(index)
        rule_scans[rule.id] = tuple(used)
    at_ns = time_ns(at)
    for scan in ordered:
        scan.sql = _scan_sql(scan, at_ns)
    return Plan(at, ordered, rule_scans, len(seen_terms))


_TIMESTAMP = re.compile(r"TIMESTAMP '(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})'")
_EPOCH = datetime(1970, 1, 1)
_SQL_CACHE: dict[tuple, tuple[int, str]] = {}


def _scan_sql(scan: Scan, at_ns: int) -> str:
    """``sql_for_terms`` of the scan at ``at_ns``: built once per set of terms, then shifted in time.

    Every time in the query is the evaluation time minus a fixed amount, so
    the query at another time is the same text with each timestamp moved by
    the difference.
    """
    key = (scan.key, tuple(t.key for t in scan.terms))
    cached = _SQL_CACHE.get(key)
    if cached is None:
        if len(_SQL_CACHE) > 100_000:
            _SQL_CACHE.clear()
        sql = sql_for_terms(scan.terms, at_ns, scan.group_by)
        _SQL_CACHE[key] = (at_ns, sql)
        return sql
    then, sql = cached
    if then == at_ns:
        return sql
    delta = at_ns - then

    def shift(match) -> str:
        moment = datetime.fromisoformat(match.group(1))
        ns = ((moment - _EPOCH) // timedelta(seconds=1)) * 1_000_000_000 + int(match.group(2)) + delta
        return timestamp_literal(ns)

    return _TIMESTAMP.sub(shift, sql)
