"""The runner: one tick = plan, query, decide, step every series, record — over real or simulated time.

    runner = Runner(StaticRules(rules), MemoryRepository(), Evaluator(source))
    report = runner.tick(at)            # the rules due at ``at``
    report = runner.tick(at, all_rules=True)

A tick takes the rules due at ``at`` (or all of them), evaluates them with
shared queries, applies the state machine to each series, and records the
rules' changes through the repository (``record_many``), each rule all or
nothing: rules that only change series states are written together, a rule
that opens, changes or closes an alert or queues notifications on its own. Series
the query no longer returns are stepped with *no data*. A series never seen
before whose condition is false changes nothing and is not written, a rule
whose condition holds nowhere and whose series are all quiet is not stepped at
all (``attention``), and a firing series whose values alone changed is written
once per ``values_every`` seconds: the cost of a tick grows with distinct terms
and state changes, not with rules.
A rule whose query failed keeps its state and gets the error recorded.

``active during`` is in the decisions (``engine.evaluate.decider``). ``depends on``:
every due rule is decided before any is recorded; when a rule with a dependency
has something to record, the tick's :class:`engine.depends.FiringIndex` (the
dependencies' firing series: stored, overlaid with this tick's decisions) goes
to the repository with the writes (``record_many(…, firing=index)``), which
holds that rule's notifications while its dependency fires.

:meth:`Runner.run` is the live loop: tick at each second where something is
due (plus the evaluation delay), reload rules before each tick, and call
``between_ticks`` (the outbox dispatcher) while waiting; ``stop()`` (SIGTERM)
lets the current tick finish and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from .depends import FiringIndex, firing_index
from .evaluate import Evaluator, TickEvaluation, to_evaluation, vacant_evaluation
from .repository import Repository, SeriesUpdate
from .rules import AllRules, EngineRule, RuleSet
from .schedule import due_rules, from_epoch, next_due
from .state import FIRING, INACTIVE, SeriesState, step
from .state.machine import firing_outcome, keep_values
from .state.model import to_utc

__all__ = ["RuleSet", "AllRules", "StaticRules", "Runner", "TickReport", "VALUES_EVERY"]

log = logging.getLogger(__name__)


#: Seconds: a firing series whose values alone changed has them written once per period of this length (see
#: ``engine.state.machine``); every other change is written at once.
VALUES_EVERY = 300.0


def _dependencies_first(pending: list) -> list:
    """The tick's writes with each rule after the rule it depends on (when that one has writes too): a
    repository that reads a dependency's alerts as recorded sees this tick's. Otherwise in their order; a
    cycle (refused when rules are stored) keeps its members' order."""
    by_name = {(e[0].owner_id, e[0].name): e[0] for e in pending if e[0].name is not None}
    depth: dict[str, int] = {}

    def depth_of(rule: EngineRule) -> int:
        chain: list[EngineRule] = []  # the rule, its dependency, that one's …, up to one already known
        seen: set[str] = set()
        current: EngineRule | None = rule
        while current is not None and current.id not in depth and current.id not in seen:
            seen.add(current.id)
            chain.append(current)
            dependency = current.depends_on
            current = by_name.get((current.owner_id, dependency.rule)) if dependency is not None else None
        below = depth.get(current.id, 0) + 1 if current is not None and current.id in depth else 0
        for link in reversed(chain):
            depth[link.id] = below
            below += 1
        return depth[rule.id]

    return sorted(pending, key=lambda e: depth_of(e[0]))


class StaticRules(AllRules):
    """A fixed list of rules (backtests, tests); ``replace`` swaps it."""

    def __init__(self, rules: Sequence[EngineRule] = ()) -> None:
        self.rules = list(rules)

    def replace(self, rules: Sequence[EngineRule]) -> None:
        self.rules = list(rules)
        self.reloads += 1

    def current(self) -> Sequence[EngineRule]:
        return self.rules


@dataclass
class TickReport:
    """What one tick did."""

    at: datetime
    rules: int = 0
    queries: int = 0  # queries asked of the source
    scans: int = 0  # distinct scans those queries answered (scans differing in one tag's value share a query)
    errors: dict[str, str] = field(default_factory=dict)
    transitions: int = 0
    notifications: int = 0
    outbox_rows: int = 0
    evaluation: TickEvaluation | None = None
    seconds: float = 0.0  # how long the tick took
    lag: float = 0.0  # how late the live loop started it (seconds after its due time and the delay)
    unheld: int = 0  # results not recorded: the rule set no longer holds the rule (its lease ran out)
    #: the dependencies' firing series the tick's writes were given (``None``: no rule with ``depends on``
    #: had anything to record)
    firing: FiringIndex | None = None


class Runner:
    """Evaluates rules and records what happens; see the module docstring."""

    def __init__(self, rules: RuleSet, repository: Repository, evaluator: Evaluator, *,
                 evaluation_delay: float = 0.0, values_every: float = VALUES_EVERY) -> None:
        self.rules = rules
        self.repository = repository
        self.evaluator = evaluator
        self.evaluation_delay = evaluation_delay
        self.values_every = values_every  # a firing series' new values alone: written once per this period
        self._stop = threading.Event()
        self._held_pool: tuple | None = None  # the rules of the last tick, and their ids
        self._held: set[str] | None = None

    # -- one tick ----------------------------------------------------------------------

    def tick(self, at: datetime, *, all_rules: bool = False, rules: Sequence[EngineRule] | None = None) -> TickReport:
        """Evaluate the rules due at ``at`` (every rule with ``all_rules``) and record the results."""
        at = to_utc(at)
        began = time.monotonic()
        pool = list(rules if rules is not None else self.rules.current())
        self._forget_newly_held(pool)
        due = pool if all_rules else due_rules(pool, at)
        if due:
            due = self.rules.begin_tick(due, at)  # leased: once per rule and due time, whoever holds it
        report = TickReport(at, rules=len(due))
        if not due:
            return report
        states = self.repository.load_states(due)
        evaluation = self.evaluator.evaluate(due, at, attention=self._attention(states))
        report.evaluation = evaluation
        report.queries = evaluation.query_count
        report.scans = evaluation.scan_count
        ok = [r.rule for r in evaluation.results if r.error is None]
        silenced = self.repository.silenced(ok, at)
        holds = self.rules.holds  # record only what the rule set still holds (leases)
        pending: list[tuple[EngineRule, list[SeriesUpdate], bool]] = []
        dependents = False
        for result in evaluation.results:
            rule = result.rule
            if not holds(rule):
                report.unheld += 1
                continue
            try:
                if result.error is not None:
                    report.errors[rule.id] = result.error
                    self.repository.record_error(rule, at, result.error)
                    continue
                known = states.get(rule.id, {})
                updates = self._updates(rule, at, result.relevant(known), known, result.decide)
                self.repository.clear_error(rule)
                if updates:
                    pending.append((rule, updates, rule.id in silenced))
                    if rule.depends_on is not None:
                        dependents = True
            except Exception as error:  # one rule's store failure must not stop the others
                self._failed(report, rule, at, error)
        if pending:
            if dependents:
                pending = _dependencies_first(pending)
                try:
                    report.firing = firing_index(self.repository, (e[0] for e in pending), pending)
                except Exception as error:  # the store is away: the writes would fail the same way
                    for rule, _, _ in pending:
                        self._failed(report, rule, at, error)
                    pending = []
            self._record(report, at, pending, holds, report.firing)
        report.seconds = time.monotonic() - began
        return report

    def _record(self, report: TickReport, at: datetime, pending: list, holds,
                firing: FiringIndex | None = None) -> None:
        """Write the rules' updates (the repository batches what it can; each rule stays all or nothing);
        ``firing``: the dependencies' firing series, for the rules with ``depends on``."""
        held = [entry for entry in pending if holds(entry[0])]  # still held now that the tick is decided
        report.unheld += len(pending) - len(held)
        pending = held
        if not pending:
            return
        if firing is None:
            outcomes = self.repository.record_many(at, pending)
        else:
            outcomes = self.repository.record_many(at, pending, firing=firing)
        for rule, updates, _ in pending:
            outcome = outcomes.get(rule.id, 0)
            if isinstance(outcome, Exception):
                self._failed(report, rule, at, outcome)
                continue
            report.outbox_rows += outcome
            report.transitions += sum(len(u.step.transitions) for u in updates)
            report.notifications += sum(len(u.step.notifications) for u in updates)

    def _attention(self, states: dict[str, dict[str, SeriesState]]) -> set[str] | None:
        """The rules that must be stepped whatever their condition gives: an active series (not quietly
        inactive) or an error to clear. ``None`` when the repository cannot tell its errors (step every rule)."""
        errored = self.repository.errored()
        if errored is None:
            return None
        active = set(errored)
        for rule_id, known in states.items():
            for s in known.values():
                if s.state != INACTIVE or s.flapping or s.changes or s.notified_severity is not None:
                    active.add(rule_id)
                    break
        return active

    @staticmethod
    def _failed(report: TickReport, rule: EngineRule, at: datetime, error: BaseException) -> None:
        log.error("recording rule %s at %s failed", rule.id, at, exc_info=error)
        report.errors[rule.id] = f"recording failed: {' '.join(str(error).split())[:500]}"

    def _forget_newly_held(self, pool: Sequence[EngineRule]) -> None:
        """A rule this runner did not hold at its last tick may have been evaluated elsewhere meanwhile:
        its states are read from the store again (repositories that keep states between ticks)."""
        pool = tuple(pool)
        if pool == self._held_pool:  # the same rules as last time (compared by identity)
            return
        self._held_pool = pool
        ids = {r.id for r in pool}
        held = self._held
        if held is not None and ids != held:
            self.repository.forget(ids - held)
        self._held = ids

    def _updates(self, rule: EngineRule, at: datetime, series, known: dict[str, SeriesState],
                 decide=None) -> list[SeriesUpdate]:
        clauses = rule.clauses
        quiet_no_data = clauses.on_no_data != "alert"
        values_every = self.values_every
        updates = []
        seen = set()
        for s in series:
            seen.add(s.key)
            previous = known.get(s.key)
            decision = s.decision
            result = decision.result
            look = False  # the notifier asked to look at it now (``notice_at``: a held notice, an escalation due)
            if previous is None:
                if result is False or (result is None and quiet_no_data):
                    continue  # a series that never did anything and still does nothing: nothing to write
            elif previous.notice_at is not None and previous.notice_at <= at:
                look = True
            elif result is True and previous.state == FIRING:
                outcome = firing_outcome(previous, decision.severity, decision.resolve, at, clauses, values_every,
                                         rule_id=rule.id, series_key=s.key)
                if outcome == "unchanged":
                    continue  # still firing as it was: nothing to write yet
                if outcome == "values":
                    evaluation = to_evaluation(rule, at, s.row, decision)
                    stepped = keep_values(previous, evaluation)
                    if stepped.state is not previous:
                        updates.append(SeriesUpdate(s.key, s.labels, stepped, evaluation, previous))
                    continue
            evaluation = to_evaluation(rule, at, s.row, decision)
            base = previous if previous is not None else SeriesState()
            stepped = step(base, evaluation, clauses, rule_id=rule.id, series_key=s.key, values_every=values_every)
            if stepped.state is base and not look:
                continue  # nothing changed (or already applied: a tick run again): nothing to write
            updates.append(SeriesUpdate(s.key, s.labels, stepped, evaluation, previous))
        for key, previous in known.items():
            if key in seen or (previous.state == INACTIVE and not previous.flapping):
                continue
            evaluation = vacant_evaluation(rule, at, decide)
            stepped = step(previous, evaluation, clauses, rule_id=rule.id, series_key=key, values_every=values_every)
            if stepped.state is not previous or (previous.notice_at is not None and previous.notice_at <= at):
                updates.append(SeriesUpdate(key, None, stepped, evaluation, previous))
        return updates

    # -- the live loop -----------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current tick."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, between_ticks: Callable[[], object] | None = None, clock: Callable[[], float] = time.time,
            idle: float = 1.0, on_tick: Callable[[TickReport], object] | None = None) -> None:
        """Tick at each due second until :meth:`stop`; missed ticks are not replayed."""
        last = clock() - self.evaluation_delay
        while not self._stop.is_set():
            try:
                rules = list(self.rules.current())
            except Exception:  # the store is away: keep the loop alive, try again shortly
                log.exception("loading rules failed")
                rules = []
                if self._stop.wait(idle):
                    break
                continue
            target = next_due(rules, last)
            now = clock()
            if target is None or target + self.evaluation_delay > now:
                self._between(between_ticks)
                wake = idle if target is None else min(idle, max(0.0, target + self.evaluation_delay - clock()))
                if self._stop.wait(wake):
                    break
                continue
            # the newest due time not after now: ticks missed while busy or down are skipped
            behind = now - self.evaluation_delay
            while True:
                following = next_due(rules, target)
                if following is None or following > behind:
                    break
                target = following
            last = target
            started = time.monotonic()
            lag = max(0.0, clock() - target - self.evaluation_delay)
            report = self.tick(from_epoch(target), rules=rules)
            report.lag = lag
            if report.rules:
                log.info("tick %s: %d rules, %d queries (%d scans), %d transitions, %d notifications, %d errors "
                         "in %.3f s", report.at.isoformat(), report.rules, report.queries, report.scans, report.transitions,
                         report.notifications, len(report.errors), time.monotonic() - started)
            if on_tick is not None:
                on_tick(report)
            self._between(between_ticks)  # also when ticks run back to back: queued notifications go out

    @staticmethod
    def _between(between_ticks: Callable[[], object] | None) -> None:
        if between_ticks is None:
            return
        try:
            between_ticks()
        except Exception:
            log.exception("dispatching notifications failed")
