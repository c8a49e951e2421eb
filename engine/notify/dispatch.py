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

A channel with ``group_by`` (its policies) sends the due rows of one group as one message
(:mod:`.grouping` says which group and when it is due): the dispatcher first claims the group itself
(a conditional update of its ``notification_groups`` row, so one dispatcher at a time sends a group),
then all of the group's rows; the message lists each row's title (the channel's group templates,
:func:`.render_group`); delivered, every row is ``sent`` with its own log row and the group's
``last_sent_at`` is set; failed, every row counts the attempt and they are retried together at the
same time (the backoff of the row tried most, each row failing for good past its own deadline).
A crash before the outcome is written may send a group again when its claim runs out, never lose it.

Nothing is dropped silently: a row whose channel was deleted, whose template
does not render or whose URL cannot be decrypted ends ``failed`` with the
reason in ``last_error``; reasons never hold a channel's secret. A crash
between delivering and marking can only send again (at-least-once).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Mapping

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from monitors_mcp.store import Database, NotificationChannel, NotificationGroup, NotificationLog, NotificationOutbox
from monitors_mcp.store.types import utcnow

from . import (RenderedNotification, RenderError, RetryPolicy, deliver, redact, render_group, render_notification,
               template_variables)
from ..repository import notification_from_dict
from .grouping import group_due, group_key, group_labels

__all__ = ["Dispatcher", "DispatchReport", "GROUP_LIMIT", "render_payload"]

log = logging.getLogger(__name__)

#: the most notifications one group message carries; more go in the group's next message
GROUP_LIMIT = 1000
#: the most unsent rows of one grouped channel one pass reads
GROUP_SCAN = 5000
#: how often a dispatcher forgets the timing of groups that wait for nothing (a group_interval is at most a day)
GROUP_PRUNE_EVERY = timedelta(minutes=10)
GROUP_FORGET_AFTER = timedelta(days=1)


def render_payload(payload: Mapping) -> RenderedNotification:
    """Title and message of an outbox payload (raises ``engine.notify.RenderError``)."""
    rule = payload.get("rule") or {}
    notification = notification_from_dict(payload["notification"])
    return render_notification(notification, rule_name=rule.get("name"), condition=rule.get("condition") or "",
                               labels=payload.get("labels") or {}, description=rule.get("description"),
                               title=rule.get("title"), message=rule.get("message"))


def payload_variables(payload: Mapping) -> dict:
    """The template variables of an outbox payload, as its own message would see them."""
    rule = payload.get("rule") or {}
    return template_variables(notification_from_dict(payload["notification"]), rule_name=rule.get("name"),
                              condition=rule.get("condition") or "", labels=payload.get("labels") or {},
                              description=rule.get("description"))


def _read_payload(job, payload: Mapping, *, variables: bool = False) -> dict | None:
    """Renders an outbox payload into ``job.message`` and returns its template variables when asked (else
    ``{}``), or sets ``job.error`` to why it cannot be rendered and returns None: a template that fails, or a
    payload this version cannot read."""
    try:
        job.message = render_payload(payload)
        return payload_variables(payload) if variables else {}
    except RenderError as error:
        job.error = str(error)
    except Exception as error:  # a payload this version cannot read
        job.error = f"cannot render the notification: {type(error).__name__}: {error}"[:500]
    return None


@dataclass
class DispatchReport:
    """What one pass did, counted in notifications (``groups``: grouped messages delivered)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    groups: int = 0

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


@dataclass
class _GroupJob:
    """The claimed rows of one group of one channel, sent as one message."""

    group_id: int
    channel_id: int
    token: str
    claimed_until: datetime
    labels: dict
    rows: list[_Job]  # the rows to send (a row that cannot be rendered is in ``broken`` instead)
    broken: list[_Job] = field(default_factory=list)
    overflow: bool = False  # more rows of the group were due than one message carries
    url: str | None = None
    message: RenderedNotification | None = None
    error: str | None = None  # a reason that makes every row fail without an attempt


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
        self.token = replica or f"dispatcher-{uuid.uuid4().hex[:12]}"  # who holds a group's claim
        self._keys: dict[int, tuple[tuple[str, ...], dict]] = {}  # grouped channel → (group_by, row id → group)
        self._pruned_at: datetime | None = None

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
        grouped = self._grouped_channels()
        self._prune_groups(now)
        jobs = self._claim(now, set(grouped))
        groups = self._claim_groups(now, grouped) if grouped else []
        if not jobs and not groups:
            return report
        policy = RetryPolicy(deadline=self.attempt_timeout, attempt_timeout=self.attempt_timeout,
                             first_delay=self.attempt_timeout + 1, max_delay=self.attempt_timeout + 1)
        lanes: dict[int, list] = {}  # one lane per channel: a channel gets its messages in order
        for job in jobs:
            if job.error is None:
                lanes.setdefault(job.channel_id, []).append(job)
        for group in groups:
            if group.error is None and group.rows:
                lanes.setdefault(group.channel_id, []).append(group)
        outcomes = {}
        if lanes:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(lanes)), thread_name_prefix="dispatch") as pool:
                futures = [pool.submit(self._send_lane, lane, policy) for lane in lanes.values()]
                for future in futures:
                    outcomes.update(future.result())
        for job in jobs:
            delivered, reason = (False, job.error) if job.error is not None else outcomes[job.id]
            self._finish(job, delivered, reason, permanent=job.error is not None, report=report)
        for group in groups:
            for job in group.broken:
                self._finish(job, False, job.error, permanent=True, report=report)
            if group.error is not None:
                for job in group.rows:
                    self._finish(job, False, group.error, permanent=True, report=report)
                self._release(group, sent=False, settled=not group.overflow)
            elif not group.rows:
                self._release(group, sent=False)
            else:
                delivered, reason = outcomes[("group", group.group_id)]
                self._finish_group(group, delivered, reason, report)
        return report

    def _send_lane(self, lane: list, policy: RetryPolicy) -> dict:
        outcomes = {}
        failed_alerts: set[int] = set()
        for job in lane:
            if isinstance(job, _GroupJob):
                outcomes[("group", job.group_id)] = self._send(job, policy)
                continue
            if job.alert_id is not None and job.alert_id in failed_alerts:
                outcomes[job.id] = (False, _DEFERRED)
                continue
            outcomes[job.id] = self._send(job, policy)
            if not outcomes[job.id][0] and job.alert_id is not None:
                failed_alerts.add(job.alert_id)
        return outcomes

    def _send(self, job, policy: RetryPolicy) -> tuple[bool, str | None]:
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
            session.execute(update(NotificationGroup).where(NotificationGroup.claimed_by == self.replica)
                            .values(claimed_by=None, claimed_until=None))
        self._recovered = True
        if taken:
            log.warning("taking back %d notifications this replica was sending when it stopped", taken)

    def _claim_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.attempt_timeout * 2 + 30)

    def _claim(self, now: datetime, grouped: set[int] = frozenset()) -> list[_Job]:
        """Due rows of channels that do not group, each claimed on its own."""
        table = NotificationOutbox
        claim_until = self._claim_until(now)
        jobs: list[_Job] = []
        where = [table.status.in_(("pending", "sending")),
                 or_(table.next_attempt_at.is_(None), table.next_attempt_at <= now)]
        if grouped:
            where.append(or_(table.channel_id.is_(None), table.channel_id.not_in(sorted(grouped))))
        with self.db.session() as session:
            candidates = session.execute(
                select(table.id, table.status, table.next_attempt_at, table.alert_id, table.channel_id)
                .where(*where)
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

    # -- grouped channels ------------------------------------------------------------------

    def _grouped_channels(self) -> dict[int, tuple[tuple[str, ...], int | None, int | None]]:
        """Channels with ``group_by`` and unsent rows: id → (group_by, group_wait, group_interval)."""
        channel, table = NotificationChannel, NotificationOutbox
        with self.db.session() as session:
            rows = session.execute(
                select(channel.id, channel.group_by, channel.group_wait_seconds, channel.group_interval_seconds)
                .where(channel.group_by.is_not(None),
                       exists().where(table.channel_id == channel.id, table.status.in_(("pending", "sending"))))
            ).all()
        return {row.id: (tuple(str(name) for name in row.group_by), row.group_wait_seconds,
                         row.group_interval_seconds)
                for row in rows if isinstance(row.group_by, list) and row.group_by}

    def _prune_groups(self, now: datetime) -> None:
        """Forget groups with nothing unsent whose last message is older than any group interval: their next
        notification starts with group_wait either way (``grouping.group_due``)."""
        if self._pruned_at is not None and now - self._pruned_at < GROUP_PRUNE_EVERY:
            return
        self._pruned_at = now
        model = NotificationGroup
        with self.db.session() as session:
            session.execute(model.__table__.delete().where(
                model.pending_since.is_(None), model.claimed_until.is_(None),
                or_(model.last_sent_at.is_(None), model.last_sent_at < now - GROUP_FORGET_AFTER)))

    def _claim_groups(self, now: datetime, grouped: Mapping) -> list[_GroupJob]:
        jobs: list[_GroupJob] = []
        for channel_id, (group_by, wait, interval) in grouped.items():
            jobs.extend(self._claim_channel_groups(now, channel_id, group_by, wait, interval))
        return jobs

    def _unsent(self, session, channel_id: int, group_by: tuple[str, ...], after: int = 0) -> dict[str, list]:
        """The channel's ``pending``/``sending`` rows (id above ``after``) by group key, oldest first. A row's
        group is worked out from its payload once (remembered while the row is unsent and ``group_by`` stays)."""
        table = NotificationOutbox
        rows = session.execute(
            select(table.id, table.status, table.next_attempt_at)
            .where(table.channel_id == channel_id, table.status.in_(("pending", "sending")), table.id > after)
            .order_by(table.id).limit(GROUP_SCAN)
        ).all()
        known_by, keys = self._keys.get(channel_id, (group_by, {}))
        if known_by != group_by:
            keys = {}
        missing = [row.id for row in rows if row.id not in keys]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            for row_id, payload in session.execute(select(table.id, table.payload).where(table.id.in_(chunk))):
                labels = group_labels(group_by, payload or {})
                keys[row_id] = (group_key(labels, group_by), labels)
        if not after:  # a whole scan: forget the rows that are no longer unsent
            present = {row.id for row in rows}
            keys = {row_id: known for row_id, known in keys.items() if row_id in present}
        self._keys[channel_id] = (group_by, keys)
        groups: dict[str, list] = defaultdict(list)
        for row in rows:
            if row.id in keys:  # (a row deleted between the two reads is gone)
                key, labels = keys[row.id]
                groups[key].append((row, labels))
        return groups

    def _due(self, state: NotificationGroup, rows, wait, interval, now: datetime) -> datetime | None:
        """When the group may go: its timing, and no sooner than its rows' retries; None while it is sent."""
        retry = None
        for row, _ in rows:
            if row.status == "sending" and row.next_attempt_at is not None and row.next_attempt_at > now:
                return None  # another dispatcher is sending it (its claim has not run out)
            if row.status == "pending" and row.next_attempt_at is not None:
                retry = row.next_attempt_at if retry is None else max(retry, row.next_attempt_at)
        due = group_due(state.pending_since or now, state.last_sent_at, wait_seconds=wait,
                        interval_seconds=interval)
        return max(due, retry) if retry is not None else due

    def _group_states(self, channel_id: int, keys: dict[str, dict], now: datetime) -> dict[str, NotificationGroup]:
        """The groups' timing rows, made when first seen; ``pending_since`` set where it was not."""
        model = NotificationGroup
        with self.db.session() as session:
            states = {row.group_key: row for row in session.scalars(
                select(model).where(model.channel_id == channel_id, model.group_key.in_(list(keys))))}
            session.expunge_all()
        for key, labels in keys.items():
            if key not in states:
                try:
                    with self.db.session() as session:
                        session.add(model(channel_id=channel_id, group_key=key, labels=labels, pending_since=now))
                except IntegrityError:  # another dispatcher made it first
                    pass
            elif states[key].pending_since is None:
                with self.db.session() as session:
                    session.execute(update(model).where(model.id == states[key].id, model.pending_since.is_(None))
                                    .values(pending_since=now))
            else:
                continue
            with self.db.session() as session:
                states[key] = session.scalars(select(model).where(model.channel_id == channel_id,
                                                                  model.group_key == key)).one()
                session.expunge(states[key])
        return states

    def _claim_channel_groups(self, now: datetime, channel_id: int, group_by: tuple[str, ...], wait, interval,
                              ) -> list[_GroupJob]:
        with self.db.session() as session:
            unsent = self._unsent(session, channel_id, group_by)
        if not unsent:
            return []
        seen = max(row.id for rows in unsent.values() for row, _ in rows)
        states = self._group_states(channel_id, {key: rows[0][1] for key, rows in unsent.items()}, now)
        jobs = []
        for key, rows in unsent.items():
            due = self._due(states[key], rows, wait, interval, now)
            if due is None or due > now:
                continue
            job = self._claim_group(now, channel_id, group_by, wait, interval, key, states[key], rows, seen)
            if job is not None:
                jobs.append(job)
        return jobs

    def _claim_group(self, now, channel_id, group_by, wait, interval, key, state, rows, seen) -> _GroupJob | None:
        model, table = NotificationGroup, NotificationOutbox
        claim_until = self._claim_until(now)
        with self.db.session() as session:
            locked = session.execute(
                update(model).where(model.id == state.id,
                                    or_(model.claimed_until.is_(None), model.claimed_until <= now))
                .values(claimed_by=self.token, claimed_until=claim_until)).rowcount
        if locked != 1:
            return None  # another dispatcher is sending this group
        job = _GroupJob(state.id, channel_id, self.token, claim_until, dict(state.labels or {}), [])
        with self.db.session() as session:
            fresh = session.get(model, state.id)
            newer = self._unsent(session, channel_id, group_by, after=seen).get(key, [])
            rows = rows + newer
            due = self._due(fresh, rows, wait, interval, now) if fresh is not None else None
            if due is None or due > now:  # sent by another dispatcher meanwhile
                return self._release(job, sent=False)
            claimed = []
            for row, _ in rows:
                if len(claimed) >= GROUP_LIMIT:
                    job.overflow = True
                    break
                if row.status == "pending" and row.next_attempt_at is not None and row.next_attempt_at > now:
                    continue
                condition = [table.id == row.id, table.status == row.status]
                condition.append(table.next_attempt_at.is_(None) if row.next_attempt_at is None
                                 else table.next_attempt_at == row.next_attempt_at)
                if session.execute(update(table).where(and_(*condition))
                                   .values(status="sending", next_attempt_at=claim_until,
                                           claimed_by=self.replica)).rowcount == 1:
                    claimed.append(row.id)
        if not claimed:
            return self._release(job, sent=False)
        with self.db.session() as session:
            channel = session.get(NotificationChannel, channel_id)
            alerts = []
            for row_id in claimed:
                row = session.get(table, row_id)
                item = _Job(row.id, row.attempts, row.created_at, row.channel_id, row.alert_id)
                variables = _read_payload(item, row.payload, variables=True)
                if variables is None:
                    job.broken.append(item)
                    continue
                job.rows.append(item)
                alerts.append({**variables, "title": item.message.title})
            if channel is None:
                job.error = "notification channel was deleted"
                return job
            if job.rows:
                try:
                    job.message = render_group(alerts, group=job.labels, title=channel.group_title,
                                               message=channel.group_message)
                except RenderError as error:
                    job.error = str(error)
                    return job
                self._decrypt_url(job, channel)
        return job

    def _release(self, job: _GroupJob, *, sent: bool, session=None, settled: bool = False) -> None:
        """Give the group's claim back; ``sent``: its message went now (the next waits ``group_interval``);
        ``settled``: nothing of it is left to send (the next notification starts with ``group_wait``)."""
        model = NotificationGroup
        values: dict = {"claimed_by": None, "claimed_until": None}
        if settled:
            values["pending_since"] = None
        if sent:
            now = self.clock()
            values.update(last_sent_at=now, pending_since=now if job.overflow else None)
        statement = (update(model).where(model.id == job.group_id, model.claimed_by == job.token,
                                         model.claimed_until == job.claimed_until).values(**values))
        if session is not None:
            session.execute(statement)
            return None
        with self.db.session() as session:
            session.execute(statement)
        return None

    def _finish_group(self, job: _GroupJob, delivered: bool, reason: str | None, report: DispatchReport) -> None:
        """Every row of the message sent, or every row retried at one time (each failing past its deadline)."""
        now = self.clock()
        table = NotificationOutbox
        with self.db.session() as session:
            rows = [(job_row, session.get(table, job_row.id)) for job_row in job.rows]
            rows = [(job_row, row) for job_row, row in rows if row is not None]
            if delivered:
                for job_row, row in rows:
                    row.attempts = job_row.attempts + 1
                    row.status, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, None, None
                    session.add(NotificationLog(outbox_id=row.id, attempt=row.attempts, at=now, status="sent"))
                report.sent += len(rows)
                report.groups += 1
                self._release(job, sent=True, session=session)
                return
            reason = (reason or "delivery failed")[:2000]
            attempts = max((job_row.attempts + 1 for job_row, _ in rows), default=1)
            next_at = now + timedelta(seconds=self.backoff(attempts))
            retried = 0
            for job_row, row in rows:
                row.attempts = job_row.attempts + 1
                row.last_error = reason
                session.add(NotificationLog(outbox_id=row.id, attempt=row.attempts, at=now, status="error",
                                            error=reason))
                if next_at > (job_row.created_at or now) + timedelta(seconds=self.deadline):
                    row.status, row.next_attempt_at = "failed", None
                    report.failed += 1
                    report.errors.append(reason)
                else:
                    row.status, row.next_attempt_at = "pending", next_at
                    report.retried += 1
                    retried += 1
            self._release(job, sent=False, session=session, settled=not retried and not job.overflow)
        log.info("group message of %d notifications on channel %s failed (%s); next attempt at %s",
                 len(rows), job.channel_id, reason, next_at.isoformat())

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
        if _read_payload(job, row.payload) is not None:
            self._decrypt_url(job, channel)
        return job

    def _decrypt_url(self, job, channel: NotificationChannel) -> None:
        """The channel's apprise URL into ``job.url``, or why it cannot be decrypted into ``job.error``."""
        try:
            job.url = self.secrets.decrypt(channel.url_encrypted)
        except Exception as error:
            job.error = str(error)[:500]

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
