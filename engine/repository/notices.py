"""Who hears of a notification, and what holds it (the rule language's section 10), decided once for every
repository.

The state machine says what the receivers as a whole must be told (``firing``, ``escalation``, ``repeat``,
``resolved``). This module turns that into one decision per channel, keeping per firing alert and channel
what became of its firing notice (``SeriesState.notices``: ``"sent"``, or the reason it is held):

- **Routing.** A channel covers a severity when one of the rule's ``notify`` clauses names it without ``on``
  or with that severity (a rule without routes: every channel covers every severity). A firing notice goes
  to the channels covering the alert's severity. An escalation sends a *firing* notice (at the new severity)
  to each channel newly covered; a channel already told of the alert gets every severity change (up or
  down, covered or not) and the resolution; ``repeat`` notices go only to told channels covering the
  current severity. A de-escalation below a channel's routes thus tells it the severity dropped, then
  nothing more until the resolution (or another escalation).
- **Holds**, in this order: a silence of the rule (``silenced``), the rule's ``mute during`` (``muted``), the
  channel's ``mute_during`` (``muted by channel NAME``), ``depends on RULE`` while that rule of the same
  owner has a firing alert with the same values of the listed tags, or any firing alert when none are
  listed (``suppressed by rule RULE``; a rule that does not exist holds nothing). A held notice is
  recorded with its status (the reason's first word) and reason, never sent.
- **Pairing.** A resolution goes to exactly the channels whose firing notice was sent (or queued), and is
  never held; to a channel whose firing was held it is recorded with that hold and not sent.
- **Late firing.** A series whose firing is held on some channel is looked at by each evaluation
  (``SeriesState.notice_at``); once nothing holds it and the alert still fires at a severity the channel
  covers, one firing notice goes (``late``). A held channel that no longer covers the severity forgets the
  held firing (it is told again if the alert escalates back).
- **Escalation.** ``escalate to CHANNELS after D``: the first evaluation at least ``D`` after the alert
  started firing sends a firing notice (``escalated``) to each of those channels not told of the alert yet,
  once, unless the alert was acknowledged by then (the escalation is then cancelled). Holds apply; from
  then on those channels cover every severity of the alert, and its resolution goes to them by pairing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable, Mapping, NamedTuple

from ..rules import EngineRule
from ..state import FIRING, Notification, SeriesState
from ..state.keys import idempotency_key
from ..state.machine import replace

__all__ = [
    "SENT",
    "HELD_STATUSES",
    "Holds",
    "Delivery",
    "covering",
    "rule_channels",
    "held_status",
    "parse_channel_window",
    "plan_notices",
    "needs_notifier",
    "dependency_holder",
]

log = logging.getLogger(__name__)

SENT = "sent"
HELD_STATUSES = ("silenced", "muted", "suppressed")

_RECHECK = timedelta(microseconds=1)  # a held notice: looked at again by the next evaluation


def held_status(reason: str) -> str:
    """The outbox status of a hold's reason: its first word (``suppressed by rule db`` → ``suppressed``)."""
    return reason.split(" ", 1)[0]


@lru_cache(maxsize=4096)
def parse_channel_window(text: str | None):
    """A channel's ``mute_during`` text as a ``monitors_dsl.TimeWindow`` (parsed once per text); ``None`` for
    none, or for a text the language does not accept (logged: the channel is then never muted)."""
    if not text:
        return None
    from monitors_dsl.windows import parse_window

    try:
        return parse_window(text)
    except Exception as error:  # stored before the language changed: send rather than hold silently
        log.warning("channel mute window %r does not parse and is ignored: %s", text, error)
        return None


@lru_cache(maxsize=4096)
def _covering(routes: tuple, channels: tuple[str, ...], severity: str) -> frozenset[str]:
    if not routes:
        return frozenset(channels)
    out = set()
    for route in routes:
        severities = tuple(route.severities)
        if not severities or severity in severities:
            out.update(route.channels)
    return frozenset(out)


def covering(rule: EngineRule, severity: str | None) -> frozenset[str]:
    """The channels whose routes cover ``severity`` (none for ``None``)."""
    if severity is None:
        return frozenset()
    return _covering(tuple(rule.routes), tuple(rule.channels), severity)


@lru_cache(maxsize=4096)
def _all_channels(channels: tuple[str, ...], escalation: tuple[str, ...]) -> tuple[str, ...]:
    return channels + tuple(c for c in dict.fromkeys(escalation) if c not in channels)


def rule_channels(rule: EngineRule) -> tuple[str, ...]:
    """Every channel a rule may notify: its routes' channels, then its escalation's (first-seen order)."""
    escalation = rule.escalation
    if escalation is None:
        return rule.channels
    return _all_channels(tuple(rule.channels), tuple(escalation.channels))


def _after(escalation) -> float:
    after = escalation.after
    return float(getattr(after, "seconds", after))


class Holds:
    """What may hold a rule's notices at one evaluation ``at`` (see the module docstring).

    ``channel_windows`` maps a channel name to its ``mute_during`` window (or ``None``); ``dependency``, given
    an alert's labels, names the rule holding it (the rule's ``depends on``, firing with the same values of
    the listed tags: ``engine.depends.FiringIndex.holder``), or gives ``None``."""

    __slots__ = ("rule", "at", "silenced", "channel_windows", "_dependency", "_rule_muted", "_channel_muted")

    def __init__(self, rule: EngineRule, at: datetime, *, silenced: bool = False,
                 channel_windows: Mapping[str, object] | None = None,
                 dependency: Callable[[Mapping[str, str]], str | None] | None = None) -> None:
        self.rule = rule
        self.at = at
        self.silenced = silenced
        self.channel_windows = channel_windows or {}
        self._dependency = dependency
        self._rule_muted: bool | None = None
        self._channel_muted: dict[str, bool] = {}

    def reason(self, channel: str, labels: Mapping[str, str]) -> str | None:
        """Why a notice of an alert with ``labels`` to ``channel`` is held now, or ``None``."""
        if self.silenced:
            return "silenced"
        if self._rule_muted is None:
            window = self.rule.mute_during
            self._rule_muted = window is not None and window.contains(self.at)
        if self._rule_muted:
            return "muted"
        muted = self._channel_muted.get(channel)
        if muted is None:
            window = self.channel_windows.get(channel)
            muted = self._channel_muted[channel] = window is not None and window.contains(self.at)
        if muted:
            return f"muted by channel {channel}"
        if self._dependency is not None and self.rule.depends_on is not None:
            holder = self._dependency(labels)
            if holder is not None:
                return f"suppressed by rule {holder}"
        return None


def dependency_holder(rule: EngineRule, firing, read) -> Callable[[Mapping[str, str]], str | None] | None:
    """The ``Holds`` dependency of a rule: ``firing`` (an ``engine.depends.FiringIndex``, the tick's, which the
    runner gives) asked for its holder; without one, an index of what ``read(owner id, names)`` (a
    repository's ``firing_labels``) says is stored, read when first needed. ``None`` for a rule without
    ``depends on``."""
    dependency = rule.depends_on
    if dependency is None:
        return None
    if firing is not None:
        return lambda labels: firing.holder(rule, labels)
    found = []

    def holder(labels: Mapping[str, str]) -> str | None:
        if not found:
            from ..depends import FiringIndex  # the index is the runner's; built here only for a lone write

            stored = read(rule.owner_id, [dependency.rule])
            found.append(FiringIndex({(rule.owner_id, dependency.rule): stored.get(dependency.rule, {})}))
        return found[0].holder(rule, labels)

    return holder


class Delivery(NamedTuple):
    """One channel's part of a notice: the notification it gets (the state machine's, or a firing notice made
    for it), its outbox status and, when held, why."""

    channel: str
    notification: Notification
    status: str
    held_reason: str | None


def needs_notifier(rule: EngineRule, state: SeriesState, notified: bool) -> bool:
    """Whether :func:`plan_notices` has anything to do for a series: it notifies (``notified``), or its state
    has a notifier record or a look due. The one check a rule without section 10 clauses pays."""
    return notified or state.notice_at is not None


def _firing_notice(rule: EngineRule, series_key: str, state: SeriesState, at: datetime, base: Notification | None,
                   *, late: bool, escalated: bool) -> Notification:
    """A firing notice of the alert at its current severity: made from the notification of this evaluation
    (its values) or, without one, from the state (its last values)."""
    if base is not None and base.kind == "firing" and base.late == late and base.escalated == escalated:
        return base
    label = "late" if late else ("escalated" if escalated and base is None else "firing")
    values, value = (base.values, base.value) if base is not None else (state.last_values, state.last_value)
    return Notification(kind="firing", at=at, rule_id=str(rule.id), series_key=str(series_key),
                        severity=state.severity, started_at=state.firing_since, values=dict(values), value=value,
                        idempotency_key=idempotency_key(rule.id, series_key, label, at), late=late,
                        escalated=escalated)


def plan_notices(rule: EngineRule, series_key: str, previous: SeriesState | None, state: SeriesState,
                 notification: Notification | None, at: datetime, labels: Mapping[str, str], holds: Holds,
                 acknowledged: bool) -> tuple[SeriesState, list[Delivery]]:
    """The deliveries of one series' evaluation and its state with the notifier's record brought up to date
    (``state`` itself when nothing of it changed). ``notification`` is the state machine's (at most one),
    ``labels`` the alert's labels, ``acknowledged`` whether its alert is acknowledged."""
    escalation = state.escalation
    if notification is not None and notification.kind == "firing":
        notices, escalation = {}, None  # a new alert (or one the receivers were told had ended): nobody told yet
    elif state.notices is None:  # no record kept: every channel covering what the receivers were told was told
        if previous is not None:
            told = previous.notified_severity
        elif notification is not None:
            told = notification.previous_severity if notification.kind == "escalation" else notification.severity
        else:
            told = state.notified_severity
        notices = {channel: SENT for channel in covering(rule, told)}
    else:
        notices = dict(state.notices)
    firing = state.state == FIRING
    esc = rule.escalation
    if esc is not None and firing and escalation is None and state.firing_since is not None \
            and (at - state.firing_since).total_seconds() >= _after(esc):
        escalation = "cancelled" if acknowledged else "done"
    escalated_to = frozenset(esc.channels) if esc is not None and escalation == "done" else frozenset()
    covered = covering(rule, state.severity) if firing else frozenset()
    resolved = notification is not None and notification.kind == "resolved"
    deliveries: list[Delivery] = []
    for channel in rule_channels(rule):
        record = notices.get(channel)
        if resolved:
            if record == SENT:
                deliveries.append(Delivery(channel, notification, "pending", None))
            elif record is not None:  # its firing was held: nothing is sent, the hold is recorded
                deliveries.append(Delivery(channel, notification, held_status(record), record))
            continue
        if not firing:
            continue
        routed = channel in covered
        hears = routed or channel in escalated_to
        if record is None:
            if not hears:
                continue
            notice = _firing_notice(rule, series_key, state, at, notification, late=False,
                                    escalated=not routed)
            reason = holds.reason(channel, labels)
            notices[channel] = reason or SENT
            deliveries.append(Delivery(channel, notice, held_status(reason) if reason else "pending", reason))
        elif record == SENT:
            if notification is None or (notification.kind == "repeat" and not hears):
                continue
            reason = holds.reason(channel, labels)
            if reason is not None:
                deliveries.append(Delivery(channel, notification, held_status(reason), reason))
            elif notification.kind == "repeat" and acknowledged:
                deliveries.append(Delivery(channel, notification, "suppressed", "acknowledged"))
            else:
                deliveries.append(Delivery(channel, notification, "pending", None))
        else:  # its firing notice is held
            if not hears:
                del notices[channel]  # no longer routed to it: told afresh if the alert comes back to it
                continue
            reason = holds.reason(channel, labels)
            if reason is not None:
                notices[channel] = reason
                if notification is not None:
                    deliveries.append(Delivery(channel, notification, held_status(reason), reason))
            else:
                notices[channel] = SENT
                notice = _firing_notice(rule, series_key, state, at, None, late=True, escalated=not routed)
                deliveries.append(Delivery(channel, notice, "pending", None))
    if resolved:
        notices, escalation, notice_at = None, None, None
    elif not firing:
        escalation, notice_at = None, None
    else:
        notice_at = None
        if esc is not None and escalation is None and state.firing_since is not None:
            notice_at = state.firing_since + timedelta(seconds=_after(esc))
        if any(record != SENT for record in notices.values()):
            anchor = state.notice_at if state.notice_at is not None and state.notice_at <= at else at + _RECHECK
            notice_at = anchor if notice_at is None else min(notice_at, anchor)
    if notices == state.notices and escalation == state.escalation and notice_at == state.notice_at:
        return state, deliveries
    return replace(state, notices=notices, escalation=escalation, notice_at=notice_at), deliveries
