"""The outbox dispatcher: due ``pending`` rows → rendered → delivered → ``sent``, at least once.

One :meth:`Dispatcher.dispatch` pass:

1. *claims* a batch of due rows (``pending`` with ``next_attempt_at <= now``,
   oldest first, or ``sending`` rows whose claim ran out — a dispatcher that
   died mid-send): each claim is a conditional update to ``sending`` with a
   claim deadline and the replica's name, so two dispatchers never send the
   same row at once; the first pass of a dispatcher takes the rows its own
   replica had claimed at once (an engine restarted under the same name has
   nothing in flight), the rows of others when their claim runs out;
2. renders the title and message with the rule's templates (bounded Jinja2
   sandbox, ``engine.notify``) from the row's payload — a resolved
   notification carries the values at resolution;
3. decrypts the channel's URL and delivers through apprise, one attempt per
   pass (a few in parallel);
4. on success marks the row ``sent`` and writes a ``sent`` row in the
   notification log, in one transaction; on failure writes an ``error`` row,
   counts the attempt and schedules the next one with exponential backoff, or
   marks the row ``failed`` when the next attempt would fall after the
   deadline (counted from the row's creation).

Nothing is dropped silently: a row whose channel was deleted, whose template
does not render or whose URL cannot be decrypted ends ``failed`` with the
reason in ``last_error``; reasons never hold a channel's secret. A crash
between delivering and marking can only send again (at-least-once).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Mapping

from sqlalchemy import and_, func, or_, select, update

from monitors_mcp.store import Database, NotificationChannel, NotificationLog, NotificationOutbox
from monitors_mcp.store.types import utcnow

from . import RenderedNotification, RenderError, RetryPolicy, deliver, redact, render_notification
from ..repository import notification_from_dict

__all__ = ["Dispatcher", "DispatchReport", "render_payload"]

log = logging.getLogger(__name__)


def render_payload(payload: Mapping) -> RenderedNotification:
    """Title and message of an outbox payload (raises ``engine.notify.RenderError``)."""
    rule = payload.get("rule") or {}
    notification = notification_from_dict(payload["notification"])
    return render_notification(notification, rule_name=rule.get("name"), condition=rule.get("condition") or "",
                               labels=payload.get("labels") or {}, description=rule.get("description"),
                               title=rule.get("title"), message=rule.get("message"))


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass
class _Job:
    id: int
    attempts: int
    created_at: datetime
    channel_id: int | None = None
    alert_id: int | None = None
    url: str | None = None
    message: RenderedNotification | None = None
    error: str | None = None  # a reason that makes the row fail without an attempt


_DEFERRED = "deferred"  # an outcome: not attempted, an earlier notification of the alert must go first


class Dispatcher:
    """Sends due outbox rows; see the module docstring. ``secrets`` is a ``SecretBox``."""

    def __init__(self, db: Database, secrets, *, batch: int = 100, workers: int = 4, attempt_timeout: float = 30.0,
                 deadline: float = 3600.0, first_backoff: float = 10.0, max_backoff: float = 600.0,
                 clock: Callable[[], datetime] = utcnow, replica: str | None = None) -> None:
        self.db = db
        self.replica = replica  # the engine replica's name, written on the rows it claims
        self._recovered = replica is None
        self.secrets = secrets
        self.batch = batch
        self.workers = workers
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.clock = clock

    def backoff(self, attempts: int) -> float:
        """The wait after ``attempts`` failed attempts."""
        return min(self.max_backoff, self.first_backoff * 2 ** max(0, attempts - 1))

    # -- one pass --------------------------------------------------------------------------

    def dispatch(self, now: datetime | None = None) -> DispatchReport:
        """Send what is due now; returns what happened."""
        now = now or self.clock()
        report = DispatchReport()
        if not self._recovered:
            self._take_back(now)
        jobs = self._claim(now)
        if not jobs:
            return report
        policy = RetryPolicy(deadline=self.attempt_timeout, attempt_timeout=self.attempt_timeout,
                             first_delay=self.attempt_timeout + 1, max_delay=self.attempt_timeout + 1)
        lanes: dict[int, list[_Job]] = {}  # one lane per channel: a channel gets its messages in order
        for job in jobs:
            if job.error is None:
                lanes.setdefault(job.channel_id, []).append(job)
        outcomes = {}
        if lanes:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(lanes)), thread_name_prefix="dispatch") as pool:
                futures = [pool.submit(self._send_lane, lane, policy) for lane in lanes.values()]
                for future in futures:
                    outcomes.update(future.result())
        for job in jobs:
            delivered, reason = (False, job.error) if job.error is not None else outcomes[job.id]
            self._finish(job, delivered, reason, permanent=job.error is not None, report=report)
        return report

    def _send_lane(self, lane: list[_Job], policy: RetryPolicy) -> dict[int, tuple[bool, str | None]]:
        outcomes = {}
        failed_alerts: set[int] = set()
        for job in lane:
            if job.alert_id is not None and job.alert_id in failed_alerts:
                outcomes[job.id] = (False, _DEFERRED)
                continue
            outcomes[job.id] = self._send(job, policy)
            if not outcomes[job.id][0] and job.alert_id is not None:
                failed_alerts.add(job.alert_id)
        return outcomes

    def _send(self, job: _Job, policy: RetryPolicy) -> tuple[bool, str | None]:
        try:
            (outcome,) = deliver(job.message, [job.url], policy)
        except Exception as error:  # never let one channel take the dispatcher down
            return False, redact(f"{type(error).__name__}: {error}")[:500]
        return outcome.delivered, outcome.reason

    def _take_back(self, now: datetime) -> None:
        """Rows this replica claimed before it was restarted: due now (they were not finished)."""
        table = NotificationOutbox
        with self.db.session() as session:
            taken = session.execute(update(table).where(table.status == "sending", table.claimed_by == self.replica)
                                    .values(next_attempt_at=now)).rowcount
        self._recovered = True
        if taken:
            log.warning("taking back %d notifications this replica was sending when it stopped", taken)

    def _claim(self, now: datetime) -> list[_Job]:
        table = NotificationOutbox
        claim_until = now + timedelta(seconds=self.attempt_timeout * 2 + 30)
        jobs: list[_Job] = []
        with self.db.session() as session:
            candidates = session.execute(
                select(table.id, table.status, table.next_attempt_at, table.alert_id, table.channel_id)
                .where(table.status.in_(("pending", "sending")),
                       or_(table.next_attempt_at.is_(None), table.next_attempt_at <= now))
                .order_by(table.next_attempt_at, table.id).limit(self.batch)
            ).all()
            candidates = self._in_order(session, candidates, now)
        for row_id, status, due, _alert, _channel in candidates:
            with self.db.session() as session:
                condition = [table.id == row_id, table.status == status]
                condition.append(table.next_attempt_at.is_(None) if due is None else table.next_attempt_at == due)
                claimed = session.execute(update(table).where(and_(*condition))
                                          .values(status="sending", next_attempt_at=claim_until,
                                                  claimed_by=self.replica)).rowcount
                if claimed != 1:
                    continue  # another dispatcher took it
                row = session.get(table, row_id)
                jobs.append(self._prepare(session, row))
        return jobs

    def _in_order(self, session, candidates, now: datetime) -> list:
        """The candidates that may go now, oldest first: a notification of an alert waits while an earlier
        one of the same alert to the same channel is unsent and not due (being retried, or being sent),
        so a receiver never gets "resolved" before "firing"."""
        table = NotificationOutbox
        alerts = {row.alert_id for row in candidates if row.alert_id is not None}
        blocked_before: dict[tuple, int] = {}
        if alerts:
            waiting = session.execute(
                select(table.alert_id, table.channel_id, func.min(table.id))
                .where(table.alert_id.in_(alerts), table.status.in_(("pending", "sending")),
                       table.next_attempt_at.is_not(None), table.next_attempt_at > now)
                .group_by(table.alert_id, table.channel_id)
            ).all()
            blocked_before = {(alert, channel): first for alert, channel, first in waiting}
        allowed = [row for row in candidates
                   if row.alert_id is None or row.id < blocked_before.get((row.alert_id, row.channel_id), row.id + 1)]
        return sorted(allowed, key=lambda row: row.id)

    def _prepare(self, session, row: NotificationOutbox) -> _Job:
        job = _Job(row.id, row.attempts, row.created_at, row.channel_id, row.alert_id)
        if row.channel_id is None:
            name = (row.payload or {}).get("channel")
            job.error = row.last_error or (f"notification channel {name!r} was deleted" if name
                                           else "notification channel was deleted")
            return job
        channel = session.get(NotificationChannel, row.channel_id)
        if channel is None:
            job.error = "notification channel was deleted"
            return job
        try:
            job.message = render_payload(row.payload)
        except RenderError as error:
            job.error = str(error)
            return job
        except Exception as error:  # a payload this version cannot read
            job.error = f"cannot render the notification: {type(error).__name__}: {error}"[:500]
            return job
        try:
            job.url = self.secrets.decrypt(channel.url_encrypted)
        except Exception as error:
            job.error = str(error)[:500]
        return job

    def _finish(self, job: _Job, delivered: bool, reason: str | None, *, permanent: bool,
                report: DispatchReport) -> None:
        now = self.clock()
        if reason == _DEFERRED and not permanent:
            with self.db.session() as session:
                row = session.get(NotificationOutbox, job.id)
                if row is not None:
                    row.status, row.next_attempt_at = "pending", None
            return
        attempts = job.attempts + (0 if permanent else 1)
        with self.db.session() as session:
            row = session.get(NotificationOutbox, job.id)
            if row is None:
                return
            row.attempts = attempts
            if delivered:
                row.status, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, None, None
                session.add(NotificationLog(outbox_id=job.id, attempt=attempts, at=now, status="sent"))
                report.sent += 1
                return
            reason = (reason or "delivery failed")[:2000]
            row.last_error = reason
            if not permanent:
                session.add(NotificationLog(outbox_id=job.id, attempt=attempts, at=now, status="error",
                                            error=reason))
            next_at = now + timedelta(seconds=self.backoff(attempts))
            deadline = (job.created_at or now) + timedelta(seconds=self.deadline)
            if permanent or next_at > deadline:
                row.status, row.next_attempt_at = "failed", None
                report.failed += 1
                report.errors.append(reason)
                log.warning("notification %s failed for good after %d attempts: %s", job.id, attempts, reason)
            else:
                row.status, row.next_attempt_at = "pending", next_at
                report.retried += 1
                log.info("notification %s: attempt %d failed (%s); next at %s", job.id, attempts, reason,
                         next_at.isoformat())
