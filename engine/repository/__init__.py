"""Persistence of what a tick decides: series states, alerts, events and the notification outbox.

    lifecycle.plan_tick        a rule's tick → what must be written (plain data)
    Repository                 the interface the runner writes through
    ├── MemoryRepository       everything in Python lists (backtests, tests)
    └── SqlRepository          the store (``monitors_mcp.store``), one transaction per rule and tick

Per tick and rule, one call to :meth:`Repository.record` writes, atomically,
what :func:`plan_tick` (``lifecycle``: the alert lifecycle, decided once for
every repository) says:
the series states (``SeriesState.to_dict()``), alerts opened, changed and
closed, one alert event per transition, and one outbox row per notification
per channel. An outbox row's idempotency key is the state machine's key plus
the channel, and a row whose key exists is skipped: a tick run again sends
nothing twice. A silenced rule records alerts and events, but its outbox rows
are ``silenced``; a ``repeat`` of an acknowledged alert is ``suppressed``.
"""

from .base import OUTBOX_STATUSES, Repository, SeriesUpdate, notification_from_dict, notification_payload
from .lifecycle import AlertChange, TickPlan, alert_changes, alert_labels, outbox_status, plan_tick
from .memory import MemoryAlert, MemoryRepository, RecordedNotification

__all__ = [
    "OUTBOX_STATUSES",
    "Repository",
    "SeriesUpdate",
    "AlertChange",
    "alert_changes",
    "alert_labels",
    "notification_payload",
    "notification_from_dict",
    "outbox_status",
    "TickPlan",
    "plan_tick",
    "MemoryRepository",
    "MemoryAlert",
    "RecordedNotification",
    "SqlRepository",
]


def __getattr__(name):  # the SQL repository and its bulk writers: only when asked for
    if name == "SqlRepository":
        from .sql import SqlRepository

        return SqlRepository
    raise AttributeError(name)
