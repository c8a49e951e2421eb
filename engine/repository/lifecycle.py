"""A rule's tick as what must be written: the alert lifecycle, decided once for every repository.

    transition                   alert (its moves: ``monitors_mcp.store.lifecycle``)   event
    inactive/pending → firing    open one, values at start                              fired
    firing → firing              change its severity                                    escalated / de-escalated
    firing → inactive            resolve it, values at resolution                       resolved
    inactive ↔ pending           none: the series state only

:func:`plan_tick` takes a rule's step results (each :class:`SeriesUpdate`:
transitions, notifications, the new state) and what is stored of its series
(each :class:`StoredSeries`: its row, labels and the alert its row points to)
and returns a :class:`TickPlan`: the alerts opened and changed, their events,
one series write per update, the notifications and the outbox rows (one per
notification and channel), in the order they happened. The plan is plain data
and its making reads and writes nothing; each repository only persists it —
``MemoryRepository`` into its lists, ``SqlRepository`` one rule per
transaction through the ORM or many rules at once in bulk — so the lifecycle
is written here once.

What the plan decides:

- the alert labels of a series: its group tags (those the query brought,
  else those stored), then the rule's ``labels`` clause;
- a series row points at its alert while that alert fires, else at none;
- a change to an alert the series does not have (its state was written
  without one) is skipped;
- who hears of a notification and what holds it, per channel (``notices``:
  routing by severity, silences, mute windows, ``depends on``, pairing, late
  firing notices and ``escalate to``); each outbox row carries its status
  (``pending``, or ``silenced`` / ``muted`` / ``suppressed`` with its
  ``held_reason``; ``suppressed`` also for a ``repeat`` of an acknowledged
  alert); a notification belongs to the series' alert after the tick (for
  ``resolved``, the one just resolved);
- the series state written: the state machine's, with the notifier's record
  (``SeriesState.notices``) brought up to date (``SeriesWrite.state``); a
  series looked at only for that record whose record did not change is not
  written (``SeriesWrite.unchanged``).

The moves of an alert themselves (which columns, which event) are the store
layer's, in ``monitors_mcp.store.lifecycle``: the MCP service closes alerts
through them too, and it may not import the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

from monitors_mcp.store.lifecycle import FIRING as ALERT_FIRING
from monitors_mcp.store.lifecycle import AlertWrite, EventWrite, StoredAlert

from ..rules import EngineRule
from ..state import FIRING, INACTIVE, SEVERITY_RANK, Notification, SeriesState, Transition
from .base import SeriesUpdate, notification_payload
from .notices import Holds, needs_notifier, plan_notices, rule_channels

__all__ = [
    "AlertChange",
    "StoredSeries",
    "SeriesWrite",
    "NotificationWrite",
    "OutboxWrite",
    "TickPlan",
    "alert_changes",
    "alert_labels",
    "group_labels",
    "outbox_status",
    "plan_tick",
    "touches_alerts",
]


@dataclass(frozen=True)
class AlertChange:
    """``open``, ``severity`` or ``close``, with the event kind and the transition behind it."""

    action: str
    event: str
    transition: Transition


def alert_changes(transitions: Sequence[Transition], current_severity: str | None = None) -> list[AlertChange]:
    """The alert changes of a series' transitions (see the module docstring)."""
    out = []
    severity = current_severity
    for t in transitions:
        if t.to_state == FIRING and t.from_state != FIRING:
            out.append(AlertChange("open", "fired", t))
        elif t.from_state == FIRING and t.to_state == FIRING:
            up = severity is None or SEVERITY_RANK.get(t.severity, 0) > SEVERITY_RANK.get(severity, 0)
            out.append(AlertChange("severity", "escalated" if up else "de-escalated", t))
        elif t.from_state == FIRING and t.to_state == INACTIVE:
            out.append(AlertChange("close", "resolved", t))
        else:
            continue
        severity = t.severity
    return out


def touches_alerts(updates: Sequence[SeriesUpdate]) -> bool:
    """Whether a rule's tick writes more than series states: a notification, an alert opened, changed or
    closed."""
    return any(u.step.notifications or alert_changes(u.step.transitions) for u in updates)


def alert_labels(rule: EngineRule, group_labels: Mapping[str, str]) -> dict[str, str]:
    """An alert's labels: the series' group tags, then the rule's ``labels`` clause."""
    labels = dict(group_labels)
    labels.update(rule.labels)
    return labels


def outbox_status(notification: Notification, *, silenced: bool, acknowledged: bool) -> str:
    """``silenced`` when the rule is silenced, ``suppressed`` for a repeat of an acknowledged alert, else
    ``pending``."""
    if silenced:
        return "silenced"
    if acknowledged and notification.kind == "repeat":
        return "suppressed"
    return "pending"


class StoredSeries(NamedTuple):
    """What is stored of a series: ``row`` the repository's handle on its state row (opaque here), ``labels``
    its stored group tags (``None`` when not read: the update brings them), ``alert`` the alert its row
    points to."""

    row: object
    labels: Mapping[str, str] | None
    alert: StoredAlert | None


class SeriesWrite:
    """The series state row to write for one update. ``stored`` is ``None`` for a series not stored yet;
    ``alert`` is the alert its row points to now (a firing one, or ``None``): the :class:`StoredAlert` read
    when the tick did not move it, else the :class:`AlertWrite`. ``values_only``: the row is stored and only a
    firing series' values changed (no alert moved, nothing sent), so a repository may write those columns
    alone. ``labels`` (its group tags: those the update brings, else those stored) and ``alert_labels`` are
    worked out when first read: a repository writing only values never pays for them."""

    __slots__ = ("update", "stored", "alert", "values_only", "state", "_rule", "_labels", "_alert_labels")

    def __init__(self, update: SeriesUpdate, stored: StoredSeries | None, alert: AlertWrite | StoredAlert | None,
                 values_only: bool, rule: EngineRule, labels: dict | None = None,
                 alert_labels: dict | None = None, state: SeriesState | None = None) -> None:
        self.update = update
        self.stored = stored
        self.alert = alert
        self.values_only = values_only
        #: the state to write: the state machine's, with the notifier's record up to date
        self.state = state if state is not None else update.step.state
        self._rule = rule
        self._labels = labels
        self._alert_labels = alert_labels

    @property
    def unchanged(self) -> bool:
        """A stored series looked at only for its notifier record, which did not change: nothing to write."""
        return self.stored is not None and self.state is self.update.previous

    @property
    def labels(self) -> dict:
        if self._labels is None:
            self._labels = group_labels(self.update, self.stored)
        return self._labels

    @property
    def alert_labels(self) -> dict:
        if self._alert_labels is None:
            self._alert_labels = alert_labels(self._rule, self.labels)
        return self._alert_labels

    def __repr__(self) -> str:
        return (f"SeriesWrite({self.update.series_key!r}, stored={self.stored is not None}, alert={self.alert!r}, "
                f"values_only={self.values_only})")


def group_labels(update: SeriesUpdate, stored: StoredSeries | None) -> dict:
    """A series' group tags: those the update brings, else those stored (none for a series without either)."""
    if update.labels is not None:
        return dict(update.labels)
    return dict(stored.labels) if stored is not None and stored.labels else {}


class NotificationWrite(NamedTuple):
    """A notification of the tick, with its alert's labels, its outbox status and its alert (if any: read or
    moved, as :attr:`SeriesWrite.alert`)."""

    notification: Notification
    labels: dict
    status: str
    alert: AlertWrite | StoredAlert | None


class OutboxWrite(NamedTuple):
    """An outbox row: a notification to one of the rule's channels (by name), with its payload, its status
    (``pending``, or a hold) and, when held, why (``held_reason``)."""

    notice: NotificationWrite
    channel: str
    payload: dict
    status: str = "pending"
    held_reason: str | None = None

    @property
    def notification(self) -> Notification:
        return self.notice.notification


@dataclass
class TickPlan:
    """All a rule's tick writes, in order. ``opened`` are the alerts opened (their ``opened`` rows lack the
    rule's and owner's ids, which each store names its own way), ``changed`` the stored alerts moved (their
    ``changes``, each alert once)."""

    rule: EngineRule
    series: list[SeriesWrite]
    opened: list[AlertWrite]
    changed: list[AlertWrite]
    events: list[EventWrite]
    notifications: list[NotificationWrite]
    outbox: list[OutboxWrite]


def plan_tick(rule: EngineRule, updates: Sequence[SeriesUpdate], stored: Mapping[str, StoredSeries], *,
              silenced: bool, holds: Holds | None = None) -> TickPlan:
    """What a rule's tick writes, from its series' updates and what is stored of them (by series key; a
    series absent from ``stored`` is not stored yet). ``holds`` says what holds its notices (by default only
    ``silenced``: no channel mute windows, no dependency known)."""
    plan = TickPlan(rule, [], [], [], [], [], [])
    series, opened, changed, events, notices, outbox = (plan.series, plan.opened, plan.changed, plan.events,
                                                        plan.notifications, plan.outbox)
    channels = rule_channels(rule)
    get = stored.get
    for u in updates:
        known = get(u.series_key)
        alert = known.alert if known is not None else None  # a StoredAlert until the tick moves it
        step = u.step
        labels = tagged = None
        if step.transitions:
            values = u.evaluation.values
            for change in alert_changes(step.transitions, alert.severity if alert is not None else None):
                t = change.transition
                if change.action == "open":
                    if tagged is None:
                        labels = group_labels(u, known)
                        tagged = alert_labels(rule, labels)
                    alert, event = AlertWrite.open(u.series_key, tagged, t.severity, t.at, values, t.from_state)
                    opened.append(alert)
                elif alert is None:
                    continue
                else:
                    if alert.__class__ is StoredAlert:
                        alert = AlertWrite.stored(alert)
                        changed.append(alert)
                    if change.action == "severity":
                        event = alert.set_severity(t.severity, t.at, change.event, values)
                    else:
                        event = alert.resolve(t.at, t.severity, values)
                events.append(event)
        holder = alert if alert is not None and alert.state == ALERT_FIRING else None
        state = step.state
        if channels and needs_notifier(rule, state, bool(step.notifications)):
            if tagged is None:
                labels = group_labels(u, known)
                tagged = alert_labels(rule, labels)
            at = u.evaluation.at
            if holds is None:
                holds = Holds(rule, at, silenced=silenced)
            acknowledged = alert is not None and alert.acknowledged
            notification = step.notifications[0] if step.notifications else None
            state, deliveries = plan_notices(rule, u.series_key, u.previous, state, notification, at, tagged, holds,
                                             acknowledged)
            written: dict[int, NotificationWrite] = {}
            for d in deliveries:
                notice = written.get(id(d.notification))
                if notice is None:
                    notice = written[id(d.notification)] = NotificationWrite(d.notification, tagged, d.status, alert)
                    notices.append(notice)
                elif notice.status != "pending" and d.status == "pending":
                    notices[notices.index(notice)] = notice = written[id(d.notification)] = notice._replace(
                        status="pending")
                outbox.append(OutboxWrite(notice, d.channel, notification_payload(rule, d.notification, tagged,
                                                                                  d.channel), d.status, d.held_reason))
        elif step.notifications:  # a rule that notifies no channel: its notifications are recorded only
            if tagged is None:
                labels = group_labels(u, known)
                tagged = alert_labels(rule, labels)
            acknowledged = alert is not None and alert.acknowledged
            for n in step.notifications:
                notices.append(NotificationWrite(n, tagged, outbox_status(n, silenced=silenced,
                                                                          acknowledged=acknowledged), alert))
        series.append(SeriesWrite(u, known, holder, known is not None and step.values_only and state is step.state,
                                  rule, labels, tagged, state))
    return plan
