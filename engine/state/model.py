"""The state machine's records: what is stored per series, what goes in, what comes out.

Everything here is a plain dataclass. :class:`SeriesState` is what the engine
persists per (rule, series); it converts to and from a dict of JSON-safe values
(strings, numbers, booleans, ``None``, lists, dicts) so that it can live in the
SQL store and survive a restart unchanged. Times are timezone-aware UTC
datetimes in Python and RFC 3339 strings (``2024-05-01T12:00:00Z``) in dicts.
"""

from __future__ import annotations

from math import isfinite
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = [
    "INACTIVE",
    "PENDING",
    "FIRING",
    "STATES",
    "SEVERITY_RANK",
    "NOTIFICATION_KINDS",
    "Value",
    "Evaluation",
    "SeriesState",
    "Transition",
    "Notification",
    "Step",
    "to_utc",
    "format_time",
    "parse_time",
    "clean_values",
]

INACTIVE = "inactive"
PENDING = "pending"
FIRING = "firing"
STATES = (INACTIVE, PENDING, FIRING)

#: Higher is more severe; used for escalation direction and "highest declared".
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}

NOTIFICATION_KINDS = ("firing", "resolved", "escalation", "repeat")

#: A term's value: a number, a boolean (``absent``), or ``None`` for no data.
Value = float | int | bool | None

_STATE_FORMAT = 1


# --- time --------------------------------------------------------------------


def to_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


_FORMATTED: dict[datetime, str] = {}


def format_time(moment: datetime | None) -> str | None:
    """RFC 3339 text (``…Z``) for an aware datetime, ``None`` for ``None``."""
    if moment is None:
        return None
    text = _FORMATTED.get(moment)  # a tick formats the same few times thousands of times
    if text is None:
        if len(_FORMATTED) > 4096:
            _FORMATTED.clear()
        text = _FORMATTED[moment] = to_utc(moment).isoformat().replace("+00:00", "Z")
    return text


def parse_time(text: str | None) -> datetime | None:
    """The inverse of :func:`format_time`."""
    if text is None:
        return None
    return to_utc(datetime.fromisoformat(text))


def clean_values(values: Mapping[str, Value] | None) -> dict[str, Value]:
    """A JSON-safe copy: non-finite floats (NaN, ±inf) become ``None`` (no data)."""
    if not values:
        return {}
    return {key if key.__class__ is str else str(key): _clean(value) for key, value in values.items()}


def _clean(value: Value) -> Value:
    """``value``, or ``None`` for a non-finite float."""
    return None if isinstance(value, float) and not isfinite(value) else value


# --- input -------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a rule for one series at time ``at``.

    ``severity`` is the highest severity whose firing condition holds, or
    ``None`` when none holds. ``resolve`` is the ``resolve when`` condition
    (``None`` when the rule has none, or when it is unknown). ``no_data`` is
    set when the firing condition is unknown for this series (three-valued
    logic, section 3). ``values`` maps each aggregate's canonical text to its
    value, ``value`` is the first aggregate's value (the template's ``value``).
    """

    at: datetime
    severity: str | None = None
    resolve: bool | None = None
    no_data: bool = False
    values: Mapping[str, Value] = field(default_factory=dict)
    value: Value = None

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")
        object.__setattr__(self, "at", to_utc(self.at))
        object.__setattr__(self, "values", clean_values(self.values))
        object.__setattr__(self, "value", _clean(self.value))

    @classmethod
    def of(cls, at: datetime, severity: str | None, resolve: bool | None, no_data: bool, values: dict[str, Value],
           value: Value) -> Evaluation:
        """The same as the constructor for an aware UTC ``at``, a known severity (or ``None``) and ``values`` a
        fresh dict of string keys that the evaluation may keep: cleaned in place, without the generic checks
        (the engine builds thousands per tick)."""
        for key, item in values.items():
            if isinstance(item, float) and not isfinite(item):
                values[key] = None
        self = object.__new__(cls)
        self.__dict__.update(at=at, severity=severity, resolve=resolve, no_data=no_data, values=values,
                             value=_clean(value))
        return self

    @classmethod
    def from_decision(cls, decision, *, at: datetime, values: Mapping[str, Value] | None = None,
                      value: Value = None) -> Evaluation:
        """From a compiled rule's ``Decision`` (``result``, ``severity``, ``resolve``).

        ``result is None`` (the firing condition is unknown) is *no data*.
        """
        return cls(at=at, severity=decision.severity, resolve=decision.resolve,
                   no_data=decision.result is None, values=values or {}, value=value)


# --- stored state --------------------------------------------------------------


@dataclass(frozen=True)
class SeriesState:
    """What is kept for one series of one rule between evaluations.

    - ``state``: ``inactive``, ``pending`` or ``firing``; ``severity`` is the
      severity pending or firing (``None`` when inactive).
    - ``pending_since``: when the firing condition started to hold (pending).
    - ``firing_since``: when the alert started firing (``started_at``).
    - ``clear_since``: while firing, since when the resolve criterion holds
      without a break (``keep firing for`` counts from here).
    - ``start_values`` / ``start_value``: the values when firing started.
    - ``last_values`` / ``last_value``: while firing, the values at the last
      evaluation that had data (repeats during *no data* with ``keep`` carry
      these).
    - ``notified_severity``: what the receivers were last told: the severity of
      a firing alert, or ``None`` when they were last told nothing or resolved.
    - ``notified_started_at``: ``started_at`` of the alert the receivers were
      told about (a ``resolved`` notification carries it).
    - ``last_notified_at``: the last notification sent (``repeat every``).
    - ``last_evaluated_at``: the last evaluation that changed this state;
      evaluations at or before it are ignored, so re-running a tick after a
      crash changes nothing (later ones that changed nothing are harmless).
    - ``flapping`` and ``changes``: flap detection (times of recent changes);
      ``flapping_since``: when the series started flapping (``None`` when it is not).
    - ``notices``: per channel, what became of the firing alert's firing notice on it — ``"sent"``
      (delivered or queued to be), or the reason it is held (``"silenced"``, ``"muted"``,
      ``"muted by channel pager"``, ``"suppressed by rule db_down"``); a channel absent was not
      told (``engine.repository.notices``). ``None``: no record kept (a state written before the
      record existed: every channel covering ``notified_severity`` was told). ``escalation``: ``"done"`` once ``escalate to`` was
      notified, ``"cancelled"`` when the alert was acknowledged first. ``notice_at``: the series
      must be looked at by the first evaluation at or after this time even if nothing else
      changes (a held firing notice, an escalation due).
    """

    state: str = INACTIVE
    severity: str | None = None
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    clear_since: datetime | None = None
    start_values: Mapping[str, Value] = field(default_factory=dict)
    start_value: Value = None
    last_values: Mapping[str, Value] = field(default_factory=dict)
    last_value: Value = None
    notified_severity: str | None = None
    notified_started_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_evaluated_at: datetime | None = None
    flapping: bool = False
    changes: tuple[datetime, ...] = ()
    flapping_since: datetime | None = None
    notices: Mapping[str, str] | None = None
    escalation: str | None = None
    notice_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        for name in ("start_values", "last_values"):  # JSON-safe from the start: to_dict need not clean
            object.__setattr__(self, name, clean_values(getattr(self, name)))
        for name in ("start_value", "last_value"):
            object.__setattr__(self, name, _clean(getattr(self, name)))

    _TIMES = ("pending_since", "firing_since", "clear_since", "notified_started_at", "last_notified_at",
              "last_evaluated_at", "flapping_since")

    def to_dict(self) -> dict:
        """JSON-safe dict; ``SeriesState.from_dict(s.to_dict()) == s``."""
        data = {
            "format": _STATE_FORMAT,
            "state": self.state,
            "severity": self.severity,
            "start_values": dict(self.start_values),
            "start_value": self.start_value,
            "last_values": dict(self.last_values),
            "last_value": self.last_value,
            "notified_severity": self.notified_severity,
            "flapping": self.flapping,
            "changes": [format_time(t) for t in self.changes],
        }
        for name in self._TIMES:
            data[name] = format_time(getattr(self, name))
        if self.notices is not None:  # the notifier's record: written only when there is one
            data["notices"] = dict(self.notices)
        if self.escalation is not None:
            data["escalation"] = self.escalation
        if self.notice_at is not None:
            data["notice_at"] = format_time(self.notice_at)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> SeriesState:
        """Rebuild a state written by :meth:`to_dict`."""
        version = data.get("format", _STATE_FORMAT)
        if version != _STATE_FORMAT:
            raise ValueError(f"unsupported series state format {version!r}")
        return cls(
            state=data.get("state", INACTIVE),
            severity=data.get("severity"),
            start_values=dict(data.get("start_values") or {}),
            start_value=data.get("start_value"),
            last_values=dict(data.get("last_values") or {}),
            last_value=data.get("last_value"),
            notified_severity=data.get("notified_severity"),
            flapping=bool(data.get("flapping", False)),
            changes=tuple(parse_time(t) for t in data.get("changes") or ()),
            notices=dict(data["notices"]) if data.get("notices") is not None else None,
            escalation=data.get("escalation"),
            notice_at=parse_time(data.get("notice_at")),
            **{name: parse_time(data.get(name)) for name in cls._TIMES},
        )


# --- output ------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A state change of one series.

    ``severity`` is the severity of the new state; for a change to
    ``inactive`` it is the severity the series had. A severity change while
    firing is recorded as ``firing → firing``. ``resolved`` is true for
    ``firing → inactive``.
    """

    at: datetime
    from_state: str
    to_state: str
    severity: str | None

    @property
    def resolved(self) -> bool:
        return self.from_state == FIRING and self.to_state == INACTIVE

    def to_dict(self) -> dict:
        return {"at": format_time(self.at), "from": self.from_state, "to": self.to_state,
                "severity": self.severity}


@dataclass(frozen=True)
class Notification:
    """A message to send: ``firing``, ``resolved``, ``escalation`` or ``repeat``.

    ``direction`` is ``"up"`` or ``"down"`` for an escalation, else ``None``;
    ``previous_severity`` is the severity before it. ``values``/``value`` are
    those at ``at`` (for ``resolved``: at resolution). ``started_at`` is when
    the alert started firing. ``idempotency_key`` is
    ``hash(rule id, series key, kind, at)``: the same notification always gets
    the same key, so the notification log can refuse a second send.
    ``late`` marks a firing notice sent when the hold over it (a mute window, a silence, a dependency)
    ended; ``escalated`` one sent by ``escalate to`` (the template variable ``escalated``).
    """

    kind: str
    at: datetime
    rule_id: str
    series_key: str
    severity: str | None
    started_at: datetime | None
    values: Mapping[str, Value]
    value: Value
    idempotency_key: str
    direction: str | None = None
    previous_severity: str | None = None
    late: bool = False
    escalated: bool = False

    @property
    def state(self) -> str:
        """The template's ``state``: ``resolved`` or ``firing``."""
        return "resolved" if self.kind == "resolved" else "firing"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "at": format_time(self.at),
            "rule_id": self.rule_id,
            "series_key": self.series_key,
            "severity": self.severity,
            "previous_severity": self.previous_severity,
            "direction": self.direction,
            "started_at": format_time(self.started_at),
            "values": clean_values(self.values),
            "value": _clean(self.value),
            "idempotency_key": self.idempotency_key,
            "late": self.late,
            "escalated": self.escalated,
        }


@dataclass(frozen=True)
class Step:
    """The result of one evaluation: the new state and what happened."""

    state: SeriesState
    transitions: tuple[Transition, ...] = ()
    notifications: tuple[Notification, ...] = ()
    #: only a firing series' values (``last_values``, ``last_value``, ``last_evaluated_at``) changed
    values_only: bool = False
