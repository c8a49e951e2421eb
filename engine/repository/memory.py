"""An in-memory repository: the same records as the store, in Python lists (backtests and tests).

Besides states, alerts and events it keeps every notification the state
machine produced, in order, with its labels and outbox status, so that a
backtest can print "what would have been sent" (render them with
``engine.notify.dispatch.render_payload``). Silences are ``(starts_at, ends_at)``
spans per rule id; :meth:`acknowledge` marks an alert acknowledged.
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

    def record(self, rule: EngineRule, at: datetime, updates: Sequence[SeriesUpdate], *, silenced: bool) -> int:
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
            plan = plan_tick(rule, updates, stored, silenced=silenced)
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
                states[update.series_key] = update.step.state
                for t in update.step.transitions:
                    self.transitions.append(RecordedTransition(rule.id, update.series_key, write.alert_labels, t))
                if write.alert is not None:
                    self.open_alerts[key] = self.alerts[write.alert.id - 1]
                else:
                    self.open_alerts.pop(key, None)
            for notice in plan.notifications:
                n = notice.notification
                self.notifications.append(RecordedNotification(rule.id, notice.labels, n, notice.status, rule.channels,
                                                               notification_payload(rule, n, notice.labels)))
            for row in plan.outbox:
                okey = f"{row.notice.notification.idempotency_key}:{row.channel}"
                if okey in self.outbox:
                    continue
                self.outbox[okey] = {"key": okey, "rule_id": rule.id, "channel": row.channel,
                                     "kind": row.notice.notification.kind, "status": row.notice.status,
                                     "payload": row.payload}
                added += 1
        return added

    def errored(self) -> set[str]:
        return set(self.errors)

    def record_error(self, rule: EngineRule, at: datetime, error: str) -> None:
        with self._lock:
            self.errors[rule.id] = (at, error)
