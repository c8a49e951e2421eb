"""Evaluation: a tick's shared queries answered, then every rule decided over the shared rows.

The pipeline of one :meth:`Evaluator.evaluate`:

1. the *layout* of the rules (``engine.layout``: the plan of shared queries,
   the rules grouped by the scans they read and by shape), kept between ticks;
   the plan's SQL moved to the tick's time;
2. the queries answered (``engine.answers``: a bounded number in flight, a
   deadline each; a query the source refuses split until only the refused
   terms fail; a query whose source is away fails the rules reading it);
3. each group's scans joined into rows (``engine.rows``), shared by every rule
   of the group: per rule, a loop of ``compiled.decide(row)``;
4. rules of one shape decided together: given ``attention`` (the rules with an
   active series or an error to clear), a rule whose condition may hold for no
   series is left out of the results — stepping it would change nothing.

A rule reading a failed query or a refused term gets the error (its state does
not change this tick; the runner records the error); the others proceed.

``active during WINDOW`` takes part in the decision only, never in the queries
(a rule shares its scans whether or not it is active): at an instant outside
the window (``TimeWindow.contains`` in the window's zone) every decision of the
rule is :func:`inactive_decision` — the firing condition false, whatever the
data — so pending series go back to inactive and firing ones resolve as the
state machine says (``resolve when``, ``keep firing for``). A rule without the
clause pays one ``is None`` test per tick.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Container, Iterable, Mapping, Sequence

from monitors_dsl import Decision

from .answers import Answerer, answer_plan, describe_error
from .layout import Layouts
from .plan import Plan, Query
from .rows import JoinedRows, ScanRows, join_rows, series_key, split_rows, vacant_row
from .rules import EngineRule
from .state import Evaluation

__all__ = [
    "Evaluator",
    "active_at",
    "decider",
    "inactive_decision",
    "ScanRows",
    "SeriesResult",
    "RuleResult",
    "TickEvaluation",
    "series_key",
    "split_rows",
    "to_evaluation",
    "vacant_evaluation",
]

log = logging.getLogger(__name__)



def inactive_decision(decision: Decision, has_resolve: bool, no_data_ok: bool) -> Decision:
    """A decision at an instant outside the rule's ``active during`` window: no firing condition holds (known,
    not unknown: ``on no data`` cannot make it fire). Without ``resolve when`` the resolve criterion is "no
    firing condition holds": met. With it, it stays that condition's value, except that a series without
    data under ``on no data ok`` meets it (as *no data* means there inside the window too)."""
    if not has_resolve:
        return _OFF
    if decision.result is None and no_data_ok:
        return _OFF
    return Decision(False, None, decision.resolve)


_OFF = Decision(False, None, True)


def active_at(rule: EngineRule, at: datetime, cache: dict | None = None) -> bool:
    """Whether ``rule`` is active at ``at``: no ``active during`` window, or one containing ``at``
    (``cache``: windows already asked at this instant, many rules sharing one)."""
    window = rule.active_during
    if window is None:
        return True
    if cache is None:
        return window.contains(at)
    found = cache.get(window)
    if found is None:
        found = cache[window] = window.contains(at)
    return found


def decider(rule: EngineRule, at: datetime, cache: dict | None = None):
    """The rule's decision function at ``at``: ``compiled.decide``, or outside its ``active during`` window
    that function followed by :func:`inactive_decision`."""
    decide = rule.compiled.decide
    if rule.active_during is None or active_at(rule, at, cache):
        return decide
    clauses = rule.clauses
    has_resolve, no_data_ok = clauses.has_resolve, clauses.on_no_data == "ok"
    if not has_resolve:
        return lambda row: _OFF

    def decide_inactive(row):
        return inactive_decision(decide(row), True, no_data_ok)

    return decide_inactive


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

    __slots__ = ("rule", "_series", "error", "joined", "candidates", "_decide", "active")

    def __init__(self, rule: EngineRule, series: list[SeriesResult] | None = None, error: str | None = None, *,
                 joined: JoinedRows | None = None, candidates: Sequence[int] | None = None,
                 decide=None, active: bool = True) -> None:
        self.rule = rule
        self._series = series if series is not None or joined is not None else []
        self.error = error
        self.joined = joined
        self.candidates = candidates
        self._decide = decide
        #: False when the evaluation is outside the rule's ``active during`` window
        self.active = active

    @property
    def decide(self):
        """How the rule's series are decided at this evaluation (see :func:`decider`)."""
        decide = self._decide
        return decide if decide is not None else self.rule.compiled.decide

    @property
    def rows(self) -> list | None:
        """The shared rows the rule is decided over (decided together with others of its shape), else None."""
        return self.joined.rows if self.joined is not None else None

    @property
    def series(self) -> list[SeriesResult]:
        if self._series is None:
            decide = self.decide
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
        decide = self.decide
        out = []
        for position in sorted(positions):
            key, labels, row = rows[position]
            out.append(SeriesResult(key, labels, row, decide(row)))
        return out

    def __repr__(self) -> str:
        return f"RuleResult({self.rule!r}, error={self.error!r})"


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


def vacant_evaluation(rule: EngineRule, at: datetime, decide=None) -> Evaluation:
    """The input for a known series that the query no longer returns: its condition decided on the row of
    a series without points (no data; a grouped ``absent`` false), with those values. ``decide``: the
    rule's decision function at ``at`` (:func:`decider`; by default worked out here)."""
    row = vacant_row(rule.terms, bool(rule.group_by))
    if decide is None:
        decide = decider(rule, at)
    return to_evaluation(rule, at, row, decide(row))


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
        self.layouts = Layouts(merge=merge_scans)

    # -- queries -----------------------------------------------------------------------

    def run_queries(self, plan: Plan) -> tuple[dict[int, ScanRows], dict[int, str]]:
        """``(rows by scan index, error by scan index)`` for every scan of ``plan`` (see ``engine.answers``)."""
        rows, errors, asked = answer_plan(self.answerer, plan, max_in_flight=self.max_in_flight,
                                          timeout=self.query_timeout)
        self.queries_issued += asked
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
        layout = self.layouts.of(rules, plan)
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
        windows: dict = {}  # active during: each window asked once at this instant
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
                active = rule.active_during is None or active_at(rule, at, windows)
                decide = rule.compiled.decide if active else decider(rule, at, windows)
                try:
                    series = [SeriesResult(key, labels, row, decide(row)) for key, labels, row in rows]
                except Exception as error:  # a predicate bug must not stop the other rules
                    results.append(RuleResult(rule, error=f"evaluation failed: {describe_error(error)}"))
                    continue
                results.append(RuleResult(rule, series, decide=decide, active=active))
            for cohort in group.cohorts.values():
                members = cohort.members
                refused = joined.refused(members[0].terms)  # one shape: the same terms
                if refused is not None:
                    results.extend(RuleResult(rule, error=refused) for rule in members)
                    continue
                found = cohort.candidates(rows)
                timed = cohort.timed  # members with `active during`: outside it, candidates of nothing
                off: dict[int, object] = {}
                for i in timed:
                    rule = members[i]
                    if not active_at(rule, at, windows):
                        off[i] = decider(rule, at, windows)
                        found.pop(i, None)
                if attention is None:
                    chosen: Iterable[int] = range(len(members))
                else:
                    chosen = found.keys() | wanted.get(id(cohort), set())
                    skipped += len(members) - len(chosen)
                empty: tuple = ()
                if off:
                    results.extend(RuleResult(members[i], joined=joined, candidates=found.get(i, empty),
                                              decide=off.get(i), active=i not in off) for i in chosen)
                else:
                    results.extend(RuleResult(members[i], joined=joined, candidates=found.get(i, empty))
                                   for i in chosen)
        if attention is not None or len(layout.groups) > 1:
            order = layout.order
            results.sort(key=lambda r: order[r.rule.id])
        return TickEvaluation(at, plan, results, errors, elapsed, skipped, layout.rules)
