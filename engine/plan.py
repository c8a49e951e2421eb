"""Shared queries: one query per distinct scan in a tick, whoever owns the rules.

For a tick at time ``T`` and the rules due then, every term of every rule is
collected and deduplicated by ``Term.key`` (terms with equal keys compute the
same value), then grouped into *scans* by (measurement, filters, window,
offset, group tags; grouped, also the field read, ``absent`` apart: see
``scan_key``). Each scan is one query (``monitors_dsl.sql.sql_for_terms``)
answering all of its terms at once; so the queries per tick are the distinct
scans, at most the distinct terms, and never grow with the number of rules:
100,000 rules on the Bitcoin price are one query.

Scans that differ only in one ``tag = "value"`` filter (same measurement,
other filters, window, offset and group tags — the 1,000 ``last(crypto.price
{symbol="S"})`` of 1,000 symbols) are then answered by ONE query: it filters
with ``tag IN (values…)`` and groups by that tag as well, and its rows are split
back into each scan's rows (the rows whose tag value is the scan's; the extra
group column removed). For a scan without group tags, a value without a row
is the empty window (``count`` 0, ``absent`` true, the rest no data); its
``count`` is read as 0 where the grouped query says no data, and its
``absent`` (grouped, it means something else) is computed from a ``count``.
So the queries per tick are the distinct scans once merged.

A query is also the unit of failure: when it fails, only the rules that read
one of its scans' terms are marked errored.

    plan = plan_tick(rules, at)
    plan.at_time(later)       # the same plan at another time (the SQL moved, nothing planned again)
    plan.query_count          # what the tick will ask the source
    plan.scan_count           # the distinct scans those queries answer
    plan.queries[q].sql       # the SQL of query q; plan.queries[q].members: the scans it answers
    plan.rule_scans[rule.id]  # the scans a rule reads
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable, Sequence

from monitors_dsl import Term
from monitors_dsl import ast as a
from monitors_dsl.sql import sql_for_terms, time_ns, timestamp_literal

if TYPE_CHECKING:
    from .rules import EngineRule

__all__ = ["Scan", "Query", "Split", "Plan", "plan_tick", "scan_key", "sub_query"]


def scan_key(term: Term) -> tuple:
    """(measurement, filters, window, offset, group tags) of a term: terms with equal scan keys share a query.

    A grouped query's series are the groups in which one of its terms sees points, and a rule's series are
    those of its scans: so a grouped term's key also holds the field it reads and whether it is an ``absent``
    (which watches the day before its window), and terms of other rules share its scan only when they see
    the same series — a rule never gets a series that only someone else's term sees.
    """
    function, measurement, field_name, filters, window, offset, groups, _parameter = term.key
    if not groups:
        return (measurement, filters, window, offset, groups)
    return (measurement, filters, window, offset, groups, field_name, function == "absent")


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
class Split:
    """How one scan's rows are read from a merged query's rows.

    ``value``: the scan's value of the query's ``tag``; ``columns``: for each
    of the scan's term columns, the query's column and how to read it
    (``"value"`` as is, ``"count"``: no data is 0, ``"absent"``: true when the
    query's count column is no data or 0).
    """

    index: int
    value: str
    columns: dict[str, tuple[str, str]]


@dataclass
class Query:
    """One query of a tick: the scan it computes and the plan's scans it answers.

    Unmerged (``tag`` is ``None``): ``scan`` is the plan's scan ``members[0]``
    itself. Merged: ``scan`` groups by ``tag`` as well and filters with
    ``tag IN (values…)``; ``splits`` say how each member's rows are read.
    """

    scan: Scan
    members: list[int]
    tag: str | None = None
    splits: list[Split] = field(default_factory=list)
    at_ns: int = 0  # the evaluation time of ``scan.sql``

    @property
    def sql(self) -> str:
        return self.scan.sql


@dataclass
class Plan:
    """The queries of one tick and which rules read which of them."""

    at: datetime
    scans: list[Scan]
    rule_scans: dict[str, tuple[int, ...]]
    term_count: int
    queries: list[Query] = field(default_factory=list)

    @property
    def query_count(self) -> int:
        """The queries the tick asks the source (merged scans count once)."""
        return len(self.queries)

    @property
    def scan_count(self) -> int:
        """The distinct scans, before merging those that differ only in one tag's value."""
        return len(self.scans)

    def at_time(self, at: datetime) -> Plan:
        """The same plan at ``at``: the same scans and rules, each query's SQL moved to the new time."""
        at_ns = time_ns(at)
        queries = [replace(q, scan=replace(q.scan, sql=_shift(q.scan.sql, q.at_ns, at_ns)), at_ns=at_ns)
                   for q in self.queries]
        return Plan(at, self.scans, self.rule_scans, self.term_count, queries)


def plan_tick(rules: Iterable[EngineRule], at: datetime, *, merge: bool = True) -> Plan:
    """The shared queries answering every term of ``rules`` at ``at``; ``merge=False``: one query per scan."""
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
    queries = _merge(ordered) if merge else [Query(scan, [i]) for i, scan in enumerate(ordered)]
    at_ns = time_ns(at)
    for query in queries:
        query.scan.sql = _scan_sql(query.scan, at_ns)
        query.at_ns = at_ns
    return Plan(at, ordered, rule_scans, len(seen_terms), queries)


def _merge(scans: list[Scan]) -> list[Query]:
    """The queries for ``scans``: one per group of scans equal but for one ``tag = value`` filter.

    Each scan is put with the others sharing the most of one of its equality
    filters' "rest" (its key without that filter, the filter's tag and, grouped, the fields it reads); a
    group of one stays its own query.
    """
    candidates: list[list[tuple]] = []
    counts: dict[tuple, int] = {}
    for scan in scans:
        measurement, filters, window, offset, groups = scan.key[:5]
        fields = _fields(scan) if groups else ()
        mine = []
        for flt in dict.fromkeys(f for f in filters if f[1] == "="):
            rest = tuple(f for f in filters if f != flt)
            candidate = (measurement, rest, window, offset, groups, fields, flt[0])
            mine.append((candidate, flt[2]))
            counts[candidate] = counts.get(candidate, 0) + 1
        candidates.append(mine)
    groups_of: dict[tuple, dict[str, int]] = {}
    alone: list[int] = []
    for index, mine in enumerate(candidates):
        if not mine:
            alone.append(index)
            continue
        candidate, value = max(mine, key=lambda c: (counts[c[0]], repr(c[0][6]), repr(c[0][1])))
        groups_of.setdefault(candidate, {})[value] = index
    queries: list[tuple[int, Query]] = [(i, Query(scans[i], [i])) for i in alone]
    for candidate, members in groups_of.items():
        if len(members) == 1:
            (index,) = members.values()
            queries.append((index, Query(scans[index], [index])))
        else:
            queries.append((min(members.values()), _merged_query(scans, candidate, members)))
    queries.sort(key=lambda q: q[0])
    return [q for _, q in queries]


def _fields(scan: Scan) -> tuple:
    """The fields a grouped scan reads, apart (``absent``) and together (the rest).

    A grouped query's series are the groups with a point where one of these
    fields has a value, so only grouped scans reading the same fields the same
    way may share a query; without group tags there is one row whatever the fields.
    """
    together = sorted({t.field_name for t in scan.terms if t.function != "absent"})
    apart = sorted({t.field_name for t in scan.terms if t.function == "absent"})
    return (tuple(together), tuple(apart))


def _merged_query(scans: list[Scan], candidate: tuple, members: dict[str, int]) -> Query:
    """One query answering ``members`` (value of the tag → scan index), grouped by the tag as well."""
    measurement, rest, window, offset, _groups, _fields, tag = candidate
    first = scans[next(iter(members.values()))]
    group_by = tuple(first.group_by) + (() if tag in first.group_by else (tag,))
    grouped = bool(first.group_by)
    values = tuple(sorted(members))
    terms: dict[tuple, Term] = {}
    splits: list[Split] = []
    for value, index in sorted(members.items(), key=lambda m: m[1]):
        columns: dict[str, tuple[str, str]] = {}
        for term in scans[index].terms:
            kept = tuple(f for f in term.selector.filters if (f.tag, f.op, f.value) != (tag, "=", value))
            selector = a.Selector(term.selector.measurement, term.selector.field, kept + (a.Filter(tag, "in", values),))
            function, parameter, read = term.function, term.parameter, "value"
            if not grouped and function in ("count", "absent"):
                # ungrouped: count of an empty window is 0 (grouped: no data); absent is that count being 0
                read, function, parameter = function, "count", None
            merged = Term(function, selector, term.window, term.offset, parameter, group_by, term.text)
            merged = terms.setdefault(merged.key, merged)
            columns[term.column] = (merged.column, read)
        splits.append(Split(index, value, columns))
    key = (measurement, rest + ((tag, "in", values),), window, offset, tuple(sorted(set(group_by))))
    scan = Scan(key, group_by, list(terms.values()))
    return Query(scan, [s.index for s in splits], tag, splits)


def sub_query(plan: Plan, query: Query, members: Sequence[int], *, terms: Sequence[Term] | None = None) -> Query:
    """A query answering part of what ``query`` answers, at the same time: the scans ``members`` (merged
    like ``query`` when several, else the one scan's own query), or of one scan only ``terms``."""
    members = list(members)
    if terms is not None:
        (index,) = members
        scan = plan.scans[index]
        part = Scan(scan.key, scan.group_by, list(terms))
    elif len(members) == 1 or query.tag is None:
        index = members[0]
        part = plan.scans[index]
    else:
        measurement, filters, window, offset, groups = query.scan.key
        candidate = (measurement, filters[:-1], window, offset, groups, None, query.tag)
        wanted = set(members)
        merged = _merged_query(plan.scans, candidate,
                               {split.value: split.index for split in query.splits if split.index in wanted})
        merged.scan.sql = sql_for_terms(merged.scan.terms, query.at_ns, merged.scan.group_by)
        merged.at_ns = query.at_ns
        return merged
    sql = sql_for_terms(part.terms, query.at_ns, part.group_by)
    return Query(replace(part, sql=sql), [index], at_ns=query.at_ns)


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
    return _shift(sql, then, at_ns)


def _shift(sql: str, then: int, at_ns: int) -> str:
    """``sql`` built for the evaluation time ``then``, at ``at_ns``: every timestamp moved by the difference."""
    if then == at_ns:
        return sql
    delta = at_ns - then

    def shift(match) -> str:
        moment = datetime.fromisoformat(match.group(1))
        ns = ((moment - _EPOCH) // timedelta(seconds=1)) * 1_000_000_000 + int(match.group(2)) + delta
        return timestamp_literal(ns)

    return _TIMESTAMP.sub(shift, sql)
