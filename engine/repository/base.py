"""The repository interface, the series update it records, and the outbox payload.

What a rule's tick writes (alerts, events, states, outbox rows) is decided
once, in :mod:`engine.repository.lifecycle`; a repository only persists it.

An outbox payload holds everything the dispatcher needs to render the
notification later, whatever happens to the rule meanwhile: the notification
(``Notification.to_dict()``), the rule's name, condition, description and
templates, and the alert's labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from ..rules import EngineRule
from ..state import Evaluation, Notification, SeriesState, Step
from ..state.model import parse_time

__all__ = [
    "OUTBOX_STATUSES",
    "SeriesUpdate",
    "Repository",
    "notification_payload",
    "notification_from_dict",
]

#: pending → sending → sent | pending (retry) | failed; the holds (silenced, muted, suppressed) are never sent
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "silenced", "muted", "suppressed")


@dataclass(frozen=True)
class SeriesUpdate:
    """One series' step in a tick. ``labels`` is ``None`` for a known series the query no longer returned."""

    series_key: str
    labels: Mapping[str, str] | None
    step: Step
    evaluation: Evaluation
    previous: SeriesState | None = None


def notification_payload(rule: EngineRule, notification: Notification, labels: Mapping[str, str],
                         channel: str | None = None) -> dict:
    """What an outbox row keeps to render and send the notification later."""
    return {
        "notification": notification.to_dict(),
        "rule": {
            "id": rule.id,
            "name": rule.name,
            "condition": rule.condition,
            "description": rule.description,
            "title": rule.title,
            "message": rule.message,
        },
        "labels": dict(labels),
        "channel": channel,
    }


def notification_from_dict(data: Mapping) -> Notification:
    """The inverse of ``Notification.to_dict()``."""
    return Notification(
        kind=data["kind"],
        at=parse_time(data["at"]),
        rule_id=data["rule_id"],
        series_key=data["series_key"],
        severity=data.get("severity"),
        started_at=parse_time(data.get("started_at")),
        values=dict(data.get("values") or {}),
        value=data.get("value"),
        idempotency_key=data["idempotency_key"],
        direction=data.get("direction"),
        previous_severity=data.get("previous_severity"),
        late=bool(data.get("late", False)),
        escalated=bool(data.get("escalated", False)),
    )


class Repository(ABC):
    """Where the runner reads series states and writes what each tick decided."""

    @abstractmethod
    def load_states(self, rules: Sequence[EngineRule]) -> dict[str, dict[str, SeriesState]]:
        """``{rule id: {series key: state}}`` for the given rules (series never stored are absent)."""

    @abstractmethod
    def silenced(self, rules: Sequence[EngineRule], at: datetime) -> set[str]:
        """Ids of the rules with a silence active at ``at``."""

    @abstractmethod
    def record(self, rule: EngineRule, at: datetime, updates: Sequence[SeriesUpdate], *, silenced: bool,
               firing=None) -> int:
        """Write one rule's tick in one transaction; returns how many outbox rows were added. ``firing`` (an
        ``engine.depends.FiringIndex``) says which series of the rules others depend on fire at the tick; without
        it a ``depends on`` reads what is stored (:meth:`firing_labels`)."""

    def firing_labels(self, owner_id: int | None, names: Sequence[str]) -> dict[str, dict[str, dict]]:
        """Rule name → series key → alert labels of the firing alerts of the owner's rules named ``names`` (a
        rule that does not exist, or has none firing, is absent)."""
        return {}

    def series_labels(self, rule: EngineRule, keys: Sequence[str]) -> dict[str, dict]:
        """Series key → stored group tags of those of ``keys`` the rule has stored (for a series the query no
        longer returns, whose update brings no labels)."""
        return {}

    def record_many(self, at: datetime, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]], *,
                    firing=None) -> dict[str, int | Exception]:
        """Write the ticks of several rules (``(rule, updates, silenced)`` each): per rule id, the outbox rows
        added or the error that stopped its write. Each rule is all or nothing; by default one ``record`` each.
        ``firing``: as for :meth:`record`."""
        out: dict[str, int | Exception] = {}
        for rule, updates, silenced in entries:
            try:
                out[rule.id] = self.record(rule, at, updates, silenced=silenced, firing=firing)
            except Exception as error:  # one rule's failure must not stop the others
                out[rule.id] = error
        return out

    @abstractmethod
    def record_error(self, rule: EngineRule, at: datetime, error: str) -> None:
        """The rule could not be evaluated at ``at``: keep its state, remember why."""

    def clear_error(self, rule: EngineRule) -> None:
        """The rule evaluated fine: forget an earlier error (no-op unless one was recorded)."""

    def errored(self) -> set[str] | None:
        """Ids of the rules with an error recorded (``clear_error`` must see them once they evaluate fine);
        ``None`` when not known, and then every rule is stepped at every tick."""
        return None

    def forget(self, rule_ids) -> None:
        """Read the states of ``rule_ids`` from the store again at their next use (a repository that keeps
        states between ticks; the rules may have been evaluated by another replica meanwhile)."""

    def close(self) -> None:
        """Release resources."""
