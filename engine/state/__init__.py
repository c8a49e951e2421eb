"""The per-series state machine (contract section 5): pure, serialisable, replayable.

The engine keeps one :class:`SeriesState` per (rule, series) in the store and,
at each evaluation, calls :func:`step` with the rule's :class:`Clauses` and the
:class:`Evaluation` of that series. The :class:`Step` it gets back holds the new
state to persist, the :class:`Transition` records and the :class:`Notification`
records (each with its idempotency key) to put in the outbox — in the same
transaction as the state, so that a crash neither loses nor repeats one.
"""

from .clauses import NO_DATA_ACTIONS, SUGGESTED_FLAP_DETECTION, Clauses, FlapDetection
from .keys import idempotency_key
from .machine import step
from .model import (
    FIRING,
    INACTIVE,
    NOTIFICATION_KINDS,
    PENDING,
    SEVERITY_RANK,
    STATES,
    Evaluation,
    Notification,
    SeriesState,
    Step,
    Transition,
)

__all__ = [
    "INACTIVE",
    "PENDING",
    "FIRING",
    "STATES",
    "SEVERITY_RANK",
    "NOTIFICATION_KINDS",
    "NO_DATA_ACTIONS",
    "Clauses",
    "FlapDetection",
    "SUGGESTED_FLAP_DETECTION",
    "Evaluation",
    "SeriesState",
    "Transition",
    "Notification",
    "Step",
    "step",
    "idempotency_key",
]
