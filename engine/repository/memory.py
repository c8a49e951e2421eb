"""An in-memory repository: the same records as the store, in Python lists (backtests and tests).

Besides states, alerts and events it keeps every notification the state
machine produced, in order, with its labels and outbox status, so that a
backtest can print "what would have been sent" (render them with
``engine.notify.dispatch.render_payload``). Silences are ``(starts_at, ends_at)``
spans per rule id; :meth:`acknowledge` marks an alert acknowledged; a channel's
``mute_during`` window is set with :meth:`set_channel`. A rule's ``depends on``
sees the firing alerts of the rule of that name (and owner) recorded before it.
Each outbox row (``outbox``, by key) says its channel, kind, status, the reason
it is held (``held_reason``), and whether it is a ``late`` or ``escalated``
firing notice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from ..rules import EngineRule
from ..state import Notification, SeriesState, Transition
from monitors_mcp.store.lifecycle import StoredAlert

from .base import Repository, SeriesUpdate, notification_payload
from .lifecycle import StoredSeries, plan_tick
from .notices import Holds, dependency_holder, parse_channel_window

__all__ = ["MemoryRepository", "MemoryAlert", "RecordedNotification", "RecordedTransition"]


@dataclass
class MemoryAlert:
    id: int
    rule_id: str
    series_key: str
    labels: dict
    severity: str
    started_at: datetime
    values_at_start: dict
    state: str = "firing"
    resolved_at: datetime | None = None
    values_at_resolution: dict | None = None
    acknowledged: bool = False
    events: list[tuple[str, datetime, str | None]] = field(default_factory=list)  # (kind, at, severity)


@dataclass(frozen=True)
class RecordedNotification:
    """One notification of the state machine, with what it is about and whether it would go out."""

    rule_id: str
    labels: dict
    notification: Notification
    status: str
    channels: tuple[str, ...]
    payload: dict
    #: per channel it went to or was held on: ``(channel, status, held reason)``
    deliveries: tuple[tuple[str, str, str | None], ...] = ()


@dataclass(frozen=True)
class RecordedTransition:
    rule_id: str
    series_key: str
    labels: dict
    transition: Transition


class MemoryRepository(Repository):
    """Everything in memory; thread-safe enough for one runner."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, SeriesState]] = {}
        self.labels: dict[tuple[str, str], dict] = {}
        self.alerts: list[MemoryAlert] = []
        self.open_alerts: dict[tuple[str, str], MemoryAlert] = {}
        self.transitions: list[RecordedTransition] = []
        self.notifications: list[RecordedNotification] = []
        self.outbox: dict[str, dict] = {}  # idempotency key → row
        self.silences: dict[str, list[tuple[datetime, datetime]]] = {}
        self.errors: dict[str, tuple[datetime, str]] = {}
        self.channel_windows: dict[str, object] = {}  # channel name → its mute_during window
        self._rule_ids: dict[tuple, str] = {}  # (owner id, rule name) → rule id, of the rules recorded
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------

    def load_states(self, rules: Sequence[EngineRule]) -> dict[str, dict[str, SeriesState]]:
        return {r.id: dict(self.states[r.id]) for r in rules if r.id in self.states}

    def silenced(self, rules: Sequence[EngineRule], at: datetime) -> set[str]:
        return {r.id for r in rules if any(start <= at < end for start, end in self.silences.get(r.id, ()))}

    # -- writing -----------------------------------------------------------------------

    def silence(self, rule_id: str, starts_at: datetime, ends_at: datetime) -> None:
        self.silences.setdefault(str(rule_id), []).append((starts_at, ends_at))

    def acknowledge(self, alert_id: int) -> None:
        self.alerts[alert_id - 1].acknowledged = True

    def set_channel(self, name: str, *, mute_during=None) -> None:
        """A channel's policy: ``mute_during`` a ``monitors_dsl.TimeWindow``, its text, or ``None``."""
        window = parse_channel_window(mute_during) if isinstance(mute_during, str) else mute_during
        if window is None:
            self.channel_windows.pop(name, None)
        else:
            self.channel_windows[name] = window

    def series_labels(self, rule: EngineRule, keys: Sequence[str]) -> dict[str, dict]:
        return {key: dict(self.labels[(rule.id, key)]) for key in keys if (rule.id, key) in self.labels}

    def firing_labels(self, owner_id: int | None, names: Sequence[str]) -> dict[str, dict[str, dict]]:
        ids = {self._rule_ids[(owner_id, name)]: name for name in names if (owner_id, name) in self._rule_ids}
        out: dict[str, dict[str, dict]] = {}
        for (rule_id, key), alert in self.open_alerts.items():
            if rule_id in ids:
                out.setdefault(ids[rule_id], {})[key] = dict(alert.labels)
        return out

    def record(self, rule: EngineRule, at: datetime, updates: Sequence[SeriesUpdate], *, silenced: bool,
               firing=None) -> int:
        added = 0
        with self._lock:
            self.errors.pop(rule.id, None)
            stored = {}
            for update in updates:
                key = (rule.id, update.series_key)
                alert = self.open_alerts.get(key)
                if alert is not None or key in self.labels:
                    stored[update.series_key] = StoredSeries(None, self.labels.get(key), alert and StoredAlert(
                        alert.id, alert.severity, alert.state, alert.acknowledged))
            if rule.name:
                self._rule_ids[(rule.owner_id, rule.name)] = rule.id
            holds = None
            if updates:
                holds = Holds(rule, updates[0].evaluation.at, silenced=silenced, channel_windows=self.channel_windows,
                              dependency=dependency_holder(rule, firing, self.firing_labels))
            plan = plan_tick(rule, updates, stored, silenced=silenced, holds=holds)
            for opened in plan.opened:
                opened.id = len(self.alerts) + 1
                self.alerts.append(MemoryAlert(id=opened.id, rule_id=rule.id, **opened.opened))
            for changed in plan.changed:
                alert = self.alerts[changed.id - 1]
                for name, value in changed.changes.items():
                    setattr(alert, name, value)
            for event in plan.events:
                self.alerts[event.alert.id - 1].events.append((event.kind, event.at, event.severity))
            states = self.states.setdefault(rule.id, {})
            for write in plan.series:
                update = write.update
                key = (rule.id, update.series_key)
                if update.labels is not None:
                    self.labels[key] = write.labels
                states[update.series_key] = write.state
                for t in update.step.transitions:
                    self.transitions.append(RecordedTransition(rule.id, update.series_key, write.alert_labels, t))
                if write.alert is not None:
                    self.open_alerts[key] = self.alerts[write.alert.id - 1]
                else:
                    self.open_alerts.pop(key, None)
            deliveries: dict[int, list] = {}
            for row in plan.outbox:
                deliveries.setdefault(id(row.notification), []).append((row.channel, row.status, row.held_reason))
            for notice in plan.notifications:
                n = notice.notification
                mine = tuple(deliveries.get(id(n), ()))
                self.notifications.append(RecordedNotification(rule.id, notice.labels, n, notice.status,
                                                               tuple(d[0] for d in mine),
                                                               notification_payload(rule, n, notice.labels), mine))
            for row in plan.outbox:
                n = row.notification
                okey = f"{n.idempotency_key}:{row.channel}"
                if okey in self.outbox:
                    continue
                alert = row.notice.alert
                self.outbox[okey] = {"key": okey, "rule_id": rule.id, "channel": row.channel, "kind": n.kind,
                                     "status": row.status, "held_reason": row.held_reason, "late": n.late,
                                     "escalated": n.escalated, "at": n.at, "series_key": n.series_key,
                                     "severity": n.severity, "alert_id": alert.id if alert is not None else None,
                                     "payload": row.payload}
                added += 1
        return added

    def errored(self) -> set[str]:
        return set(self.errors)

    def record_error(self, rule: EngineRule, at: datetime, error: str) -> None:
        with self._lock:
            self.errors[rule.id] = (at, error)
