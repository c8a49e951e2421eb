"""Silences of one user's rules: add one (now or later), list them, end one early.

A silence holds a rule's notifications back between ``starts_at`` and ``ends_at``
(the engine records them as ``silenced``; alerts are still recorded). Silencing a
span that overlaps or touches a silence the rule already has extends that one
instead of adding a second; ending a silence early sets its end to now, and one
that has not started yet is cancelled, so its row stays as a record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from ..schemas import SilenceList, SilenceOut
from ..store import Database, Rule, Silence
from ..store.types import utcnow
from .errors import InvalidInput, NotFound
from .quotas import check_silence_quota
from .limits import MAX_COMMENT, check_length
from .rules import find_rule
from .times import parse_duration, parse_time

__all__ = ["MAX_SILENCE", "SilenceService"]

MAX_SILENCE = timedelta(days=365)
SILENCES_SHOWN = 200


def _out(silence: Silence, rule_name: str, now: datetime, *, extended: bool = False) -> SilenceOut:
    return SilenceOut(
        id=silence.id,
        rule_id=silence.rule_id,
        rule_name=rule_name,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        comment=silence.comment,
        active=silence.starts_at <= now < silence.ends_at,
        extended=extended,
    )


class SilenceService:
    def __init__(self, db: Database, user_id: int) -> None:
        self.db = db
        self.user_id = user_id

    def _span(self, duration: str | None, until: str | None, start: str | None,
              now: datetime) -> tuple[datetime, datetime]:
        if (duration is None) == (until is None):
            raise InvalidInput("Give exactly one of duration (such as 2h or 1d) or until (an ISO 8601 time).",
                               hint='e.g. duration="2h", or start="2025-06-07T00:00:00Z" until="2025-06-09T00:00:00Z"'
                                    " for a weekend")
        begins = now if start is None else max(now, parse_time("start", start))
        if start is not None and begins - now > MAX_SILENCE:
            raise InvalidInput("start is more than 365 days ahead.", hint="give a start within the next year")
        if duration is not None:
            ends = begins + parse_duration("duration", duration)
        else:
            ends = parse_time("until", until or "")
            if ends <= now:
                raise InvalidInput(f"until {until!r} is in the past; give a future time.")
            if ends <= begins:
                raise InvalidInput("until must be after start.", hint="give an until later than start")
        if ends - begins > MAX_SILENCE:
            raise InvalidInput("A silence may last at most 365 days; disable the rule instead with update_alert_rule.")
        return begins, ends

    def add(self, ref: int | str, duration: str | None = None, until: str | None = None,
            comment: str | None = None, start: str | None = None) -> SilenceOut:
        now = utcnow()
        begins, ends = self._span(duration, until, start, now)
        if comment is not None:
            check_length("comment", comment, MAX_COMMENT)
        with self.db.session() as session:
            rule = find_rule(session, self.user_id, ref)
            touching = list(session.scalars(
                select(Silence).where(Silence.rule_id == rule.id, Silence.owner_id == self.user_id,
                                      Silence.ends_at > now, Silence.ends_at >= begins, Silence.starts_at <= ends)
                .order_by(Silence.id)))
            if touching:
                kept, *merged = touching
                kept.starts_at = min([begins, *(s.starts_at for s in touching)])
                kept.ends_at = max([ends, *(s.ends_at for s in touching)])
                if comment is not None:
                    kept.comment = comment
                for other in merged:
                    session.delete(other)
                session.flush()
                return _out(kept, rule.name, now, extended=True)
            check_silence_quota(session, self.user_id)
            silence = Silence(owner_id=self.user_id, rule_id=rule.id, starts_at=begins, ends_at=ends,
                              comment=comment, created_at=now)
            session.add(silence)
            session.flush()
            return _out(silence, rule.name, now)

    def list(self, ref: int | str | None = None) -> SilenceList:
        """Silences in force or still to come (newest end last), of one rule or of all."""
        now = utcnow()
        stmt = (select(Silence, Rule.name).join(Rule, Rule.id == Silence.rule_id)
                .where(Silence.owner_id == self.user_id, Silence.ends_at > now, Rule.deleted_at.is_(None)))
        with self.db.session() as session:
            if ref is not None:
                stmt = stmt.where(Silence.rule_id == find_rule(session, self.user_id, ref).id)
            rows = session.execute(stmt.order_by(Silence.starts_at, Silence.id).limit(SILENCES_SHOWN)).all()
            return SilenceList(silences=[_out(silence, name, now) for silence, name in rows])

    def end(self, silence_id: int) -> SilenceOut:
        """Ends a silence now (one still to come is cancelled); ending an ended one changes nothing."""
        if isinstance(silence_id, bool) or not isinstance(silence_id, int) or not 0 < silence_id < 2**63:
            raise InvalidInput("silence must be a silence id, a positive number from list_silences.")
        now = utcnow()
        with self.db.session() as session:
            row = session.execute(
                select(Silence, Rule.name).join(Rule, Rule.id == Silence.rule_id)
                .where(Silence.id == silence_id, Silence.owner_id == self.user_id)).first()
            if row is None:
                raise NotFound(f"No silence {silence_id}: list_silences shows yours and their ids.")
            silence, name = row
            if silence.ends_at > now:
                silence.ends_at = now
                if silence.starts_at > now:
                    silence.starts_at = now
                session.flush()
            return _out(silence, name, now)
