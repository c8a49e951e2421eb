"""Evaluation: run a tick's shared queries, then decide every rule over the shared rows.

:class:`Evaluator` runs the plan's queries on the source with a bounded number
in flight (a thread pool) and a per-query deadline. A query that fails or
times out marks only the rules reading one of its terms as errored (their
state does not change this tick; the error is recorded); the others proceed.

Each answered query is read once into Python lists (NaN becomes ``None``, no
data). A rule's rows are its scans' rows joined on the group tag values — the
union of the series, a term missing for a series reads ``None`` — and are
built once per distinct set of scans, then shared by every rule reading that
set: the per-rule work is a tight loop of ``compiled.decide(row)`` over shared
rows, with no per-rule query and no second reading of an Arrow table.

What does not depend on the time — the plan, the rules grouped by the scans
they read and by shape, each shape's thresholds sorted — is a *layout*, built
once per set of rules (or from the last one when a few rules changed) and
kept. Rules of one shape are decided together; given ``attention`` (the rules
with an active series or an error to clear), a rule whose condition may hold
for no series is left out of the results: stepping it would change nothing.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, bisect_right
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Container, Iterable, Mapping, Sequence

from monitors_dsl import Decision

from .answers import Answerer, describe_error
from .plan import Plan, Query, plan_tick, scan_key
from .rows import JoinedRows, ScanRows, join_rows, series_key, split_rows
from .rules import EngineRule
from .state import Evaluation

__all__ = [
    "Evaluator",
    "ScanRows",
    "SeriesResult",
    "RuleResult",
    "TickEvaluation",
    "series_key",
    "split_rows",
    "to_evaluation",
    "no_data_evaluation",
]

log = logging.getLogger(__name__)

_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # when a layout's plan is first built; moved to each tick


@dataclass
class SeriesResult:
    """One series of one rule at one evaluation: its labels, row and decision."""

    key: str
    labels: dict[str, str]
    row: Mapping[str, object]
    decision: Decision


class RuleResult:
    """What one evaluation of a rule gave: its series, or the error that stopped it.

    For a rule decided with others of its shape (``candidates`` is not
    ``None``), ``series`` is worked out on first use from the shared ``rows``;
    ``candidates`` are the positions in ``rows`` where its firing condition may
    hold (found by binary search over the shape's sorted thresholds): at every
    other position it is false or without data (and ``on no data`` is not
    ``alert``), which changes nothing for a series that is not already active.
    """

    __slots__ = ("rule", "_series", "error", "joined", "candidates")

    def __init__(self, rule: EngineRule, series: list[SeriesResult] | None = None, error: str | None = None, *,
                 joined: JoinedRows | None = None, candidates: Sequence[int] | None = None) -> None:
        self.rule = rule
        self._series = series if series is not None or joined is not None else []
        self.error = error
        self.joined = joined
        self.candidates = candidates

    @property
    def rows(self) -> list | None:
        """The shared rows the rule is decided over (decided together with others of its shape), else None."""
        return self.joined.rows if self.joined is not None else None

    @property
    def series(self) -> list[SeriesResult]:
        if self._series is None:
            decide = self.rule.compiled.decide
            self._series = [SeriesResult(key, labels, row, decide(row)) for key, labels, row in self.rows]
        return self._series

    @series.setter
    def series(self, value: list[SeriesResult]) -> None:
        self._series = value

    def relevant(self, known: Mapping[str, object]) -> list[SeriesResult]:
        """The series whose step may change something: every series, or (decided together) the candidates
        and the series with a known state."""
        if self.candidates is None or self._series is not None:
            return self.series
        rows = self.rows
        positions = set(self.candidates)
        if known:
            index = self.joined.index()
            for key in known:
                position = index.get(key)
                if position is not None:
                    positions.add(position)
        decide = self.rule.compiled.decide
        out = []
        for position in sorted(positions):
            key, labels, row = rows[position]
            out.append(SeriesResult(key, labels, row, decide(row)))
        return out

    def __repr__(self) -> str:
        return f"RuleResult({self.rule!r}, error={self.error!r})"


class _Cohort:
    """Rules of one shape reading the same scans, decided together: each threshold's values sorted once."""

    __slots__ = ("members", "thresholds", "alert_on_no_data")

    def __init__(self, members: list[EngineRule]) -> None:
        self.members = members
        shape = members[0].compiled.shape
        self.thresholds = []
        for column, op, position in shape.thresholds:
            pairs = sorted((m.compiled.params[position], i) for i, m in enumerate(members))
            self.thresholds.append((column, op, [k for k, _ in pairs], [i for _, i in pairs]))
        self.alert_on_no_data = [i for i, m in enumerate(members) if m.clauses.on_no_data == "alert"]

    def candidates(self, rows: list) -> dict[int, list[int]]:
        """Member → the positions in ``rows`` where its firing condition may hold (see :class:`RuleResult`);
        members without one are absent."""
        found: dict[int, list[int]] = {}
        for s, (_key, _labels, row) in enumerate(rows):
            no_data = False
            for column, op, keys, order in self.thresholds:
                v = row.get(column)
                if v is None:
                    no_data = True
                    continue
                if op == ">" or op == ">=":  # k <= v (equality included: a candidate is decided exactly later)
                    chosen = order[:bisect_right(keys, v)]
                elif op == "<" or op == "<=":
                    chosen = order[bisect_left(keys, v):]
                else:  # ==
                    chosen = order[bisect_left(keys, v):bisect_right(keys, v)]
                for i in chosen:
                    found.setdefault(i, []).append(s)
            if no_data:
                for i in self.alert_on_no_data:
                    found.setdefault(i, []).append(s)
        return found


class _Group:
    """Rules reading the same scans (so the same joined rows): decided one by one, or in cohorts by shape."""

    __slots__ = ("indices", "first", "single", "cohorts")

    def __init__(self, indices: tuple[int, ...], first: EngineRule) -> None:
        self.indices = indices
        self.first = first
        self.single: list[EngineRule] = []
        self.cohorts: dict[object, _Cohort] = {}

    def copy(self) -> _Group:
        group = _Group(self.indices, self.first)
        group.single = list(self.single)
        group.cohorts = dict(self.cohorts)
        return group


def _shared_shape(rule: EngineRule):
    """The rule's shape when it is decided together with others of its shape, else ``None``."""
    shape = getattr(rule.compiled, "shape", None)
    return shape if shape is not None and shape.thresholds is not None else None


class _Layout:
    """What evaluating a set of rules needs that does not depend on the time: the plan, and the rules grouped
    by the scans they read and, within a group, by shape. Built once for a set of rules, used every tick;
    a set that differs from a laid-out one by a few rules is laid out from it (:meth:`updated`)."""

    def __init__(self, rules: tuple[EngineRule, ...], plan: Plan) -> None:
        self.rules = rules
        self.plan = plan
        self.order = {rule.id: n for n, rule in enumerate(rules)}
        self.scan_of = {scan.key: i for i, scan in enumerate(plan.scans)}
        self.term_keys = {term.key for scan in plan.scans for term in scan.terms}
        self.stale = 0  # rules removed since the plan was built (their terms are still asked for)
        self.by_key: dict[tuple, _Group] = {}
        together: dict[tuple, list[EngineRule]] = {}
        for rule in rules:
            key = (plan.rule_scans.get(rule.id, ()), rule.group_by)
            group = self.by_key.get(key)
            if group is None:
                group = self.by_key[key] = _Group(key[0], rule)
            shape = _shared_shape(rule)
            if shape is not None:
                together.setdefault((key, shape), []).append(rule)
            else:
                group.single.append(rule)
        self.where: dict[str, tuple[_Cohort, int]] = {}
        for (key, shape), members in together.items():
            cohort = self.by_key[key].cohorts[shape] = _Cohort(members)
            for i, member in enumerate(members):
                self.where[member.id] = (cohort, i)

    @property
    def groups(self):
        return self.by_key.values()

    def updated(self, rules: tuple[EngineRule, ...]) -> _Layout | None:
        """The layout of ``rules`` built from this one when they differ by a few rules whose terms this plan
        already asks for (``None`` otherwise: lay them out afresh). This layout is left as it is."""
        before = {id(rule) for rule in self.rules}
        now = {id(rule) for rule in rules}
        added = [rule for rule in rules if id(rule) not in before]
        removed = [rule for rule in self.rules if id(rule) not in now]
        if len(added) + len(removed) > max(100, len(rules) // 20) or self.stale + len(removed) > len(rules) // 10:
            return None
        rule_scans = dict(self.plan.rule_scans)
        for rule in removed:
            rule_scans.pop(rule.id, None)
        for rule in added:
            used: list[int] = []
            for term in rule.terms:
                if term.key not in self.term_keys:
                    return None  # a term no query asks for yet: plan again
                index = self.scan_of[scan_key(term)]
                if index not in used:
                    used.append(index)
            rule_scans[rule.id] = tuple(used)
        layout = _Layout.__new__(_Layout)
        layout.rules = rules
        layout.plan = Plan(self.plan.at, self.plan.scans, rule_scans, self.plan.term_count, self.plan.queries)
        layout.order = {rule.id: n for n, rule in enumerate(rules)}
        layout.scan_of, layout.term_keys = self.scan_of, self.term_keys
        layout.stale = self.stale + len(removed)
        layout.by_key = dict(self.by_key)
        layout.where = dict(self.where)
        copied: dict[tuple, _Group] = {}
        members: dict[tuple, list[EngineRule]] = {}  # the cohorts changed: (group key, shape) → members

        def group_of(key: tuple, rule: EngineRule) -> _Group:
            group = copied.get(key)
            if group is None:
                old = layout.by_key.get(key)
                group = copied[key] = layout.by_key[key] = _Group(key[0], rule) if old is None else old.copy()
            return group

        def cohort_of(key: tuple, shape, group: _Group) -> list[EngineRule]:
            found = members.get((key, shape))
            if found is None:
                old = group.cohorts.get(shape)
                found = members[(key, shape)] = list(old.members) if old is not None else []
            return found

        for rule in removed:
            key = (self.plan.rule_scans.get(rule.id, ()), rule.group_by)
            group = group_of(key, rule)
            shape = _shared_shape(rule)
            if shape is None:
                group.single = [r for r in group.single if r is not rule]
            else:
                listed = cohort_of(key, shape, group)
                listed[:] = [r for r in listed if r is not rule]
        for rule in added:
            key = (rule_scans[rule.id], rule.group_by)
            group = group_of(key, rule)
            shape = _shared_shape(rule)
            if shape is None:
                group.single.append(rule)
            else:
                cohort_of(key, shape, group).append(rule)
        for (key, shape), listed in members.items():
            group = layout.by_key[key]
            old = group.cohorts.pop(shape, None)
            if old is not None:
                for member in old.members:
                    if layout.where.get(member.id, (None,))[0] is old:
                        del layout.where[member.id]
            if listed:
                cohort = group.cohorts[shape] = _Cohort(listed)
                for i, member in enumerate(listed):
                    layout.where[member.id] = (cohort, i)
        for key, group in copied.items():
            remaining = group.single or [m for c in group.cohorts.values() for m in c.members[:1]]
            if not remaining:
                del layout.by_key[key]
            elif any(group.first is rule for rule in removed):
                group.first = remaining[0]
        return layout


@dataclass
class TickEvaluation:
    """Every due rule's result at ``at``, the plan, and how the queries went."""

    at: datetime
    plan: Plan
    results: list[RuleResult]
    query_errors: dict[int, str]
    query_seconds: float = 0.0
    #: rules decided together with others of their shape that have nothing to step: their condition holds
    #: for no series and none of their series is active (not in ``results``)
    skipped: int = 0
    #: every rule evaluated (those in ``results`` and those skipped)
    rules: Sequence[EngineRule] = ()

    @property
    def query_count(self) -> int:
        return self.plan.query_count

    @property
    def scan_count(self) -> int:
        return self.plan.scan_count


def to_evaluation(rule: EngineRule, at: datetime, row: Mapping, decision: Decision) -> Evaluation:
    """The state machine's input for one series (values keyed by canonical term text)."""
    values = {term.text: row.get(term.column) for term in rule.value_terms}
    value = row.get(rule.value_column) if rule.value_column else None
    return Evaluation.of(at, decision.severity, decision.resolve, decision.result is None, values, value)


def no_data_evaluation(at: datetime) -> Evaluation:
    """The input for a known series that the query no longer returns."""
    return Evaluation(at=at, no_data=True)


class Evaluator:
    """Runs plans on a source: at most ``max_in_flight`` queries at once, each within ``query_timeout`` seconds."""

    def __init__(self, source, *, max_in_flight: int = 4, query_timeout: float | None = 60.0,
                 merge_scans: bool = True) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.source = source
        self.max_in_flight = max_in_flight
        self.query_timeout = query_timeout
        self.merge_scans = merge_scans  # one query for scans differing only in one tag's value (engine.plan)
        self.queries_issued = 0
        self.answerer = Answerer(source)
        self._layouts: dict[tuple, _Layout] = {}

    # -- queries -----------------------------------------------------------------------

    def run_queries(self, plan: Plan) -> tuple[dict[int, ScanRows], dict[int, str]]:
        """``(rows by scan index, error by scan index)`` for every scan of ``plan``.

        One query per ``plan.queries``, answered by the :class:`~engine.answers.Answerer`: a merged
        query's rows are split into its scans' rows, and a query the source refuses for what it asks is
        split until only the terms it refuses fail (``ScanRows.failed``). A query whose source is away,
        or that times out, fails each of its scans (the error by scan index).
        """
        rows: dict[int, ScanRows] = {}
        errors: dict[int, str] = {}
        queries = plan.queries
        if not queries:
            return rows, errors
        started: dict[int, float] = {}
        answerer = self.answerer

        def run(index: int, query: Query) -> dict[int, ScanRows]:
            started[index] = time.monotonic()
            return answerer.answer(plan, query)

        def fail(query: Query, text: str) -> None:
            for member in query.members:
                errors[member] = text

        before = answerer.queries
        pool = ThreadPoolExecutor(max_workers=min(self.max_in_flight, len(queries)), thread_name_prefix="query")
        try:
            futures = {pool.submit(run, i, query): i for i, query in enumerate(queries)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    query = queries[futures[future]]
                    try:
                        rows.update(future.result())
                    except Exception as error:  # the source is away, or a bad answer: only this query's rules fail
                        fail(query, describe_error(error))
                        log.warning("query for %s failed: %s", query.scan.measurement, describe_error(error))
                if self.query_timeout is None:
                    continue
                now = time.monotonic()
                for future in list(pending):
                    index = futures[future]
                    if index in started and now - started[index] > self.query_timeout:
                        pending.discard(future)
                        fail(queries[index], f"query timed out after {self.query_timeout:g} s")
                        log.warning("query for %s timed out", queries[index].scan.measurement)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a hung query must not hold up the tick
            self.queries_issued += max(len(queries), answerer.queries - before)
        for index, part in rows.items():
            for column, why in part.failed.items():
                log.warning("term of %s refused: %s", plan.scans[index].measurement, why)
        return rows, errors

    # -- rules -------------------------------------------------------------------------

    def evaluate(self, rules: Sequence[EngineRule], at: datetime, plan: Plan | None = None, *,
                 attention: Container[str] | None = None) -> TickEvaluation:
        """Plan, query and decide every rule of ``rules`` at ``at``.

        With ``attention`` (the ids of the rules with an active series or an
        error to clear), a rule decided together with others of its shape is
        left out of the results when its condition may hold for no series and
        it is not in ``attention``: stepping it would change nothing. Without
        it, every rule has a result.
        """
        layout = self._layout(rules, plan)
        plan = layout.plan.at_time(at) if plan is None else plan
        began = time.monotonic()
        scan_rows, errors = self.run_queries(plan)
        elapsed = time.monotonic() - began
        wanted: dict[int, set[int]] = {}  # cohort → members in attention
        if attention is not None:
            where = layout.where
            for rule_id in attention:
                found = where.get(rule_id)
                if found is not None:
                    wanted.setdefault(id(found[0]), set()).add(found[1])
        results = []
        skipped = 0
        for group in layout.groups:
            failed = next((errors[i] for i in group.indices if i in errors), None)
            if failed is not None:
                results.extend(RuleResult(rule, error=failed) for rule in group.single)
                for cohort in group.cohorts.values():
                    results.extend(RuleResult(rule, error=failed) for rule in cohort.members)
                continue
            joined = join_rows(group.first.group_by, group.indices, scan_rows, plan)
            rows = joined.rows
            for rule in group.single:
                refused = joined.refused(rule.terms)
                if refused is not None:
                    results.append(RuleResult(rule, error=refused))
                    continue
                decide = rule.compiled.decide
                try:
                    series = [SeriesResult(key, labels, row, decide(row)) for key, labels, row in rows]
                except Exception as error:  # a predicate bug must not stop the other rules
                    results.append(RuleResult(rule, error=f"evaluation failed: {describe_error(error)}"))
                    continue
                results.append(RuleResult(rule, series))
            for cohort in group.cohorts.values():
                members = cohort.members
                refused = joined.refused(members[0].terms)  # one shape: the same terms
                if refused is not None:
                    results.extend(RuleResult(rule, error=refused) for rule in members)
                    continue
                found = cohort.candidates(rows)
                if attention is None:
                    chosen: Iterable[int] = range(len(members))
                else:
                    chosen = found.keys() | wanted.get(id(cohort), set())
                    skipped += len(members) - len(chosen)
                empty: tuple = ()
                results.extend(RuleResult(members[i], joined=joined, candidates=found.get(i, empty))
                               for i in chosen)
        if attention is not None or len(layout.groups) > 1:
            order = layout.order
            results.sort(key=lambda r: order[r.rule.id])
        return TickEvaluation(at, plan, results, errors, elapsed, skipped, layout.rules)

    def _layout(self, rules: Sequence[EngineRule], plan: Plan | None) -> _Layout:
        """The layout of ``rules``: remembered for the last few sets of rules (a tick's due rules repeat), a
        set close to the last one laid out from it (which it then replaces)."""
        key = tuple(rules)
        if plan is not None:
            return _Layout(key, plan)
        layouts = self._layouts
        latest = next(reversed(layouts.values()), None)
        if latest is not None and latest.rules == key:  # the common case, without hashing 100,000 rules thrice
            return latest
        found = layouts.get(key)
        if found is None:
            latest = next(reversed(layouts), None)
            found = layouts[latest].updated(key) if latest is not None else None
            if found is not None:
                del layouts[latest]  # superseded (a layout of 100,000 rules holds tens of MB)
            else:
                found = _Layout(key, plan_tick(key, _EPOCH, merge=self.merge_scans))
            if len(layouts) >= 4:
                layouts.pop(next(iter(layouts)))
            layouts[key] = found
        else:
            layouts[key] = layouts.pop(key)  # most recently used last
        return found
