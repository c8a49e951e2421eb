"""One evaluation of one series: the contract's section 5, as a pure function.

``step(state, evaluation, clauses, rule_id=…, series_key=…)`` returns the new
state, the transitions and the notifications to send. It does no I/O and
reads no clock: the same inputs always give the same outputs, which is what
makes backtests equal live runs and a re-run tick harmless.

1. *No data* is mapped first: ``keep`` leaves the state as it is (timers
   included; a due ``repeat every`` still goes out), ``ok`` is the firing
   condition false and the resolve criterion met, ``alert`` is the firing
   condition holding at the rule's no-data severity (``for`` still applies).
2. The state moves: ``inactive → pending`` (or ``→ firing`` when ``for`` is
   0), ``pending → firing`` once pending for at least ``for``,
   ``pending → inactive`` when the condition stops holding, and
   ``firing → inactive`` (resolved) once the resolve criterion has held for at
   least ``keep firing for`` — the resolve criterion is ``resolve when`` when
   the rule has one, else "no firing condition holds". A different severity
   while firing is a ``firing → firing`` change.
3. Notifications bring the receivers up to date: what they were last told
   (``notified_severity``) is compared with the new state, giving ``firing``,
   ``escalation`` (``direction`` up or down), ``resolved``, or a ``repeat``
   when nothing changed and ``repeat every`` has passed since the last one.
   At most one notification per evaluation. While flapping, none.
4. A firing series' latest values (``last_values``) are kept with every change;
   when nothing but its values changed, they are kept once per period of
   ``values_every`` seconds, at a point of the period fixed per series (so
   series that started firing together are not all kept again at the same
   evaluation): what is kept is never older than ``values_every`` (0: kept at
   every evaluation), and a long-firing series is not a write per evaluation.
   :func:`firing_outcome` says, without stepping, what an evaluation of a
   firing series would change.
"""

from __future__ import annotations

import zlib
from datetime import datetime

from .clauses import Clauses
from .flapping import update_flapping
from .keys import idempotency_key
from .model import (
    FIRING,
    INACTIVE,
    PENDING,
    SEVERITY_RANK,
    Evaluation,
    Notification,
    SeriesState,
    Step,
    Transition,
    Value,
)

__all__ = ["step", "firing_outcome", "keep_values"]


def replace(original: SeriesState, /, **changes) -> SeriesState:
    """``dataclasses.replace`` for a series state, without its generic walk over the fields (a tick makes
    thousands of these); the machine only ever sets valid values."""
    new = object.__new__(SeriesState)
    new.__dict__.update(original.__dict__)
    new.__dict__.update(changes)
    return new


def step(state: SeriesState, evaluation: Evaluation, clauses: Clauses, *,
         rule_id: str, series_key: str, values_every: float = 0.0) -> Step:
    """Apply one evaluation to one series' state (see the module docstring).

    When nothing changes, the returned ``Step.state`` *is* ``state`` (the same
    object): there is nothing to store. ``last_evaluated_at`` is the last
    evaluation that changed the state; evaluations at or before it are ignored,
    and evaluations after it that change nothing are harmless to run again.
    A firing series whose values alone changed keeps them when ``values_every``
    seconds have passed since ``last_evaluated_at`` (see the module docstring).
    """
    at = evaluation.at
    if state.last_evaluated_at is not None and at <= state.last_evaluated_at:
        return Step(state)  # already applied (a tick run again): nothing happens twice
    quiet = state.state == INACTIVE and not state.changes and not state.flapping \
        and state.notified_severity is None

    if evaluation.no_data and clauses.on_no_data == "keep":
        if quiet:
            return Step(state)
        return _notify(state, state, at, (), state.last_values, state.last_value, clauses, rule_id,
                       series_key, changed=False)

    severity, clear = _decide(evaluation, clauses)
    if quiet and severity is None:
        return Step(state)  # the common case: inactive and staying so
    values = dict(evaluation.values)
    value = evaluation.value
    new, transitions = _move(state, at, severity, clear, values, value, clauses)
    changed = any(t.to_state == FIRING or t.from_state == FIRING for t in transitions)
    stepped = _notify(state, new, at, tuple(transitions), values, value, clauses, rule_id, series_key, changed)
    new = stepped.state
    if new.state != FIRING or evaluation.no_data or (new.last_values == values and new.last_value == value):
        return stepped
    if new is state:
        if not _values_due(state, at, values_every, rule_id, series_key):
            return stepped  # only the values changed, and they were kept recently enough
        return keep_values(state, evaluation)
    return Step(replace(new, last_values=values, last_value=value, last_evaluated_at=at), stepped.transitions,
                stepped.notifications)


def keep_values(state: SeriesState, evaluation: Evaluation) -> Step:
    """The step of a firing series whose evaluation changes nothing but its values, when keeping them is
    due (:func:`firing_outcome` says ``"values"``): exactly what :func:`step` gives then."""
    values, value = evaluation.values, evaluation.value
    if state.last_value == value and state.last_values == values:
        return Step(state)
    return Step(replace(state, last_values=dict(values), last_value=value, last_evaluated_at=evaluation.at),
                values_only=True)


def _values_due(state: SeriesState, at: datetime, values_every: float, rule_id: str, series_key: str) -> bool:
    """Whether ``at`` is in a later period of this series than its last change (see the module docstring)."""
    last = state.last_evaluated_at
    if last is None or values_every <= 0:
        return True
    phase = _values_phase(values_every, rule_id, series_key)
    return (at.timestamp() + phase) // values_every != (last.timestamp() + phase) // values_every


_PHASES: dict[tuple[str, str], float] = {}


def _values_phase(values_every: float, rule_id: str, series_key: str) -> float:
    """This series' point in each period of ``values_every`` seconds: the same at every call."""
    fraction = _PHASES.get((rule_id, series_key))
    if fraction is None:  # the same firing series are asked about at every tick
        if len(_PHASES) > 200_000:
            _PHASES.clear()
        fraction = _PHASES[(rule_id, series_key)] = zlib.crc32(f"{rule_id}\x00{series_key}".encode()) / 0x100000000
    return values_every * fraction


def firing_outcome(state: SeriesState, severity: str | None, resolve: bool | None, at: datetime,
                   clauses: Clauses, values_every: float, *, rule_id: str, series_key: str) -> str:
    """What :func:`step` of a firing ``state`` would do with an evaluation that has data, holds at
    ``severity`` and has ``resolve`` — told without stepping, so that the engine can skip building it:

    - ``"unchanged"``: nothing (its values aside, keeping them not being due);
    - ``"values"``: nothing but keeping its values (:func:`keep_values`);
    - ``"step"``: anything else may happen: step it.
    """
    if state.state != FIRING or severity is None or severity != state.severity or state.clear_since is not None:
        return "step"
    if clauses.has_resolve and resolve is True:
        return "step"
    if state.flapping or state.changes or state.notified_severity != severity:
        return "step"
    last = state.last_evaluated_at
    if last is None:
        return "step"
    if at <= last:
        return "unchanged"  # at or before the last change: already applied
    repeat = clauses.repeat_every
    if repeat is not None and (state.last_notified_at is None
                               or (at - state.last_notified_at).total_seconds() >= repeat):
        return "step"
    return "values" if _values_due(state, at, values_every, rule_id, series_key) else "unchanged"


def _decide(evaluation: Evaluation, clauses: Clauses) -> tuple[str | None, bool]:
    """``(severity holding or None, resolve criterion met)`` for this evaluation."""
    if evaluation.no_data:
        if clauses.on_no_data == "alert":
            return clauses.no_data_severity, False
        return None, True  # "ok"
    severity = evaluation.severity
    if clauses.has_resolve:
        return severity, evaluation.resolve is True
    return severity, severity is None


def _move(state: SeriesState, at: datetime, severity: str | None, clear: bool,
          values: dict[str, Value], value: Value, clauses: Clauses) -> tuple[SeriesState, list[Transition]]:
    """The state change alone (section 5), before notifications."""
    if state.state == INACTIVE:
        if severity is None:
            return state, []
        if clauses.for_ == 0:
            return _start_firing(state, at, severity, values, value, INACTIVE)
        pending = replace(state, state=PENDING, severity=severity, pending_since=at)
        return pending, [Transition(at, INACTIVE, PENDING, severity)]

    if state.state == PENDING:
        if severity is None:
            return _inactive(state), [Transition(at, PENDING, INACTIVE, state.severity)]
        if (at - state.pending_since).total_seconds() >= clauses.for_:
            return _start_firing(state, at, severity, values, value, PENDING)
        return replace(state, severity=severity), []

    # firing
    if clear:
        clear_since = state.clear_since or at
        if (at - clear_since).total_seconds() >= clauses.keep_firing_for:
            return _inactive(state), [Transition(at, FIRING, INACTIVE, state.severity)]
        state = replace(state, clear_since=clear_since)
    elif state.clear_since is not None:
        state = replace(state, clear_since=None)
    if severity is not None and severity != state.severity:
        return replace(state, severity=severity), [Transition(at, FIRING, FIRING, severity)]
    return state, []


def _start_firing(state: SeriesState, at: datetime, severity: str, values: dict[str, Value], value: Value,
                  previous: str) -> tuple[SeriesState, list[Transition]]:
    firing = replace(state, state=FIRING, severity=severity, firing_since=at, clear_since=None,
                     start_values=values, start_value=value)
    return firing, [Transition(at, previous, FIRING, severity)]


def _inactive(state: SeriesState) -> SeriesState:
    return replace(state, state=INACTIVE, severity=None, pending_since=None, firing_since=None, clear_since=None,
                   start_values={}, start_value=None, last_values={}, last_value=None)


def _notify(original: SeriesState, new: SeriesState, at: datetime, transitions: tuple[Transition, ...],
            values: dict[str, Value], value: Value, clauses: Clauses, rule_id: str, series_key: str,
            changed: bool) -> Step:
    """Flap bookkeeping, then at most one notification bringing receivers up to date."""
    flapping, changes = update_flapping(clauses.flap, new.flapping, new.changes, at, changed)
    if flapping != new.flapping or changes != new.changes:
        since = (new.flapping_since or at) if flapping else None
        new = replace(new, flapping=flapping, changes=changes, flapping_since=since)
    if flapping:
        return Step(_stamp(original, new, at), transitions)

    firing_severity = new.severity if new.state == FIRING else None
    told = new.notified_severity
    kind = direction = None
    if firing_severity is not None and told is None:
        kind = "firing"
    elif firing_severity is not None and firing_severity != told:
        kind = "escalation"
        direction = "up" if SEVERITY_RANK[firing_severity] > SEVERITY_RANK[told] else "down"
    elif firing_severity is None and told is not None:
        kind = "resolved"
    elif firing_severity is not None and clauses.repeat_every is not None and (
            new.last_notified_at is None
            or (at - new.last_notified_at).total_seconds() >= clauses.repeat_every):
        kind = "repeat"
    if kind is None:
        return Step(_stamp(original, new, at), transitions)

    started_at = new.notified_started_at if kind == "resolved" else new.firing_since
    notification = Notification(
        kind=kind,
        at=at,
        rule_id=str(rule_id),
        series_key=str(series_key),
        severity=firing_severity if kind != "resolved" else told,
        started_at=started_at,
        values=dict(values),
        value=value,
        idempotency_key=idempotency_key(rule_id, series_key, kind, at),
        direction=direction,
        previous_severity=told if kind == "escalation" else None,
    )
    new = replace(new, notified_severity=firing_severity, last_notified_at=at, last_evaluated_at=at,
                  notified_started_at=new.firing_since if firing_severity is not None else None)
    return Step(new, transitions, (notification,))


def _stamp(original: SeriesState, new: SeriesState, at: datetime) -> SeriesState:
    """A changed state, marked with the evaluation that changed it; or ``original`` itself."""
    return original if new == original else replace(new, last_evaluated_at=at)
