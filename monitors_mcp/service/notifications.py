"""What became of an alert's notifications: per channel, its kind and status, and why.

Read from the engine's outbox (``notification_outbox``), owner-filtered like
everything else. Statuses are the outbox's own, but for ``sending`` (a delivery in
flight), shown as ``pending``: ``sent``, ``pending`` (with its next attempt and the
last attempt's failure, if any), ``failed`` (with the receiver's reason),
``silenced``, ``muted``, ``suppressed``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..schemas import NotificationOut
from ..store import NotificationChannel, NotificationOutbox

__all__ = ["PER_ALERT", "notifications_of"]

#: the most recent notifications shown per alert
PER_ALERT = 20

_HELD = {"silenced": "the rule was silenced", "muted": "inside a mute window",
         "suppressed": "held back (a repeat of an acknowledged alert, or a dependency firing)"}
_HELD_REASON = {"silenced": "the rule was silenced", "muted": "inside the rule's mute window",
                "acknowledged": "a repeat of an acknowledged alert"}


def _out(row: NotificationOutbox, channel: str | None) -> NotificationOut:
    status = "pending" if row.status == "sending" else row.status
    payload = row.payload if isinstance(row.payload, dict) else {}
    held = row.held_reason  # "suppressed by rule db_down", "muted by channel pager" …: the hold's own words
    reason = row.last_error or _HELD_REASON.get(held, held) or _HELD.get(status)
    return NotificationOut(
        channel=channel or str(payload.get("channel") or "?"),
        kind=row.kind,
        status=status,
        at=row.sent_at or row.created_at,
        reason=reason[:500] if reason else None,
        next_attempt_at=row.next_attempt_at if status == "pending" else None,
    )


def notifications_of(session: Session, owner_id: int, alert_ids: Iterable[int]) -> dict[int, list[NotificationOut]]:
    """``{alert id: its notifications, newest first (at most PER_ALERT)}``."""
    ids = sorted(set(alert_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(NotificationOutbox, NotificationChannel.name)
        .outerjoin(NotificationChannel, NotificationChannel.id == NotificationOutbox.channel_id)
        .where(NotificationOutbox.owner_id == owner_id, NotificationOutbox.alert_id.in_(ids))
        .order_by(NotificationOutbox.alert_id, NotificationOutbox.created_at.desc(), NotificationOutbox.id.desc())
    ).all()
    out: dict[int, list[NotificationOut]] = {}
    for row, channel in rows:
        shown = out.setdefault(row.alert_id, [])
        if len(shown) < PER_ALERT:
            shown.append(_out(row, channel))
    return out
