"""Backtests: the live runner, state machine and templates over simulated time.

    result = backtest(rules, source, start, end)
    result.to_json()      # {"rules": [{"name", "transitions": [...], "notifications": [...]}]}

Each notification says what became of it on each channel, as the engine
records it (``deliveries``: ``{"channel", "status", "reason"}``, the status
``pending`` — sent by the dispatcher — or the hold: ``silenced``, ``muted``,
``suppressed``, with its reason), and whether it is a ``late`` firing notice
(sent when the hold over it ended) or an ``escalated`` one (``escalate to``).

Nothing here re-implements evaluation: the same ``Runner`` the engine runs
live ticks at every time a rule is due between ``start`` and ``end``, with an
in-memory repository instead of the store, and the notifications it records
are rendered with the same templates the dispatcher uses. So a backtest and a
live run over the same data give the same transitions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Sequence

from .notify.dispatch import render_payload
from .evaluate import Evaluator
from .notify import RenderError
from .repository import MemoryRepository
from .rules import EngineRule
from .runner import Runner, StaticRules
from .schedule import epoch_seconds, from_epoch, next_due

__all__ = ["backtest", "BacktestResult", "BacktestTooLong", "SeriesPoint", "MAX_TICKS", "format_rfc3339",
           "deliveries_of", "notification_json", "notifications_json"]

#: A backtest evaluates at most this many times (one tick = every rule due at one instant).
MAX_TICKS = 100_000


class BacktestTooLong(ValueError):
    """The period holds more evaluations than a backtest may run; known before any work."""


def format_rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    text = moment.isoformat().replace("+00:00", "Z")
    return text


@dataclass(frozen=True)
class SeriesPoint:
    """One evaluation of one series: the value the chart draws and whether the rule held."""

    at: datetime
    labels: dict
    value: float | None
    severity: str | None


@dataclass
class BacktestResult:
    rules: Sequence[EngineRule]
    start: datetime
    end: datetime
    repository: MemoryRepository
    ticks: int = 0
    queries: int = 0
    errors: list[tuple[datetime, str, str]] = field(default_factory=list)  # (at, rule id, error)
    #: set when the wall-clock deadline stopped the backtest: the time it had reached (results cover up to it)
    stopped_at: datetime | None = None
    history: dict[str, list[SeriesPoint]] = field(default_factory=dict)  # rule id → evaluations

    def to_json(self) -> dict:
        """The stable JSON shape of ``monitors backtest --format json``."""
        out = []
        for rule in self.rules:
            transitions = [
                {"at": format_rfc3339(t.transition.at), "labels": dict(t.labels), "from": t.transition.from_state,
                 "to": t.transition.to_state, "severity": t.transition.severity}
                for t in self.repository.transitions if t.rule_id == rule.id
            ]
            notifications = notifications_json(self.repository, rule)
            out.append({"name": rule.name, "transitions": transitions, "notifications": notifications})
        return {"rules": out}


def deliveries_of(recorded) -> list[dict]:
    """Per channel, what became of a recorded notification: ``{"channel", "status", "reason"}``."""
    found = getattr(recorded, "deliveries", None)
    if found is None:  # a record without per-channel outcomes: one status for every channel
        found = [(channel, recorded.status, None) for channel in recorded.channels]
    return [{"channel": channel, "status": status, "reason": reason} for channel, status, reason in found]


def notification_json(recorded, title: str, message: str) -> dict:
    """A recorded notification as ``monitors backtest --format json`` shows it."""
    note = recorded.notification
    return {"at": format_rfc3339(note.at), "labels": dict(recorded.labels), "kind": note.kind,
            "severity": note.severity, "late": bool(getattr(note, "late", False)),
            "escalated": bool(getattr(note, "escalated", False)), "title": title, "message": message,
            "deliveries": deliveries_of(recorded)}


def notifications_json(repository: MemoryRepository, rule: EngineRule) -> list[dict]:
    """The notifications ``repository`` recorded for ``rule``, in order, rendered with the dispatcher's
    templates (see :func:`notification_json`)."""
    out = []
    for recorded in repository.notifications:
        if recorded.rule_id != rule.id:
            continue
        try:
            rendered = render_payload(recorded.payload)
            title, message = rendered.title, rendered.body
        except RenderError as error:
            title, message = f"(template error) {rule.name or rule.id}", str(error)
        out.append(notification_json(recorded, title, message))
    return out


def backtest(rules: Sequence[EngineRule], source, start: datetime, end: datetime, *,
             max_ticks: int = MAX_TICKS, deadline: float | None = None, context: Sequence[EngineRule] = (),
             channels: Mapping[str, object] | None = None) -> BacktestResult:
    """Runs ``rules`` at every time each is due in ``[start, end]``, oldest first.

    ``deadline`` (``time.monotonic()`` seconds): stop before the first evaluation
    that would start after it, keeping what was computed (``stopped_at`` says up to when).
    ``context``: rules run alongside but not reported (the rules ``rules`` depend on, so that their
    notifications are held as live). ``channels``: channel name → its ``mute_during`` window (a
    ``monitors_dsl.TimeWindow`` or its text), as the channels' settings hold them.
    """
    shown = {rule.id for rule in rules}
    everything = list(rules) + [rule for rule in context if rule.id not in shown]
    if end < start:
        raise ValueError("the end of a backtest must not be before its start")
    if everything:
        fewest = math.floor((epoch_seconds(end) - epoch_seconds(start)) / min(rule.every for rule in everything))
        if fewest > max_ticks:  # refused before any work: the count is known from the schedule alone
            raise BacktestTooLong(f"the backtest would take {fewest:,} evaluations, more than the {max_ticks:,} allowed; "
                             "shorten the period or lengthen `every`")
    repository = MemoryRepository()
    set_channel = getattr(repository, "set_channel", None)
    for name, window in (channels or {}).items():
        if set_channel is not None and window is not None:
            set_channel(name, mute_during=window)
    runner = Runner(StaticRules(everything), repository, Evaluator(source))
    result = BacktestResult(rules, start, end, repository)
    names = {rule.id: rule for rule in rules}
    cursor = math.ceil(epoch_seconds(start)) - 1
    stop = epoch_seconds(end)
    while True:
        due = next_due(everything, cursor)
        if due is None or due > stop:
            break
        if result.ticks >= max_ticks:
            raise ValueError(f"the backtest would take more than {max_ticks:,} evaluations; "
                             "shorten the period or lengthen `every`")
        at = from_epoch(due)
        if deadline is not None and time.monotonic() > deadline:
            result.stopped_at = at
            break
        report = runner.tick(at)
        result.ticks += 1
        result.queries += report.queries
        for rule_id, error in report.errors.items():
            result.errors.append((at, rule_id, error))
        if report.evaluation is not None:
            for rule_result in report.evaluation.results:
                rule = names.get(rule_result.rule.id)
                if rule is None:
                    continue  # a rule of the context: not reported
                points = result.history.setdefault(rule.id, [])
                for series in rule_result.series:
                    value = series.row.get(rule.value_column) if rule.value_column else None
                    value = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
                    points.append(SeriesPoint(at, dict(series.labels), value, series.decision.severity))
        cursor = due
    return result
