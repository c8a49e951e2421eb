"""Leases: which engine replica evaluates which rule, so that replicas share the rules without overlap.

Every enabled rule has a row in ``engine_leases`` (``rule_id``, ``holder``,
``expires_at``); a free row has the holder ``''`` and an expiry in the past.
Every running engine has a heartbeat row in ``engine_replicas``. A
:class:`LeasedRules` wraps the engine's rule set (``StoreRules``) and, before a
tick, at most every ``lease_duration / 3`` seconds (and whenever the rules
changed), *renews*:

1. its heartbeat and its own unexpired leases, to ``now + lease_duration``;
2. the lease rows: one (free) per enabled rule without one, none for a rule
   disabled or deleted;
3. its fair share: ``ceil(rules / live replicas)``, live replicas being the
   heartbeats that have not expired (this one included) — so a new replica is
   counted by the others before it holds anything;
4. above its share it releases leases (they become free at once); below it, it
   claims free or expired rows with ``SELECT … FOR UPDATE SKIP LOCKED``
   (MariaDB ≥ 10.6, MySQL ≥ 8): two replicas claiming at once lock different
   rows, and a row another one is renewing is skipped.

A replica evaluates only the rules whose lease it holds, and records a
result only while its lease has more than a safety margin left
(:meth:`LeasedRules.holds`; a slow tick extends the leases first). Another
replica takes a lease only once it has expired. So within a tick no rule is
evaluated by two replicas; a dead replica's rules are taken over when its
leases run out; and the outbox's idempotency keys make a takeover unable to
send a notification twice.

On SQLite (and for ``run --once``) the engine is *exclusive*: it takes every
lease, and refuses to start (:class:`LeaseConflict`) while another engine's
heartbeat or lease is unexpired — unless that engine was a process of this
host that no longer exists.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import zlib
from datetime import datetime, timedelta, timezone
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from monitors_mcp.store import EngineLease, EngineReplica, Rule, User
from monitors_mcp.store.types import utcnow

__all__ = ["LeasedRules", "LeaseConflict", "default_replica_id", "FREE"]

log = logging.getLogger(__name__)

#: the holder of a free lease
FREE = ""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CHUNK = 500


class LeaseConflict(RuntimeError):
    """Another engine holds the store this engine needs for itself alone."""


def default_replica_id() -> str:
    """``<hostname>-<pid>``: unique among running processes, readable in the store and the logs."""
    return f"{socket.gethostname()}-{os.getpid()}"[:128]


def _dead_local(holder: str) -> bool:
    """True when ``holder`` names a process of this host (``host-pid``) that does not exist any more."""
    host, _, pid = holder.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LeasedRules:
    """A ``RuleSet`` giving only the rules this replica holds a lease on; see the module docstring.

    ``rules`` is the wrapped rule set (``StoreRules``), ``db`` the store
    (``monitors_mcp.store.Database``), ``replica`` this engine's identity.
    ``exclusive`` (default: on SQLite) takes every lease and tolerates no
    other live engine.
    """

    def __init__(self, rules, db, replica: str, *, lease_duration: float = 30.0, exclusive: bool | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if lease_duration <= 0:
            raise ValueError("lease_duration must be positive")
        self.rules = rules
        self.db = db
        self.replica = replica
        self.lease_duration = float(lease_duration)
        self.exclusive = db.dialect == "sqlite" if exclusive is None else exclusive
        self.clock = clock
        #: rule ids this replica holds, valid until ``held_until`` (wall clock) / ``_valid_until`` (monotonic)
        self.held: frozenset[int] = frozenset()
        self.held_until: datetime | None = None
        self._valid_until = 0.0
        self.total = 0  # lease rows, i.e. enabled rules
        self.replicas = 1  # live replicas at the last renewal, this one included
        self.share = 0
        self.free_left = 0  # claimable leases left after the last renewal
        self.loaded = False  # the rules were read at least once
        self.takeovers = 0  # leases taken from another (expired) holder
        self.released = 0  # leases given up above the fair share
        self.renewals = 0
        self.discarded = 0  # results not recorded because the lease was about to run out
        self.last_renewal: float | None = None  # monotonic
        self.last_error: str | None = None
        self._reloads: object = object()
        self._syncs = 0
        self._lock = threading.RLock()
        # READ COMMITTED: no gap locks, so replicas renewing and claiming do not block each other's ranges
        engine = db.engine if db.dialect == "sqlite" else db.engine.execution_options(isolation_level="READ COMMITTED")
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- timing ----------------------------------------------------------------------------

    @property
    def renew_every(self) -> float:
        return self.lease_duration / 3

    @property
    def safety(self) -> float:
        """A result is recorded only while the lease has more than this left (clock skew, commit time)."""
        return min(2.0, self.lease_duration / 5)

    # -- the RuleSet protocol --------------------------------------------------------------

    def current(self) -> list:
        """The rules this replica holds, after renewing its leases when due."""
        rules = list(self.rules.current())
        self.loaded = True
        reloads = self.rules.reloads
        due = (self.last_renewal is None or time.monotonic() - self.last_renewal >= self.renew_every
               or reloads != self._reloads
               or self._valid_until - time.monotonic() < self.lease_duration * 2 / 3)
        if due:
            self.renew(sync=reloads != self._reloads)
            self._reloads = reloads
        if time.monotonic() >= self._valid_until - self.safety:
            return []
        held = self.held
        return [r for r in rules if r.store_id is not None and r.store_id in held]

    def holds(self, rule) -> bool:
        """Whether a result of ``rule`` may be recorded now: its lease is held for longer than the margin.

        A lease close to running out (a slow tick) is extended first.
        """
        rule_id = rule.store_id
        if rule_id is None or rule_id not in self.held:
            return False
        if self._valid_until - time.monotonic() > self.safety:
            return True
        try:
            self.extend()
        except Exception as error:  # the store is away: do not record what may no longer be ours
            log.warning("extending leases failed: %s", _describe(error))
        ok = rule_id in self.held and self._valid_until - time.monotonic() > self.safety
        if not ok:
            self.discarded += 1
        return ok

    def begin_tick(self, rules: Sequence, at: datetime) -> list:
        """The rules of ``rules`` this replica may evaluate for the due time ``at``: held, and not yet
        evaluated for ``at`` by any holder (``engine_leases.last_tick_at``, marked here). A rule handed over
        between two replicas' ticks at the same due time is thus evaluated once. Exclusive: all of them."""
        if self.exclusive:
            return list(rules)
        ids = [r.store_id for r in rules if r.store_id is not None and r.store_id in self.held]
        now = self.clock()
        allowed: set[int] = set()
        for chunk in _chunks(ids, 1000):
            with self._session() as session:
                mine = list(session.scalars(select(EngineLease.rule_id).where(
                    EngineLease.holder == self.replica, EngineLease.rule_id.in_(chunk), EngineLease.expires_at > now,
                    sa.or_(EngineLease.last_tick_at.is_(None), EngineLease.last_tick_at < at)).with_for_update()))
                if mine:
                    session.execute(update(EngineLease).where(EngineLease.rule_id.in_(mine))
                                    .values(last_tick_at=at))
                allowed.update(mine)
        if len(allowed) < len(ids):
            log.info("%d rules already evaluated for %s by another replica", len(ids) - len(allowed), at.isoformat())
        return [r for r in rules if r.store_id in allowed]

    # -- acquiring, renewing, releasing ----------------------------------------------------

    def acquire(self) -> None:
        """The first renewal; raises :class:`LeaseConflict` when exclusive and another engine is live."""
        self.rules.current()
        self.loaded = True
        self._reloads = self.rules.reloads
        self.renew(sync=True, first=True)

    def renew(self, *, sync: bool = False, first: bool = False) -> None:
        """Heartbeat, renew own leases, sync lease rows, then release or claim toward the fair share."""
        with self._lock:
            started = time.monotonic()
            now = self.clock()
            until = now + timedelta(seconds=self.lease_duration)
            try:
                if self.exclusive and first:
                    self._check_alone(now)
                _retry(self._heartbeat, now, until)
                self._syncs += 1
                if sync or self._syncs % 10 == 1:
                    _retry(self._sync_rows)
                _retry(self._take_all if self.exclusive else self._rebalance, now, until)
                self._load_held(now, until, started)
                self.last_error = None
            except LeaseConflict:
                raise
            except Exception as error:
                self.last_error = _describe(error)
                raise
            self.renewals += 1
            self.last_renewal = started

    def extend(self) -> None:
        """Renew this replica's unexpired leases and heartbeat only (no claiming, no releasing)."""
        with self._lock:
            started = time.monotonic()
            now = self.clock()
            until = now + timedelta(seconds=self.lease_duration)
            _retry(self._heartbeat, now, until)
            self._load_held(now, until, started)

    def release(self) -> None:
        """Give up every lease of this replica and its heartbeat (on shutdown): others take them at once."""
        with self._lock:
            with self._session() as session:
                session.execute(update(EngineLease).where(EngineLease.holder == self.replica)
                                .values(holder=FREE, expires_at=_EPOCH))
                session.execute(delete(EngineReplica).where(EngineReplica.replica == self.replica))
            released = len(self.held)
            self.held, self.held_until, self._valid_until = frozenset(), None, 0.0
            log.info("released %d leases", released)

    # -- the steps -------------------------------------------------------------------------

    def _check_alone(self, now: datetime) -> None:
        with self._session() as session:
            replicas = session.execute(select(EngineReplica.replica, EngineReplica.expires_at).where(
                EngineReplica.replica != self.replica, EngineReplica.expires_at > now)).all()
            holders = session.execute(select(EngineLease.holder, func.max(EngineLease.expires_at)).where(
                EngineLease.holder.not_in((self.replica, FREE)), EngineLease.expires_at > now)
                .group_by(EngineLease.holder)).all()
        others: dict[str, datetime] = {}
        for holder, expires in [*replicas, *holders]:
            others[holder] = max(expires, others.get(holder, expires))
        live = {h: e for h, e in others.items() if not _dead_local(h)}
        if live:
            holder, expires = max(live.items(), key=lambda item: item[1])
            where = "this SQLite store" if self.db.dialect == "sqlite" else "this store"
            raise LeaseConflict(
                f"another engine ({holder}) is running on {where} (its lease runs until "
                f"{expires.isoformat(timespec='seconds').replace('+00:00', 'Z')}); "
                + ("one engine per SQLite database: stop it, or use MariaDB/MySQL to run replicas"
                   if self.db.dialect == "sqlite" else "stop it first"))
        if others:
            with self._session() as session:
                session.execute(delete(EngineReplica).where(EngineReplica.replica.in_(list(others))))

    def _heartbeat(self, now: datetime, until: datetime) -> None:
        with self._session() as session:
            row = session.get(EngineReplica, self.replica)
            if row is None:
                session.add(EngineReplica(replica=self.replica, started_at=now, heartbeat_at=now, expires_at=until))
            else:
                row.heartbeat_at, row.expires_at = now, until
            session.execute(update(EngineLease).where(EngineLease.holder == self.replica,
                                                      EngineLease.expires_at > now).values(expires_at=until))
            # heartbeats of replicas gone for a while
            session.execute(delete(EngineReplica).where(
                EngineReplica.expires_at < now - timedelta(seconds=10 * self.lease_duration)))

    def _sync_rows(self) -> None:
        """One lease row per enabled rule of an enabled user: add the missing ones (free), drop those of
        disabled/deleted rules and of disabled users."""
        with self._session() as session:
            missing = list(session.scalars(
                select(Rule.id).join(User, User.id == Rule.owner_id)
                .outerjoin(EngineLease, EngineLease.rule_id == Rule.id)
                .where(Rule.enabled.is_(True), Rule.deleted_at.is_(None), User.disabled_at.is_(None),
                       EngineLease.rule_id.is_(None))))
            stale = list(session.scalars(
                select(EngineLease.rule_id).join(Rule, Rule.id == EngineLease.rule_id)
                .join(User, User.id == Rule.owner_id)
                .where(sa.or_(Rule.enabled.is_(False), Rule.deleted_at.is_not(None),
                              User.disabled_at.is_not(None)))))
        for chunk in _chunks(missing):
            with self._session() as session:
                session.execute(_insert_ignore(session, [{"rule_id": i, "holder": FREE, "expires_at": _EPOCH}
                                                         for i in chunk]))
        for chunk in _chunks(stale):
            with self._session() as session:
                session.execute(delete(EngineLease).where(EngineLease.rule_id.in_(chunk)))

    def _take_all(self, now: datetime, until: datetime) -> None:
        with self._session() as session:
            self.takeovers += session.scalar(select(func.count()).select_from(EngineLease).where(
                EngineLease.holder.not_in((self.replica, FREE)))) or 0
            session.execute(update(EngineLease).values(holder=self.replica, expires_at=until))
            self.total = session.scalar(select(func.count()).select_from(EngineLease)) or 0
        self.replicas, self.share, self.free_left = 1, self.total, 0

    def _rebalance(self, now: datetime, until: datetime) -> None:
        with self._session() as session:
            live = session.scalar(select(func.count()).select_from(EngineReplica)
                                  .where(EngineReplica.expires_at > now)) or 1
            total = session.scalar(select(func.count()).select_from(EngineLease)) or 0
            mine = list(session.scalars(select(EngineLease.rule_id).where(
                EngineLease.holder == self.replica, EngineLease.expires_at > now).order_by(EngineLease.rule_id)))
        self.replicas, self.total = max(1, live), total
        share = math.ceil(total / self.replicas) if total else 0
        self.share = share
        if len(mine) > share:
            surplus = mine[share:]
            for chunk in _chunks(surplus):
                with self._session() as session:
                    session.execute(update(EngineLease).where(EngineLease.holder == self.replica,
                                                              EngineLease.rule_id.in_(chunk))
                                    .values(holder=FREE, expires_at=_EPOCH))
            self.released += len(surplus)
            log.info("released %d leases above the fair share of %d (%d rules, %d replicas)",
                     len(surplus), share, total, self.replicas)
        elif len(mine) < share:
            self._claim(share - len(mine), now, until)
        with self._session() as session:
            self.free_left = session.scalar(select(func.count()).select_from(EngineLease)
                                            .where(EngineLease.expires_at <= now)) or 0

    def _spread(self, rule_id: int) -> int:
        """This replica's order of the rules when claiming: pseudo-random, and different per replica, so
        that each takes rules from all over (a user's rules, created together, are not one replica's
        work) and replicas claiming at once mostly want different rows."""
        return zlib.crc32(f"{self.replica}:{rule_id}".encode())

    def _claim(self, wanted: int, now: datetime, until: datetime) -> None:
        """Take up to ``wanted`` free or expired leases, skipping rows other replicas have locked."""
        with self._session() as session:
            free = list(session.scalars(select(EngineLease.rule_id).where(EngineLease.expires_at <= now)))
            free.sort(key=self._spread)
            rows: list = []
            start = 0
            while len(rows) < wanted and start < len(free):  # lock by primary key, in this order, what is missing
                chunk = free[start:start + min(_CHUNK, wanted - len(rows))]
                start += len(chunk)
                rows += session.execute(
                    select(EngineLease.rule_id, EngineLease.holder)
                    .where(EngineLease.rule_id.in_(chunk), EngineLease.expires_at <= now)
                    .with_for_update(skip_locked=True)).all()
            if not rows:
                return
            for chunk in _chunks([r.rule_id for r in rows]):
                session.execute(update(EngineLease).where(EngineLease.rule_id.in_(chunk),
                                                          EngineLease.expires_at <= now)
                                .values(holder=self.replica, expires_at=until))
        taken = [r for r in rows if r.holder not in (FREE, self.replica)]
        self.takeovers += len(taken)
        if taken:
            log.warning("took over %d expired leases from %s", len(taken), ", ".join(sorted({r.holder for r in taken})))
        log.info("claimed %d leases", len(rows))

    def _load_held(self, now: datetime, until: datetime, started: float) -> None:
        with self._session() as session:
            held = frozenset(session.scalars(select(EngineLease.rule_id).where(
                EngineLease.holder == self.replica, EngineLease.expires_at > now)))
        self.held, self.held_until = held, until
        # what the store says minus the time since the renewal began: never later than the real expiry
        self._valid_until = started + self.lease_duration

    def status(self) -> dict:
        """What ``/readyz`` and the logs say about the leases."""
        return {"held": len(self.held), "rules": self.total, "replicas": self.replicas, "share": self.share,
                "free": self.free_left, "exclusive": self.exclusive,
                "valid_for": round(max(0.0, self._valid_until - time.monotonic()), 3)}


def _retry(step, *args, attempts: int = 4):
    """Run ``step`` again when InnoDB picked it as a deadlock victim or a lock wait timed out."""
    for attempt in range(attempts):
        try:
            return step(*args)
        except OperationalError as error:
            code = getattr(getattr(error, "orig", None), "args", (None,))[0]
            if code not in (1205, 1213) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1) * (1 + random.random()))


def _insert_ignore(session, rows: Sequence[dict]):
    table = EngineLease.__table__
    dialect = session.bind.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return insert(table).values(list(rows)).on_conflict_do_nothing(index_elements=["rule_id"])
    if dialect in ("mysql", "mariadb"):
        return sa.insert(table).values(list(rows)).prefix_with("IGNORE")
    return sa.insert(table).values(list(rows))


def _describe(error: BaseException) -> str:
    reason = getattr(error, "orig", None)
    if reason is not None and getattr(reason, "args", None):
        return f"database error: {reason.args[-1]}"
    return " ".join(str(error).split())[:500] or type(error).__name__
