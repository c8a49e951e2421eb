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
  the rule service does); other changes keep them;
- ``active during WINDOW``: at an instant the window does not contain, no firing condition holds — known
  false whatever the data (``on no data`` does not apply); the resolve criterion is ``resolve when``'s
  value, met without data only under ``on no data ok`` (``docs/engine.md``);
- who hears of it (section 10), per channel, once every due rule of the tick is stepped: a channel covers a
  severity when a ``notify`` clause names it without ``on`` or with it; a new alert's firing notice goes
  to the channels covering its severity; a severity change goes to every channel told of the alert, and a
  firing notice (at the new severity) to each channel newly covered; a repeat to the told channels still
  covering the severity; a resolution to exactly the told ones. Holds, first that applies: the rule's
  ``mute during`` (``muted``), the channel's mute window (``muted by channel C``), a firing series of the
  rule named in ``depends on`` with the same values of the listed tags (``suppressed by rule R``). A held
  notice is recorded, never sent; its firing notice goes, late, at the first evaluation where nothing holds
  it and the alert still fires at a severity the channel covers (a channel no longer covering it forgets
  it); a resolution of an alert whose firing was held on a channel is recorded with that hold.
  ``escalate to CHANNELS after D``: at the first evaluation at least D after the alert started firing, each
  of those channels not told yet gets a firing notice (``escalated``), holds applying; from then on they
  hear of every severity of the alert — unless the alert was acknowledged by then (the escalation is
  cancelled). A ``repeat`` of an acknowledged alert is recorded ``suppressed`` (``acknowledged``), not
  sent. While a series flaps, none of this happens (flap detection holds
  every notification; the one that brings receivers up to date when it stops is routed as above).

Times are aware UTC datetimes; points are ``{measurement: [{"time": ns, tag: str, field: number}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.evaluate import series_key
from engine.state import (FIRING, INACTIVE, SEVERITY_RANK, Clauses, Evaluation, FlapDetection, Notification,
                          SeriesState, step)
from engine.state.machine import replace
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
    acknowledged: bool = False


class PlainEngine:
    """Steps every known series of every due rule; records transitions, notifications and alerts."""

    def __init__(self, values_every: float, flap: FlapDetection | None = None,
                 channel_windows: dict | None = None) -> None:
        self.values_every = values_every
        self.flap = flap
        self.channel_windows = dict(channel_windows or {})  # channel name → its mute window
        self.rules: dict[str, PlainRule] = {}
        self.states: dict[str, dict[str, SeriesState]] = {}
        self.transitions: list[tuple] = []  # (rule id, series key, at, from, to, severity)
        self.notifications: list[dict] = []  # Notification.to_dict()
        #: per channel: (rule id, series key, channel, status, held reason, Notification.to_dict())
        self.deliveries: list[tuple] = []
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

    def acknowledge(self, rule_id: str) -> None:
        """Every firing alert of the rule acknowledged (as ``acknowledge_alert`` would, between ticks)."""
        for (alerting, _), alert in self._open.items():
            if alerting == rule_id:
                alert.acknowledged = True

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
        looked = []
        for rule in self.rules.values():
            if rule.due(at):
                looked.extend(self._evaluate(rule, at, points))
        firing: dict[str, list[dict]] = {}  # rule name → group labels of its firing series, after the tick
        for rule in self.rules.values():
            if rule.rule.name is not None:
                firing[rule.rule.name] = [self._labels.get((rule.id, key), {})
                                          for key, state in self.states.get(rule.id, {}).items() if state.state == FIRING]
        for rule, key, previous, notification in looked:
            self._tell(rule, key, previous, notification, at, firing)

    def _evaluate(self, rule: PlainRule, at: datetime, points: dict) -> list[tuple]:
        """Steps the rule's known series; returns those the notifier looks at: ``(rule, key, previous state,
        the state machine's notification or None)``."""
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
        looked = []
        for key, (labels, evaluation) in found.items():
            previous = known.get(key, SeriesState())
            stepped = step(previous, evaluation, rule.clauses, rule_id=rule.id, series_key=key,
                           values_every=self.values_every)
            if stepped.notifications or previous.state == FIRING:
                looked.append((rule, key, previous, stepped.notifications[0] if stepped.notifications else None))
            if stepped.state is previous:
                continue
            known[key] = stepped.state
            if labels is not None:
                self._labels[(rule.id, key)] = labels
            for t in stepped.transitions:
                self.transitions.append((rule.id, key, t.at, t.from_state, t.to_state, t.severity))
                self._alert(rule, key, t, evaluation)
            self.notifications.extend(n.to_dict() for n in stepped.notifications)
        return looked

    # -- who hears of it (section 10) -------------------------------------------------------

    def _tell(self, rule: PlainRule, key: str, previous: SeriesState, notification, at: datetime,
              firing: dict[str, list[dict]]) -> None:
        """Per channel, what the series' evaluation at ``at`` sends or holds (see the module docstring);
        what each channel heard of the alert lives in the series state (``notices``, ``escalation``)."""
        r = rule.rule
        state = self.states[rule.id][key]
        escalate = r.escalate
        channels = list(r.notify) + [c for c in (escalate.channels if escalate else ()) if c not in r.notify]
        if not channels or state.flapping:
            return  # a flapping series tells nobody anything (flap detection holds it all)
        told = dict(state.notices or {})  # channel → "sent" or why its firing notice is held
        escalated = state.escalation
        if notification is not None and notification.kind == "firing":
            told, escalated = {}, None  # a new alert: nobody told yet
        fires = state.state == FIRING
        escalation_due = escalate is not None and fires and escalated is None \
            and (at - state.firing_since).total_seconds() >= escalate.after.seconds
        if notification is None and not escalation_due and all(v == "sent" for v in told.values()):
            return  # nothing to send, nothing held, no escalation due
        if escalation_due:
            escalated = "done"
        alert = self._open.get((rule.id, key))
        acknowledged = alert is not None and alert.acknowledged
        if escalated == "done" and escalation_due and acknowledged:
            escalated = "cancelled"  # acknowledged before it came due: nobody more is told
        group = self._labels.get((rule.id, key), {})

        def hold(channel: str) -> str | None:
            if r.mute_during is not None and r.mute_during.contains(at):
                return "muted"
            window = self.channel_windows.get(channel)
            if window is not None and window.contains(at):
                return f"muted by channel {channel}"
            dependency = r.depends_on
            if dependency is not None:
                for other in firing.get(dependency.rule, ()):
                    if all(tag in other and tag in group and other[tag] == group[tag] for tag in dependency.tags):
                        return f"suppressed by rule {dependency.rule}"
            return None

        def covers(channel: str) -> bool:
            return any(channel in route.channels and (not route.severities or state.severity in route.severities)
                       for route in r.routes)

        def firing_notice(base, late: bool, through_escalation: bool):
            if base is not None and base.kind == "firing" and not late and not through_escalation:
                return base
            values, value = (base.values, base.value) if base is not None else (state.last_values, state.last_value)
            return Notification(kind="firing", at=at, rule_id=str(rule.id), series_key=key, severity=state.severity,
                                started_at=state.firing_since, values=dict(values), value=value,
                                idempotency_key="", late=late, escalated=through_escalation)

        def deliver(channel: str, note, reason: str | None) -> None:
            status = "pending" if reason is None else reason.split(" ", 1)[0]
            self.deliveries.append((rule.id, key, channel, status, reason, note.to_dict()))

        resolved = notification is not None and notification.kind == "resolved"
        for channel in channels:
            record = told.get(channel)
            if resolved:
                if record is not None:  # pairing: exactly the told channels; a held firing stays held
                    deliver(channel, notification, None if record == "sent" else record)
                continue
            if not fires:
                continue
            routed = covers(channel)
            hears = routed or (escalated == "done" and escalate is not None and channel in escalate.channels)
            if record is None:
                if hears:
                    reason = hold(channel)
                    told[channel] = reason or "sent"
                    deliver(channel, firing_notice(notification, False, not routed), reason)
            elif record == "sent":
                if notification is not None and (notification.kind != "repeat" or hears):
                    reason = hold(channel)
                    if reason is None and notification.kind == "repeat" and acknowledged:
                        self.deliveries.append((rule.id, key, channel, "suppressed", "acknowledged",
                                                notification.to_dict()))
                    else:
                        deliver(channel, notification, reason)
            elif not hears:
                del told[channel]
            else:
                reason = hold(channel)
                if reason is not None:
                    told[channel] = reason
                    if notification is not None:
                        deliver(channel, notification, reason)
                else:
                    told[channel] = "sent"
                    deliver(channel, firing_notice(None, True, not routed), None)
        if resolved:
            told, escalated = None, None  # the alert is over: no record
        elif not fires:
            escalated = None
        if told != state.notices or escalated != state.escalation:
            self.states[rule.id][key] = replace(state, notices=told, escalation=escalated)

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
        values = {term.text: values[term.column] for term in rule.terms}
        window = rule.rule.active_during
        if window is not None and not window.contains(at):  # no firing condition holds, whatever the data
            if rule.rule.resolve_when is None or (d.result is None and rule.rule.on_no_data == "ok"):
                resolve = True
            else:
                resolve = d.resolve
            return Evaluation(at=at, severity=None, resolve=resolve, no_data=False, values=values, value=value)
        return Evaluation(at=at, severity=d.severity, resolve=d.resolve, no_data=d.result is None,
                          values=values, value=value)

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
    """Quietly inactive: not pending nor firing, no receiver told of an alert, not flapping (the times of its
    recent changes, flap detection's bookkeeping, do not count)."""
    return state.state == INACTIVE and state.notified_severity is None and not state.flapping


def _evaluation_of(rule: a.Rule) -> tuple:
    """What decides a rule's alerts (as the rule service compares it when a rule is changed)."""
    return (rule.when, rule.critical_when, rule.warning_when, rule.info_when, rule.resolve_when, rule.group_by,
            rule.for_, rule.keep_firing_for, rule.on_no_data, rule.severity)
