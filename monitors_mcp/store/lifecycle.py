"""An alert's life as rows: each move of an alert, the columns it changes and the event it records.

    move          alert columns                                              event
    open          state firing, severity, started_at, values_at_start        fired
    severity      severity                                                   escalated / de-escalated
    resolve       state resolved, resolved_at, values_at_resolution          resolved
    close         state resolved, resolved_at (nothing is sent)              closed, values {"reason": …}
    acknowledge   acknowledged_by, acknowledged_at (once)                    acknowledged

Acknowledging an alert stops its ``repeat`` notices (recorded ``suppressed``)
and cancels its ``escalate to`` if that is not due yet: the engine reads the
acknowledgement when the escalation comes due, and then sends nothing.

An alert is ``firing`` from its opening to its resolution, then ``resolved``
for good; a series firing again opens a new alert. Two writers move alerts and
both do it only through this module: the engine, whose plan of a rule's tick
(``engine.repository.lifecycle``) maps the state machine's transitions to
these moves, and the MCP service, which closes a rule's firing alerts when the
rule is changed, disabled or deleted (:func:`close_alerts`). The module lives
in the store layer because that is the one place both may import: the engine
imports ``monitors_mcp.store``, and ``monitors_mcp`` never imports the engine.

Nothing here reads or writes the store. An alert is an :class:`AlertWrite`:
read from the store (:meth:`AlertWrite.stored`, from a :class:`StoredAlert`),
or opened (:meth:`AlertWrite.open`, its ``id`` set by whoever inserts it);
each move returns the :class:`EventWrite` to insert, and leaves the columns to
write on the alert (``opened`` for a new one, ``changes`` for a stored one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping, NamedTuple

__all__ = [
    "FIRING",
    "RESOLVED",
    "ALERT_STATES",
    "EVENT_KINDS",
    "StoredAlert",
    "AlertWrite",
    "EventWrite",
    "close_alerts",
    "acknowledge_alert",
]

FIRING = "firing"
RESOLVED = "resolved"
ALERT_STATES = (FIRING, RESOLVED)
INACTIVE = "inactive"  # the series' state once its alert ended (the state machine's name for it)

#: the events an alert's moves record (``acknowledged`` is the service's, when a user acknowledges it)
EVENT_KINDS = ("fired", "escalated", "de-escalated", "resolved", "closed")


class StoredAlert(NamedTuple):
    """What a writer reads of a stored alert to move it."""

    id: int
    severity: str
    state: str
    acknowledged: bool


class EventWrite(NamedTuple):
    """An ``alert_events`` row to insert, of ``alert`` (whose id may be known only once it is inserted)."""

    alert: AlertWrite
    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    severity: str | None
    values: dict

    def row(self) -> dict:
        """The row's columns (the alert's id included)."""
        return {"alert_id": self.alert.id, "at": self.at, "kind": self.kind, "from_state": self.from_state,
                "to_state": self.to_state, "severity": self.severity, "values": self.values}


class AlertWrite:
    """One alert as a writer moves it: ``opened`` holds the row of an alert opened here (``id`` is ``None``
    until the writer inserts it and sets it), ``changes`` the columns to update of a stored one."""

    __slots__ = ("id", "severity", "state", "acknowledged", "opened", "changes")

    def __init__(self, id_: int | None, severity: str, state: str, acknowledged: bool,
                 opened: dict | None = None) -> None:
        self.id = id_
        self.severity = severity
        self.state = state
        self.acknowledged = acknowledged
        self.opened = opened
        self.changes: dict = {}

    def __repr__(self) -> str:
        return (f"AlertWrite(id={self.id!r}, severity={self.severity!r}, state={self.state!r}, "
                f"opened={self.opened is not None}, changes={self.changes!r})")

    @classmethod
    def stored(cls, alert: StoredAlert) -> AlertWrite:
        return cls(alert.id, alert.severity, alert.state, alert.acknowledged)

    @classmethod
    def open(cls, series_key: str, labels: dict, severity: str, at: datetime, values: Mapping,
             from_state: str | None) -> tuple[AlertWrite, EventWrite]:
        """A new firing alert of a series (its columns but the rule's and owner's), and its ``fired`` event."""
        alert = cls(None, severity, FIRING, False, {
            "series_key": series_key, "labels": labels, "severity": severity, "state": FIRING, "started_at": at,
            "resolved_at": None, "values_at_start": dict(values), "values_at_resolution": None})
        return alert, EventWrite(alert, at, "fired", from_state, FIRING, severity, dict(values))

    @property
    def firing(self) -> bool:
        return self.state == FIRING

    def set_severity(self, severity: str, at: datetime, kind: str, values: Mapping) -> EventWrite:
        """Its severity changed while firing: ``kind`` is ``escalated`` or ``de-escalated``."""
        self._set(severity=severity)
        return EventWrite(self, at, kind, FIRING, FIRING, severity, dict(values))

    def resolve(self, at: datetime, severity: str | None, values: Mapping) -> EventWrite:
        """Its series stopped firing (``severity``: the one it had)."""
        self._set(state=RESOLVED, resolved_at=at, values_at_resolution=dict(values))
        return EventWrite(self, at, "resolved", FIRING, INACTIVE, severity, dict(values))

    def close(self, at: datetime, reason: str) -> EventWrite:
        """Ended without its series resolving (nothing is sent): its rule changed, was disabled or deleted."""
        self._set(state=RESOLVED, resolved_at=at)
        return EventWrite(self, at, "closed", FIRING, INACTIVE, self.severity, {"reason": reason})

    def _set(self, **columns) -> None:
        if "severity" in columns:
            self.severity = columns["severity"]
        if "state" in columns:
            self.state = columns["state"]
        if self.opened is not None:
            self.opened.update(columns)
        else:
            self.changes.update(columns)


def acknowledge_alert(alert, user_id: int, at: datetime) -> EventWrite | None:
    """``alert`` (a store row with ``acknowledged_by``/``acknowledged_at``) acknowledged by ``user_id`` at
    ``at``: its columns set and the ``acknowledged`` event to insert; ``None`` when it already was (the first
    acknowledgement stands)."""
    if alert.acknowledged_at is not None:
        return None
    alert.acknowledged_by = user_id
    alert.acknowledged_at = at
    write = AlertWrite(alert.id, alert.severity, alert.state, True)
    return EventWrite(write, at, "acknowledged", None, alert.state, None, None)


def close_alerts(alerts: Iterable[StoredAlert], at: datetime, reason: str) -> list[EventWrite]:
    """Close the firing ones of ``alerts`` at ``at``: the ``closed`` event of each (its alert's ``changes``
    are the columns to update). A rule closing its alerts also drops its series states, so that it starts
    afresh: that is the caller's to write."""
    return [AlertWrite.stored(alert).close(at, reason) for alert in alerts if alert.state == FIRING]
