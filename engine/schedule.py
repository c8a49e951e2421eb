"""When rules are due: at whole multiples of their ``every``, in UTC epoch seconds.

A rule with ``every 1m`` is due at 12:00:00, 12:01:00 …; with ``every 90s``
at every multiple of 90 seconds since the epoch. With an evaluation delay
``d`` the evaluation at ``T`` runs at wall time ``T + d`` (late data has time
to arrive) and still sees the data as of ``T``. Evaluations missed while the
engine was down are not replayed: the next tick is the next due time after
now, and the state kept in the store carries on from there.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Iterable, Sequence

from .rules import EngineRule

__all__ = ["epoch_seconds", "from_epoch", "is_due", "due_rules", "next_due"]


def epoch_seconds(at: datetime) -> float:
    """Seconds since the epoch of an aware (or naive = UTC) datetime."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def is_due(rule: EngineRule, at: datetime) -> bool:
    """True when ``at`` is a whole second that is a multiple of the rule's ``every``."""
    seconds = epoch_seconds(at)
    return seconds == int(seconds) and int(seconds) % rule.every == 0


def due_rules(rules: Iterable[EngineRule], at: datetime) -> list[EngineRule]:
    return [rule for rule in rules if is_due(rule, at)]


def next_due(rules: Sequence[EngineRule], after: float) -> int | None:
    """The first whole second strictly after ``after`` (epoch seconds) at which some rule is due."""
    if not rules:
        return None
    everies = {rule.every for rule in rules}
    return min((math.floor(after / every) + 1) * every for every in everies)
