"""Alert history of one user: list it page by page, acknowledge an alert.

Alerts are written by the engine; here they are only read and acknowledged.
Alerts of a deleted rule stay listed (the rule is soft-deleted).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from ..schemas import AlertOut, AlertPage
from ..store import Alert, AlertEvent, Database, Rule, User
from ..store.types import utcnow
from .cursors import decode_cursor, encode_cursor
from .errors import InvalidInput, NotFound
from .limits import clamp_limit
from .rules import find_rule
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
        acked = aliased(User)
        stmt = (
            select(Alert, Rule.name, Rule.deleted_at, acked.name)
            .join(Rule, Rule.id == Alert.rule_id)
            .outerjoin(acked, acked.id == Alert.acknowledged_by)
            .where(Alert.owner_id == self.user_id)
        )
        if state is not None:
            stmt = stmt.where(Alert.state == state)
        if since is not None:
            stmt = stmt.where(Alert.started_at >= parse_since(since, utcnow()))
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
            rows = session.execute(stmt.order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        alerts = [_out(alert, rule_name, deleted_at is not None, acked_by) for alert, rule_name, deleted_at, acked_by in rows]
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
            if alert.acknowledged_at is None:
                now = utcnow()
                alert.acknowledged_by = self.user_id
                alert.acknowledged_at = now
                session.add(
                    AlertEvent(alert_id=alert.id, at=now, kind="acknowledged", to_state=alert.state, user_id=self.user_id)
                )
                session.flush()
            rule = session.get(Rule, alert.rule_id)
            acked_by = session.scalar(select(User.name).where(User.id == alert.acknowledged_by))
            return _out(alert, rule.name if rule else "?", bool(rule and rule.deleted_at), acked_by)

    def _rule_id(self, session: Session, ref: int | str) -> int:
        """A rule filter may name a deleted rule by id, to read the history it left."""
        text = str(ref).strip()
        if text.isdigit() and len(text) < 19:
            found = session.scalar(select(Rule.id).where(Rule.id == int(text), Rule.owner_id == self.user_id))
            if found is not None:
                return found
        return find_rule(session, self.user_id, ref).id


def _out(alert: Alert, rule_name: str, rule_deleted: bool, acked_by: str | None) -> AlertOut:
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
    )
