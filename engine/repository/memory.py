"""An in-memory repository: the same records as the store, in Python lists (backtests and tests).

Besides states, alerts and events it keeps every notification the state
machine produced, in order, with its labels and outbox status, so that a
backtest can print "what would have been sent" (render them with
``engine.dispatch.render_payload``). Silences are ``(starts_at, ends_at)``
spans per rule id; :meth:`acknowledge` marks an alert acknowledged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from ..rules import EngineRule
from ..state import Notification, SeriesState, Transition
from .base import Repository, SeriesUpdate, alert_changes, alert_labels, notification_payload, outbox_status

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
            states = self.states.setdefault(rule.id, {})
            for update in updates:
                key = (rule.id, update.series_key)
                if update.labels is not None:
                    self.labels[key] = dict(update.labels)
                group = self.labels.get(key, {})
                labels = alert_labels(rule, group)
                states[update.series_key] = update.step.state
                for t in update.step.transitions:
                    self.transitions.append(RecordedTransition(rule.id, update.series_key, labels, t))
                alert = self.open_alerts.get(key)
                for change in alert_changes(update.step.transitions, alert.severity if alert else None):
                    t = change.transition
                    if change.action == "open":
                        alert = MemoryAlert(len(self.alerts) + 1, rule.id, update.series_key, labels, t.severity,
                                            t.at, dict(update.evaluation.values))
                        self.alerts.append(alert)
                        self.open_alerts[key] = alert
                    elif alert is None:
                        continue
                    elif change.action == "severity":
                        alert.severity = t.severity
                    else:
                        alert.state, alert.resolved_at = "resolved", t.at
                        alert.values_at_resolution = dict(update.evaluation.values)
                        self.open_alerts.pop(key, None)
                    if alert is not None:
                        alert.events.append((change.event, t.at, t.severity))
                current = self.open_alerts.get(key) or alert
                for n in update.step.notifications:
                    status = outbox_status(n, silenced=silenced, acknowledged=bool(current and current.acknowledged))
                    payload = notification_payload(rule, n, labels)
                    self.notifications.append(RecordedNotification(rule.id, labels, n, status, rule.channels, payload))
                    for channel in rule.channels:
                        okey = f"{n.idempotency_key}:{channel}"
                        if okey in self.outbox:
                            continue
                        self.outbox[okey] = {"key": okey, "rule_id": rule.id, "channel": channel, "kind": n.kind,
                                             "status": status, "payload": notification_payload(rule, n, labels,
                                                                                               channel)}
                        added += 1
        return added

    def errored(self) -> set[str]:
        return set(self.errors)

    def record_error(self, rule: EngineRule, at: datetime, error: str) -> None:
        with self._lock:
            self.errors[rule.id] = (at, error)
