"""Alert history of one user: list it page by page, acknowledge an alert.

Alerts are written by the engine; here they are only read and acknowledged. Each
comes with what became of its notifications. ``since`` keeps the alerts that were
firing at any time since then: started since, still firing, or resolved since.
Alerts of a deleted rule stay listed (the rule is soft-deleted).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..schemas import AlertOut, AlertPage
from ..store import Alert, AlertEvent, Database, Rule, User
from ..store.lifecycle import acknowledge_alert
from ..store.types import utcnow
from .cursors import decode_cursor, encode_cursor
from .errors import InvalidInput, NotFound
from .limits import clamp_limit
from .notifications import notifications_of
from .rules import find_rule, is_id
from .times import parse_since

__all__ = ["AlertService"]

STATES = ("firing", "resolved")


class AlertService:
    def __init__(self, db: Database, user_id: int) -> None:
        self.db = db
        self.user_id = user_id

    def list(
        self,
        rule: int | str | None = None,
        state: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AlertPage:
        limit = clamp_limit(limit)
        if state is not None and state not in STATES:
            raise InvalidInput(f"state must be 'firing' or 'resolved' (or left out for both); got {state[:40]!r}.")
        stmt = select(Alert).where(Alert.owner_id == self.user_id)
        if state is not None:
            stmt = stmt.where(Alert.state == state)
        if since is not None:  # firing at any time since then: started since, still firing, or resolved since
            moment = parse_since(since, utcnow())
            stmt = stmt.where(or_(Alert.started_at >= moment, Alert.state == "firing", Alert.resolved_at >= moment))
        if cursor:
            started, alert_id = decode_cursor("alerts", cursor, 2)
            try:
                position = datetime.fromisoformat(started)
            except (TypeError, ValueError):
                raise InvalidInput("cursor is not one this tool returned; leave it out to start again.") from None
            stmt = stmt.where(
                or_(Alert.started_at < position, and_(Alert.started_at == position, Alert.id < alert_id))
            )
        with self.db.session() as session:
            if rule is not None:
                stmt = stmt.where(Alert.rule_id == self._rule_id(session, rule))
            rows = _named(session, session.scalars(
                stmt.order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit + 1)).all())
            more = len(rows) > limit
            rows = rows[:limit]
            sent = notifications_of(session, self.user_id, [row[0].id for row in rows])
        alerts = [_out(alert, rule_name, deleted_at is not None, acked_by, sent.get(alert.id, []))
                  for alert, rule_name, deleted_at, acked_by in rows]
        next_cursor = None
        if more:
            last = rows[-1][0]
            next_cursor = encode_cursor("alerts", last.started_at.isoformat(), last.id)
        return AlertPage(alerts=alerts, next_cursor=next_cursor)

    def acknowledge(self, alert_id: int) -> AlertOut:
        if isinstance(alert_id, bool) or not isinstance(alert_id, int) or not 0 < alert_id < 2**63:
            raise InvalidInput("alert must be an alert id, a positive number from list_alerts.")
        with self.db.session() as session:
            alert = session.scalars(
                select(Alert).where(Alert.id == alert_id, Alert.owner_id == self.user_id)
            ).first()
            if alert is None:
                raise NotFound(f"No alert {alert_id}: use list_alerts to see your alerts and their ids.")
            event = acknowledge_alert(alert, self.user_id, utcnow())  # also cancels an escalation not yet due
            if event is not None:
                session.add(AlertEvent(**event.row(), user_id=self.user_id))
                session.flush()
            rule = session.get(Rule, alert.rule_id)
            acked_by = session.scalar(select(User.name).where(User.id == alert.acknowledged_by))
            sent = notifications_of(session, self.user_id, [alert.id]).get(alert.id, [])
            return _out(alert, rule.name if rule else "?", bool(rule and rule.deleted_at), acked_by, sent)

    def _rule_id(self, session: Session, ref: int | str) -> int:
        """A rule filter may name a deleted rule by id, to read the history it left."""
        text = str(ref).strip()
        if is_id(text):
            found = session.scalar(select(Rule.id).where(Rule.id == int(text), Rule.owner_id == self.user_id))
            if found is not None:
                return found
        return find_rule(session, self.user_id, ref).id


def _named(session: Session, alerts: list[Alert]) -> list[tuple[Alert, str, datetime | None, str | None]]:
    """``(alert, rule name, rule's deleted_at, acknowledger's name)`` for a page of alerts.

    The page is read from ``alerts`` alone, then the names of its few rules and users: with
    the rules joined into the page query, MariaDB's optimizer started from the user's rules
    and sorted every one of their alerts (350 ms at 100,000 alerts, against 0.6 ms)."""
    if not alerts:
        return []
    rules = {rule_id: (name, deleted_at) for rule_id, name, deleted_at in session.execute(
        select(Rule.id, Rule.name, Rule.deleted_at).where(Rule.id.in_({a.rule_id for a in alerts})))}
    acked_ids = {a.acknowledged_by for a in alerts if a.acknowledged_by is not None}
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(acked_ids))).all()) if acked_ids else {}
    return [(a, *rules.get(a.rule_id, ("?", None)), names.get(a.acknowledged_by)) for a in alerts]


def _out(alert: Alert, rule_name: str, rule_deleted: bool, acked_by: str | None,
         notifications: list | None = None) -> AlertOut:
    return AlertOut(
        id=alert.id,
        rule_id=alert.rule_id,
        rule_name=rule_name,
        rule_deleted=rule_deleted,
        labels=alert.labels or {},
        severity=alert.severity,
        state="resolved" if alert.state == "resolved" else "firing",
        started_at=alert.started_at,
        resolved_at=alert.resolved_at,
        values_at_start=alert.values_at_start,
        values_at_resolution=alert.values_at_resolution,
        acknowledged_by=acked_by,
        acknowledged_at=alert.acknowledged_at,
        notifications=notifications or [],
    )
