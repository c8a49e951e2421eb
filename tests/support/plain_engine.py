"""The plain definition of a live engine run: the reference evaluator over raw points, then the state machine
stepped for every known series of every due rule at every tick, with nothing skipped.

It is the twin the real runner (shared queries, layouts, cohorts, skipped rules, values kept once per
period, batched store writes) is tested against, so it is written from the contract, not from the engine:

- a rule is due at the whole multiples of its ``every`` (epoch seconds);
- its series at ``T`` are those ``monitors_dsl.reference.evaluate`` returns, and every other *known*
  series: one with a point of one of the rule's terms in the 24 hours before that term's window (the
  look-back of a grouped ``absent``), or whose state is not quietly inactive (pending, firing, or receivers
  told of an alert);
- each series is decided by ``monitors_dsl.reference.decision`` from its terms' values, a term that sees
  nothing of the series reading as ``reference.evaluate`` reads it: no data, ``absent`` false (so a series
  that stopped reporting is *no data* wherever its condition is unknown);
- every known series is stepped (``engine.state.step``) at every due tick, whatever it gives;
- alerts follow the transitions: opened on entering ``firing`` (values at start), their severity changed on
  ``firing → firing``, closed on ``firing → inactive`` (values at resolution);
- changing what decides a rule's alerts, or deleting it, closes its open alerts and forgets its series (as
  the rule service does); other changes keep them.

Times are aware UTC datetimes; points are ``{measurement: [{"time": ns, tag: str, field: number}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.evaluate import series_key
from engine.state import FIRING, INACTIVE, SEVERITY_RANK, Clauses, Evaluation, FlapDetection, SeriesState, step
from monitors_dsl import ast as a
from monitors_dsl import parse, reference
from monitors_dsl.sql import Term, terms_of

__all__ = ["PlainRule", "PlainAlert", "PlainEngine", "CLOSED_BY_CHANGE"]

#: ``resolved_at`` of an alert closed because its rule changed or was deleted (the service closes it at the
#: wall-clock time of the change, which no evaluation decides)
CLOSED_BY_CHANGE = "closed by a rule change"


@dataclass
class PlainRule:
    """One stored rule as the definition reads it: its id, its canonical text parsed, and what follows."""

    id: str
    text: str
    flap: FlapDetection | None = None
    rule: a.Rule = field(init=False)
    clauses: Clauses = field(init=False)
    terms: tuple[Term, ...] = field(init=False)
    value_column: str | None = field(init=False)

    def __post_init__(self) -> None:
        (self.rule,) = parse(self.text)
        self.clauses = Clauses.from_rule(self.rule, flap=self.flap)
        self.terms = terms_of(self.rule)
        firing = [node for _, cond in self.rule.conditions for node in a.aggregates(cond)]
        # the template's `value`: the first aggregate of the firing condition(s), in source order
        first = min(firing, key=lambda node: node.span.start, default=None)
        self.value_column = None if first is None else Term.from_aggregate(first, self.rule.group_by).column

    @property
    def every(self) -> int:
        return max(1, self.rule.every.seconds)

    def due(self, at: datetime) -> bool:
        seconds = at.timestamp()
        return seconds == int(seconds) and int(seconds) % self.every == 0


@dataclass
class PlainAlert:
    rule_id: str
    series_key: str
    labels: dict
    severity: str
    started_at: datetime
    values_at_start: dict
    state: str = "firing"
    resolved_at: object = None
    values_at_resolution: dict | None = None
    events: list = field(default_factory=list)  # (kind, at, from, to, severity, values)


class PlainEngine:
    """Steps every known series of every due rule; records transitions, notifications and alerts."""

    def __init__(self, values_every: float, flap: FlapDetection | None = None) -> None:
        self.values_every = values_every
        self.flap = flap
        self.rules: dict[str, PlainRule] = {}
        self.states: dict[str, dict[str, SeriesState]] = {}
        self.transitions: list[tuple] = []  # (rule id, series key, at, from, to, severity)
        self.notifications: list[dict] = []  # Notification.to_dict()
        self.alerts: list[PlainAlert] = []
        self._open: dict[tuple[str, str], PlainAlert] = {}
        self._labels: dict[tuple[str, str], dict] = {}  # a series' group labels, as last seen
        #: (rule id, time) of each decision that compared a value SQL may round otherwise with a number
        #: it (nearly) equals: there the engine may rightly decide the other way
        self.ties: list[tuple[str, datetime]] = []
        self._memo_at: tuple | None = None
        self._memo: dict = {}

    # -- the rule set ---------------------------------------------------------------------

    def put(self, rule_id: str, text: str) -> None:
        """A rule added, or changed as the rule service changes it."""
        old = self.rules.get(rule_id)
        new = PlainRule(rule_id, text, self.flap)
        if old is not None and _evaluation_of(old.rule) != _evaluation_of(new.rule):
            self._close(rule_id)
        self.rules[rule_id] = new

    def delete(self, rule_id: str) -> None:
        self._close(rule_id)
        del self.rules[rule_id]

    def _close(self, rule_id: str) -> None:
        for key in [k for k in self._open if k[0] == rule_id]:
            alert = self._open.pop(key)
            alert.state, alert.resolved_at = "resolved", CLOSED_BY_CHANGE
        self.states.pop(rule_id, None)
        for key in [k for k in self._labels if k[0] == rule_id]:
            del self._labels[key]

    # -- one tick ---------------------------------------------------------------------------

    def tick(self, at: datetime, points: dict) -> None:
        for rule in self.rules.values():
            if rule.due(at):
                self._evaluate(rule, at, points)

    def _evaluate(self, rule: PlainRule, at: datetime, points: dict) -> None:
        known = self.states.setdefault(rule.id, {})
        found: dict[str, tuple[dict | None, Evaluation]] = {}
        for labels, values in self._series(rule, points, at):
            found[series_key(labels)] = (labels, self._evaluation(rule, at, values))
        unseen = None
        for key, state in known.items():
            if key not in found and not _quiet(state):  # no point of its terms for a day: still stepped
                if unseen is None:
                    unseen = self._evaluation(rule, at, _unseen(rule))
                found[key] = (None, unseen)
        for key, (labels, evaluation) in found.items():
            previous = known.get(key, SeriesState())
            stepped = step(previous, evaluation, rule.clauses, rule_id=rule.id, series_key=key,
                           values_every=self.values_every)
            if stepped.state is previous:
                continue
            known[key] = stepped.state
            if labels is not None:
                self._labels[(rule.id, key)] = labels
            for t in stepped.transitions:
                self.transitions.append((rule.id, key, t.at, t.from_state, t.to_state, t.severity))
                self._alert(rule, key, t, evaluation)
            self.notifications.extend(n.to_dict() for n in stepped.notifications)

    def _series(self, rule: PlainRule, points: dict, at: datetime) -> list[tuple[dict, dict]]:
        """Every known series of the rule at ``at`` with its terms' values by column: those
        ``reference.evaluate`` gives, and the other series with a point in the 24 hours before one of the
        terms' windows (those a grouped ``absent`` of the term would watch), valued as ``reference.evaluate``
        values a series that a term does not see: no data, and ``absent`` false (not a series it watches)."""
        group_by = rule.rule.group_by
        per_term = {term.column: self._term_values(term, points, at) for term in rule.terms}
        if group_by:
            keys = {key for by_group in per_term.values() for key in by_group}
            for term in rule.terms:
                watch = Term("absent", term.selector, term.window, term.offset, None, group_by, term.text)
                keys.update(self._term_values(watch, points, at))
        else:
            keys = {()}
        missing = _unseen(rule)
        return [(dict(zip(group_by, key)), {column: by_group.get(key, missing[column])
                                            for column, by_group in per_term.items()}) for key in sorted(keys)]

    def _term_values(self, term: Term, points: dict, at: datetime) -> dict:
        """``reference.term_values``, remembered for the tick (rules share terms)."""
        if self._memo_at != (at, id(points)):
            self._memo_at, self._memo = (at, id(points)), {}
        found = self._memo.get(term.key)
        if found is None:
            found = self._memo[term.key] = reference.term_values(term, points, at)
        return found

    def _evaluation(self, rule: PlainRule, at: datetime, values: dict) -> Evaluation:
        if _near_tie(rule.rule, values):
            self.ties.append((rule.id, at))
        d = reference.decision(rule.rule, values)
        value = values[rule.value_column] if rule.value_column else None
        return Evaluation(at=at, severity=d.severity, resolve=d.resolve, no_data=d.result is None,
                          values={term.text: values[term.column] for term in rule.terms}, value=value)

    def _alert(self, rule: PlainRule, key: str, t, evaluation: Evaluation) -> None:
        values = dict(evaluation.values)
        alert = self._open.get((rule.id, key))
        if t.to_state == FIRING and t.from_state != FIRING:
            tags = dict(self._labels.get((rule.id, key), {}))
            tags.update(rule.rule.labels)
            alert = PlainAlert(rule.id, key, tags, t.severity, t.at, values)
            self.alerts.append(alert)
            self._open[(rule.id, key)] = alert
            kind = "fired"
        elif alert is None:
            return
        elif t.to_state == FIRING:
            kind = "escalated" if SEVERITY_RANK[t.severity] > SEVERITY_RANK[alert.severity] else "de-escalated"
            alert.severity = t.severity
        elif t.to_state == INACTIVE:
            kind = "resolved"
            alert.state, alert.resolved_at, alert.values_at_resolution = "resolved", t.at, values
            del self._open[(rule.id, key)]
        else:
            return
        alert.events.append((kind, t.at, t.from_state, t.to_state, t.severity, values))


#: the function whose value SQL rounds otherwise than the reference over integer-valued data (the sample
#: deviation: DataFusion's streaming algorithm); sums, means, ranks, rates and changes of such data are
#: computed alike to the last bit (the same operations on the same exact inputs)
_INEXACT = frozenset({"stddev"})


def _near_tie(rule: a.Rule, values: dict) -> bool:
    """Whether a comparison of the rule, over an inexact function, sits within 1e-9 (relative) of a tie."""
    expressions = [cond for _, cond in rule.conditions] + ([rule.resolve_when] if rule.resolve_when else [])
    for expr in expressions:
        for node in a.walk(expr):
            if not isinstance(node, a.Comparison):
                continue
            if not any(isinstance(n, a.Aggregate) and n.function in _INEXACT
                       for side in (node.left, node.right) for n in a.walk(side)):
                continue
            left = reference.condition_value(node.left, values, rule.group_by)
            right = reference.condition_value(node.right, values, rule.group_by)
            if isinstance(left, (int, float)) and isinstance(right, (int, float)) \
                    and abs(left - right) <= 1e-9 * max(abs(left), abs(right), 1e-12):
                return True
    return False


def _unseen(rule: PlainRule) -> dict:
    """The terms' values for a series none of them sees: no data, and ``absent`` false (not a series it
    watches), as ``reference.evaluate`` values a series for a term that lacks it."""
    return {t.column: (False if t.function == "absent" else None) for t in rule.terms}


def _quiet(state: SeriesState) -> bool:
    return state.state == INACTIVE and state.notified_severity is None and not state.flapping and not state.changes


def _evaluation_of(rule: a.Rule) -> tuple:
    """What decides a rule's alerts (as the rule service compares it when a rule is changed)."""
    return (rule.when, rule.critical_when, rule.warning_when, rule.info_when, rule.resolve_when, rule.group_by,
            rule.for_, rule.keep_firing_for, rule.on_no_data, rule.severity)
