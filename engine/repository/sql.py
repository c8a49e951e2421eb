"""The store as the engine's repository: each rule's tick all or nothing (SQLite, MariaDB, MySQL).

``record`` writes, in one transaction, what the rule's tick plan says
(``lifecycle.plan_tick``; this module only persists it): ``rule_states`` (``machine`` holds
``SeriesState.to_dict()``; ``state``/``severity``/``since``/``last_values`` are
kept readable for ``get_alert_rule``), ``alerts`` opened/changed/closed,
``alert_events`` (one per transition), and ``notification_outbox`` rows (one
per notification and channel). The outbox insert skips a row whose
idempotency key exists (``ON CONFLICT DO NOTHING`` / ``ON DUPLICATE KEY``),
so a tick run again, or by another replica, adds nothing.

A channel the rule names but its owner does not have gets a ``failed`` row
saying so: the notification is visible, never silently dropped.

``record_many`` writes a tick's rules in few transactions: those whose tick
only changes series states (no alert opened, changed or closed, no
notification) together (bulk update and insert of ``rule_states``), then the
others together, whole rules of about 5,000 series updates per transaction:
what is stored of their series read at once, each rule's tick planned as
``record`` plans it, then alerts opened (inserted in one statement, their ids
read back in order), changed and closed, their events, ``rule_states`` and
outbox rows, each table written in bulk. If a
shared transaction fails, nothing of it was written and each of its rules is
written again on its own (``record``, one transaction per rule), so a failure
still leaves no rule half-written and stops only the rule at fault.

The repository keeps what it read or wrote between ticks — each rule's series
states and their rows' ids — and reads a rule again when its version changes
or it is ``forget``-ten (a rule newly held, a failed write). Bulk writes go to
the driver as plain tuples (``executemany``; on MySQL/MariaDB joined
updates of a couple of hundred rows per statement).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy import select, update

from monitors_mcp.store import Alert, AlertEvent, Database, NotificationChannel, NotificationOutbox, Rule, RuleState
from monitors_mcp.store import Silence
from monitors_mcp.store.types import utcnow

from ..rules import EngineRule
from ..state import FIRING, SeriesState
from monitors_mcp.store.lifecycle import StoredAlert

from .base import Repository, SeriesUpdate
from .lifecycle import OutboxWrite, StoredSeries, TickPlan, plan_tick, touches_alerts
from .notices import Holds, dependency_holder, needs_notifier, parse_channel_window, rule_channels

__all__ = ["SqlRepository"]

log = logging.getLogger(__name__)

_CHUNK = 500


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


_BATCH_UPDATES = 5000


def _batches(entries: list, size: int | None = None):
    """Consecutive runs of whole rules' entries with about ``size`` series updates each at most (a rule with
    more is a run of its own): a transaction's rows stay few enough to hold in memory at once."""
    size = size or _BATCH_UPDATES
    batch: list = []
    count = 0
    for entry in entries:
        n = len(entry[1])
        if batch and count + n > size:
            yield batch
            batch, count = [], 0
        batch.append(entry)
        count += n
    if batch:
        yield batch


def _update_by_id(session, table: sa.Table, rows: list[dict]) -> None:
    """``UPDATE … WHERE id = ?`` for each row (its ``id`` and the columns to set), one statement per set of
    columns, executed for many rows at once."""
    shapes: dict[tuple, list[dict]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    if shapes and session.connection().dialect.name in ("mysql", "mariadb"):
        for columns, group in shapes.items():
            _joined_update(session, table, columns, group)
        return
    for columns, group in shapes.items():
        stmt = (sa.update(table).where(table.c.id == sa.bindparam("id_"))
                .values({name: sa.bindparam(name) for name in columns}))
        for chunk in _chunks(group):
            _executemany(session, stmt, [{**row, "id_": row["id"]} for row in chunk],
                         {"id_": table.c.id, **{name: table.c[name] for name in columns}})


_JOINED_ROWS = 200


def _joined_update(session, table: sa.Table, columns: tuple[str, ...], rows: list[dict]) -> None:
    """MySQL/MariaDB: ``UPDATE t JOIN (SELECT ? AS id, ? AS c … UNION ALL SELECT ?, ? …) v ON t.id = v.id SET
    t.c = v.c …``, a statement per couple of hundred rows. Its driver runs a batch of ``UPDATE`` statements one
    round trip per row; this is one per statement, each value sent once. The values are converted by the
    columns' types, as in :func:`_executemany`."""
    connection = session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    converters = [(name, _converter(table.c[name], dialect)) for name in columns]
    key = quote(table.c.id.name)
    first = ", ".join(["%s AS " + key] + [f"%s AS {quote(name)}" for name in columns])
    other = ", ".join(["%s"] * (len(columns) + 1))
    sets = ", ".join(f"t.{quote(name)} = v.{quote(name)}" for name in columns)
    for chunk in _chunks(rows, _JOINED_ROWS):
        params: list = []
        for row in chunk:
            params.append(row["id"])
            params += [row[name] if convert is None else convert(row[name]) for name, convert in converters]
        selects = " UNION ALL ".join([f"SELECT {first}"] + [f"SELECT {other}"] * (len(chunk) - 1))
        sql = f"UPDATE {quote(table.name)} t JOIN ({selects}) v ON t.{key} = v.{key} SET {sets}"
        connection.exec_driver_sql(sql, tuple(params))


def _converter(column: sa.Column, dialect):
    """What SQLAlchemy does to a value of ``column`` before the driver sees it on ``dialect`` (UTC times, and
    their text format on SQLite; JSON), or ``None``. The dialect's own implementation of the type matters:
    on SQLite a time is stored as text in one format that the store's queries compare with."""
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _insert_many(session, table: sa.Table, rows: list[dict]) -> None:
    """``INSERT`` of rows that all set the same columns, handed to the driver as one batch (see
    :func:`_executemany`)."""
    if not rows:
        return
    names = tuple(rows[0])
    first = rows[0].keys()
    if any(row.keys() != first for row in rows):
        session.execute(sa.insert(table), rows)
        return
    stmt = sa.insert(table).values({name: sa.bindparam(name) for name in names})
    for chunk in _chunks(rows):
        _executemany(session, stmt, chunk, {name: table.c[name] for name in names})


def _executemany(session, stmt, rows: list[dict], columns: dict[str, sa.Column]) -> None:
    """``stmt`` once per row, handed to the driver as one batch.

    Each value goes through its column type's conversion (UTC times, JSON), as
    SQLAlchemy would do, but the statement is compiled once and the rows are
    passed as plain tuples: for thousands of rows this is several times
    cheaper than ``session.execute(stmt, rows)``. ``columns`` maps each bind
    parameter's name to the column whose type converts it.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    compiled = stmt.compile(dialect=dialect)
    if not compiled.positional:
        session.execute(stmt, rows)
        return
    names = list(compiled.positiontup)
    converters = [_converter(columns[name], dialect) if name in columns else None for name in names]
    pairs = list(zip(names, converters))
    params = [tuple(row[name] if convert is None else convert(row[name]) for name, convert in pairs) for row in rows]
    connection.exec_driver_sql(compiled.string, params)


def _insert_alerts(session, rows: list[dict]) -> list[int]:
    """Insert the alerts opened in a batch, returning their ids in the rows' order.

    The rows go in as one batch (no ``RETURNING``, which SQLite can only order
    one row per statement); the ids are then read back by what identifies an
    alert opened in a tick — its rule, series and start — the newest id where
    one was stored before (a tick run again).
    """
    table = Alert.__table__
    _insert_many(session, table, rows)
    starts = sorted({row["started_at"] for row in rows})
    ids: dict[tuple, int] = {}
    for chunk in _chunks(sorted({row["rule_id"] for row in rows})):
        for id_, rule_id, key, started in session.execute(
                select(table.c.id, table.c.rule_id, table.c.series_key, table.c.started_at)
                .where(table.c.rule_id.in_(chunk), table.c.started_at.in_(starts))):
            if id_ > ids.get((rule_id, key, started), 0):
                ids[(rule_id, key, started)] = id_
    return [ids[(row["rule_id"], row["series_key"], row["started_at"])] for row in rows]


def _lookup_rows(session, pairs: set[tuple[int, str]], known: dict[int, dict[str, tuple[int, int | None]]]
                 ) -> dict[tuple[int, str], tuple[int, int | None]]:
    """``(rule id, series key)`` → ``(row id, alert id)`` of the stored ``rule_states`` rows among ``pairs``:
    from ``known`` where it has them, else read (and added to ``known``)."""
    found: dict[tuple[int, str], tuple[int, int | None]] = {}
    missing: dict[int, set[str]] = {}
    for pair in pairs:
        row = known.get(pair[0], {}).get(pair[1])
        if row is None:
            missing.setdefault(pair[0], set()).add(pair[1])
        else:
            found[pair] = row
    # A key many rules want (every ungrouped rule's series has the same key) is read with ``series_key = ?``
    # and the rules' ids; the rest with the rules' ids and their keys (an index probe per pair of the two lists).
    by_key: dict[str, list[int]] = {}
    for rule_id, keys in missing.items():
        for key in keys:
            by_key.setdefault(key, []).append(rule_id)
    shared = {key for key, rule_ids in by_key.items() if len(rule_ids) >= 8}
    selects = [RuleState.id, RuleState.rule_id, RuleState.series_key, RuleState.alert_id]
    queries = [select(*selects).where(RuleState.series_key == key, RuleState.rule_id.in_(chunk))
               for key in sorted(shared) for chunk in _chunks(sorted(by_key[key]))]
    rest = {rule_id: keys - shared for rule_id, keys in missing.items() if keys - shared}
    for chunk in _chunks(sorted(rest)):
        keys = sorted(set().union(*(rest[rule_id] for rule_id in chunk)))
        queries += [select(*selects).where(RuleState.rule_id.in_(chunk), RuleState.series_key.in_(key_chunk))
                    for key_chunk in _chunks(keys)]
    for query in queries:
        for id_, rule_id, key, alert_id in session.execute(query):
            if key in missing[rule_id]:
                found[(rule_id, key)] = (id_, alert_id)
                known.setdefault(rule_id, {})[key] = (id_, alert_id)
    return found


def _state_columns(state: SeriesState) -> dict:
    """The ``rule_states`` columns written for a series state (its full state, and the readable parts)."""
    return {
        "machine": state.to_dict(),
        "state": state.state,
        "severity": state.severity,
        "since": _since(state),
        "last_evaluated_at": state.last_evaluated_at,
        "last_values": dict(state.last_values),
        "last_notified_at": state.last_notified_at,
        "last_error": None,
    }


def _values_columns(row_id: int, state: SeriesState) -> dict:
    """The ``rule_states`` columns that change when only a firing series' values do."""
    return {"id": row_id, "machine": state.to_dict(), "last_values": state.last_values,
            "last_evaluated_at": state.last_evaluated_at}


def _outbox_row(rule: EngineRule, row: OutboxWrite, channel_id: int | None) -> dict:
    """The ``notification_outbox`` row of a planned outbox row, ``channel_id`` the id of the owner's channel
    of that name: a channel the owner does not have gives a ``failed`` row saying so."""
    notification, name, alert = row.notification, row.channel, row.notice.alert
    suffix = str(channel_id) if channel_id is not None else f"missing:{name}"
    held = channel_id is not None and row.held_reason is not None
    return {
        "idempotency_key": f"{notification.idempotency_key}:{suffix}",
        "owner_id": rule.owner_id,
        "rule_id": rule.store_id,
        "channel_id": channel_id,
        "kind": notification.kind,
        "payload": row.payload,
        "status": row.status if channel_id is not None else "failed",
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None if channel_id is not None else f"no notification channel named {name!r}",
        "created_at": utcnow(),
        "alert_id": alert.id if alert is not None else None,
        "held_reason": row.held_reason[:255] if held else None,
        "late": notification.late,
        "escalated": notification.escalated,
    }


def _stored_alert(alert: Alert | None) -> StoredAlert | None:
    if alert is None:
        return None
    return StoredAlert(alert.id, alert.severity, alert.state, alert.acknowledged_at is not None)


def _since(state: SeriesState) -> datetime | None:
    if state.state == FIRING:
        return state.firing_since
    if state.state == "pending":
        return state.pending_since
    return None


def _notifying(rule: EngineRule, updates: Sequence[SeriesUpdate]) -> bool:
    """Whether the notifier has anything to do in a rule's tick (a channel, and a notification or a series
    whose notifier record asks to be looked at)."""
    return bool(rule_channels(rule)) and any(needs_notifier(rule, u.step.state, bool(u.step.notifications))
                                             for u in updates)


def _owner_channels(session, entries) -> tuple[dict[tuple[int, str], int], dict[int, dict[str, object]]]:
    """``(owner id, channel name)`` → channel id, of the channels the rules that notify (or whose notifier has
    something to look at) name; and owner id → channel name → its ``mute_during`` window, for the channels
    that have one."""
    names: dict[int, set[str]] = {}
    for rule, updates, _ in entries:
        if _notifying(rule, updates):
            names.setdefault(rule.owner_id, set()).update(rule_channels(rule))
    ids: dict[tuple[int, str], int] = {}
    windows: dict[int, dict[str, object]] = {}
    table = NotificationChannel
    for owner_id, wanted in names.items():
        rows = session.execute(select(table.name, table.id, table.mute_during).where(
            table.owner_id == owner_id, table.name.in_(sorted(wanted))))
        for name, id_, mute_during in rows:
            ids[(owner_id, name)] = id_
            if mute_during:
                windows.setdefault(owner_id, {})[name] = parse_channel_window(mute_during)
    return ids, windows


def _firing_labels(session, owner_id: int | None, names: Sequence[str]) -> dict[str, dict[str, dict]]:
    """Rule name → series key → alert labels of the firing alerts of the owner's live rules named ``names``
    (a name with no live rule, or none firing, is absent)."""
    out: dict[str, dict[str, dict]] = {}
    for chunk in _chunks(sorted(set(names))):
        rows = session.execute(select(Rule.live_name, Alert.series_key, Alert.labels)
                               .join(Rule, Rule.id == Alert.rule_id)
                               .where(Rule.owner_id == owner_id, Rule.live_name.in_(chunk), Alert.state == FIRING))
        for name, key, labels in rows:
            out.setdefault(name, {})[key] = labels or {}
    return out


def _holds(session, rule: EngineRule, updates: Sequence[SeriesUpdate], silenced: bool,
           windows: dict[int, dict[str, object]], firing=None) -> Holds | None:
    """What holds the notices of a rule's tick: its silence, its channels' mute windows, its dependency (the
    tick's ``firing`` index, else what the store holds, read when first needed); ``None`` when the notifier
    has nothing to do in the tick."""
    if not updates or not _notifying(rule, updates):
        return None
    return Holds(rule, updates[0].evaluation.at, silenced=silenced, channel_windows=windows.get(rule.owner_id),
                 dependency=dependency_holder(rule, firing, lambda owner, names: _firing_labels(session, owner, names)))


def _read_stored(session, entries, known: dict[int, dict[str, tuple[int, int | None]]]):
    """What is stored of the rules' series: ``(rule id, series key)`` → ``(row id, alert id)`` of the stored
    rows (see :func:`_lookup_rows`), and rule id → series key → :class:`StoredSeries` (the row's id, its labels
    when the update brings none, its alert)."""
    wanted = {(rule.store_id, u.series_key) for rule, updates, _ in entries for u in updates}
    found = _lookup_rows(session, wanted, known)
    # the stored labels, only of the series the query no longer returned (the others bring theirs)
    unlabelled = sorted(found[(rule.store_id, u.series_key)][0] for rule, updates, _ in entries
                        for u in updates if u.labels is None and (rule.store_id, u.series_key) in found)
    labels: dict[int, dict] = {}
    for chunk in _chunks(unlabelled):
        rows = session.execute(select(RuleState.id, RuleState.labels).where(RuleState.id.in_(chunk)))
        labels.update((row_id, row_labels) for row_id, row_labels in rows)  # a Result is not a mapping
    alerts: dict[int, StoredAlert] = {}
    for chunk in _chunks(sorted({alert_id for _, alert_id in found.values() if alert_id})):
        rows = session.execute(select(Alert.id, Alert.severity, Alert.state, Alert.acknowledged_at.is_not(None))
                               .where(Alert.id.in_(chunk)))
        alerts.update((id_, StoredAlert(id_, severity, state, bool(acknowledged)))
                      for id_, severity, state, acknowledged in rows)
    stored: dict[int, dict[str, StoredSeries]] = {}
    for (rule_id, key), (row_id, alert_id) in found.items():
        mine = stored.get(rule_id)
        if mine is None:
            mine = stored[rule_id] = {}
        mine[key] = StoredSeries(row_id, labels.get(row_id), alerts.get(alert_id) if alert_id else None)
    return found, stored


class SqlRepository(Repository):
    """Reads and writes the engine's records in the store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._errored: set[int] | None = None
        # The states this repository wrote or read, per rule (and the rule version they were read for): a
        # tick reads only the rules it has not seen yet, so steady state costs no read of the table.
        self._states: dict[str, dict[str, SeriesState]] = {}
        self._loaded: dict[str, int] = {}
        # Each stored series' row id and the alert its row points to, per rule's store id: a tick's writes find
        # their rows without reading them (kept with the states; a series written for the first time is looked
        # up once).
        self._rows: dict[int, dict[str, tuple[int, int | None]]] = {}
        self._complete: tuple = ()  # the rules of the last load_states, when nothing was forgotten since
        self._planned: dict[str, dict[str, SeriesState]] = {}  # the states the last batch planned, per rule
        self._firing = None  # during record_many: the tick's dependencies' firing series (engine.depends)

    # -- reading -----------------------------------------------------------------------

    def forget(self, rule_ids=None) -> None:
        """Read these rules' states from the store again next time (all rules with ``None``).

        For when another writer may have written them: a rule this replica did
        not hold for a while (another replica may have evaluated it meanwhile).
        """
        self._complete = ()
        self._errored = None  # another writer may have recorded errors too: read them again when asked
        if rule_ids is None:
            self._states.clear()
            self._loaded.clear()
            self._rows.clear()
            return
        for rule_id in rule_ids:
            self._loaded.pop(str(rule_id), None)
            self._states.pop(str(rule_id), None)
            if str(rule_id).isdigit():
                self._rows.pop(int(rule_id), None)

    def load_states(self, rules: Sequence[EngineRule]) -> dict[str, dict[str, SeriesState]]:
        rules = tuple(rules)
        if rules == self._complete:  # the same rules as last time, all read (compared by identity)
            return self._states  # every state kept: those of these rules, perhaps a few more
        loaded = self._loaded
        missing = [r for r in rules if loaded.get(r.id) != r.version and r.store_id is not None]
        if missing:
            self._read_states(missing)
        self._complete = rules
        states = self._states
        return {r.id: states[r.id] for r in rules if r.id in states}

    def _read_states(self, rules: Sequence[EngineRule]) -> None:
        ids = [r.store_id for r in rules]
        for rule in rules:
            self._states.pop(rule.id, None)
            self._rows.pop(rule.store_id, None)
        out = self._states
        found = self._rows
        columns = (RuleState.rule_id, RuleState.series_key, RuleState.machine, RuleState.id, RuleState.alert_id)
        with self.db.session() as session:
            if len(ids) > 5 * _CHUNK:  # most of the table: one pass, keep the rules asked for
                wanted = set(ids)
                rows = session.execute(select(*columns))
                chunks = [rows]
            else:
                wanted = None
                chunks = (session.execute(select(*columns).where(RuleState.rule_id.in_(chunk)))
                          for chunk in _chunks(ids))
            for rows in chunks:
                for rule_id, key, machine, row_id, alert_id in rows:
                    if wanted is not None and rule_id not in wanted:
                        continue
                    found.setdefault(rule_id, {})[key] = (row_id, alert_id)
                    if machine:
                        out.setdefault(str(rule_id), {})[key] = SeriesState.from_dict(machine)
        for rule in rules:
            self._loaded[rule.id] = rule.version

    def silenced(self, rules: Sequence[EngineRule], at: datetime) -> set[str]:
        ids = {r.store_id for r in rules if r.store_id is not None}
        if not ids:
            return set()
        with self.db.session() as session:  # the silences active now are few: read them all at once
            rows = session.scalars(select(Silence.rule_id).where(Silence.starts_at <= at, Silence.ends_at > at)
                                   .distinct())
            return {str(r) for r in rows if r in ids}

    # -- writing -----------------------------------------------------------------------

    def series_labels(self, rule: EngineRule, keys: Sequence[str]) -> dict[str, dict]:
        if rule.store_id is None or not keys:
            return {}
        out: dict[str, dict] = {}
        with self.db.session() as session:
            for chunk in _chunks(sorted(set(keys))):
                out.update((key, labels or {}) for key, labels in session.execute(
                    select(RuleState.series_key, RuleState.labels).where(RuleState.rule_id == rule.store_id,
                                                                         RuleState.series_key.in_(chunk))))
        return out

    def firing_labels(self, owner_id: int | None, names: Sequence[str]) -> dict[str, dict[str, dict]]:
        with self.db.session() as session:
            return _firing_labels(session, owner_id, names)

    def record(self, rule: EngineRule, at: datetime, updates: Sequence[SeriesUpdate], *, silenced: bool,
               firing=None) -> int:
        rule_id = rule.store_id
        if rule_id is None:
            raise ValueError(f"rule {rule.id!r} is not a stored rule")
        try:
            added, states = self._record(rule, rule_id, at, updates, silenced, firing)
        except BaseException:
            self.forget([rule.id])  # unknown what was committed: read it again
            raise
        rows = self._rows.get(rule_id)
        if rows:
            for u in updates:  # their alerts may have changed: looked up again when next written
                rows.pop(u.series_key, None)
        if rule.id in self._loaded:
            self._states.setdefault(rule.id, {}).update(states)
        return added

    def _record(self, rule: EngineRule, rule_id: int, at: datetime, updates: Sequence[SeriesUpdate],
                silenced: bool, firing=None) -> tuple[int, dict[str, SeriesState]]:
        added = 0
        with self.db.session() as session:
            channels, windows = _owner_channels(session, [(rule, updates, silenced)])
            rows = {r.series_key: r for r in session.scalars(select(RuleState).where(
                RuleState.rule_id == rule_id, RuleState.series_key.in_([u.series_key for u in updates])))}
            alerts: dict[int, Alert] = {}  # the series' alerts, read at once (one get per series flushes each time)
            for chunk in _chunks(sorted({r.alert_id for r in rows.values() if r.alert_id})):
                alerts.update((a.id, a) for a in session.scalars(select(Alert).where(Alert.id.in_(chunk))))
            stored = {key: StoredSeries(row, row.labels, _stored_alert(alerts.get(row.alert_id)) if row.alert_id
                                        else None) for key, row in rows.items()}
            plan = plan_tick(rule, updates, stored, silenced=silenced,
                             holds=_holds(session, rule, updates, silenced, windows, firing))
            opened = [Alert(rule_id=rule_id, owner_id=rule.owner_id, **a.opened) for a in plan.opened]
            if opened:
                session.add_all(opened)
                session.flush()
                for planned, alert in zip(plan.opened, opened):
                    planned.id = alert.id
            for planned in plan.changed:
                alert = alerts[planned.id]
                for name, value in planned.changes.items():
                    setattr(alert, name, value)
            session.add_all([AlertEvent(**event.row()) for event in plan.events])
            for write in plan.series:
                u = write.update
                if write.unchanged:
                    continue
                if write.stored is None:
                    row = RuleState(rule_id=rule_id, series_key=u.series_key, labels=write.labels)
                    session.add(row)
                else:
                    row = write.stored.row
                    if u.labels is not None:
                        row.labels = write.labels
                for name, value in _state_columns(write.state).items():
                    setattr(row, name, value)
                row.alert_id = write.alert.id if write.alert is not None else None
            for planned in plan.outbox:
                channel_id = channels.get((rule.owner_id, planned.channel))
                added += self._insert_outbox(session, _outbox_row(rule, planned, channel_id))
        return added, {write.update.series_key: write.state for write in plan.series}

    def record_many(self, at: datetime, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]], *,
                    firing=None) -> dict[str, int | Exception]:
        self._firing = firing  # the tick's dependencies' firing series, for the bulk writes below
        try:
            return self._record_many(at, entries, firing)
        finally:
            self._firing = None

    def _record_many(self, at: datetime, entries, firing) -> dict[str, int | Exception]:
        out: dict[str, int | Exception] = {}
        plain = [e for e in entries if e[0].store_id is not None and not touches_alerts(e[1])]
        if len(plain) > 1:
            added = self._together(self._record_states, plain, "states")  # late notices may add outbox rows
            if added is not None:
                out.update((rule.id, added.get(rule.id, 0)) for rule, _, _ in plain)
        changing = [e for e in entries if e[0].store_id is not None and e[0].id not in out]
        for batch in _batches(changing):
            if len(batch) < 2:
                continue
            added = self._together(self._record_alerts, batch, "alerts")
            if added is not None:
                out.update((rule.id, added[rule.id]) for rule, _, _ in batch)
        for rule, updates, silenced in entries:
            if rule.id in out:
                continue
            try:
                out[rule.id] = self.record(rule, at, updates, silenced=silenced, firing=firing)
            except Exception as error:  # one rule's failure must not stop the others
                out[rule.id] = error
        return out

    def _together(self, write, batch: list, what: str) -> dict[str, int] | None:
        """``write(batch)``, one transaction for the rules of ``batch``, then their states kept; ``None`` when
        it failed (nothing of it was written: each rule is then written on its own)."""
        try:
            added = write(batch)
        except Exception:
            log.warning("writing %d rules' %s together failed; writing them one by one", len(batch), what,
                        exc_info=True)
            self.forget([rule.id for rule, _, _ in batch])
            return None
        planned = self._planned
        self._planned = {}
        for rule, updates, _ in batch:
            if rule.id in self._loaded:
                self._states.setdefault(rule.id, {}).update(planned.get(rule.id, {}))
        return added or {}

    def _record_states(self, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]) -> dict[str, int]:
        """The series states of rules whose tick opens, changes and closes no alert and whose state machine
        notifies nothing (the notifier may still send a late firing notice): one transaction."""
        return self._record_together(entries)

    def _record_alerts(self, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]) -> dict[str, int]:
        """Several rules' ticks, alerts, events and outbox rows included, in one transaction; the outbox rows
        added per rule."""
        return self._record_together(entries)

    def _record_together(self, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]
                         ) -> dict[str, int]:
        """Several rules' ticks in one transaction, as ``_record`` would write each in turn: what is stored of
        their series read in bulk, each rule's tick planned, each table written in bulk (alerts opened first,
        their ids read back in order); the outbox rows added per rule."""
        added: dict[str, int] = {}
        self._planned = {}
        firing = self._firing
        with self.db.session() as session:
            channels, windows = _owner_channels(session, entries)
            found, stored = _read_stored(session, entries, self._rows)
            plans: list[TickPlan] = []
            for rule, updates, silenced in entries:
                plans.append(plan_tick(rule, updates, stored.get(rule.store_id, {}), silenced=silenced,
                                       holds=_holds(session, rule, updates, silenced, windows, firing)))
                added[rule.id] = 0
            self._planned = {plan.rule.id: {w.update.series_key: w.state for w in plan.series} for plan in plans}
            opened = [(plan.rule, alert) for plan in plans for alert in plan.opened]
            if opened:
                rows = [{"rule_id": rule.store_id, "owner_id": rule.owner_id, **alert.opened} for rule, alert in opened]
                for (_, alert), id_ in zip(opened, _insert_alerts(session, rows)):
                    alert.id = id_
            _update_by_id(session, Alert.__table__,
                          [{"id": alert.id, **alert.changes} for plan in plans for alert in plan.changed])
            changed, inserted = [], []
            for plan in plans:
                rule_id = plan.rule.store_id
                for write in plan.series:
                    state = write.state
                    if write.unchanged:
                        continue
                    if write.values_only:  # no alert, event or notification
                        changed.append(_values_columns(write.stored.row, state))
                        continue
                    values = _state_columns(state)
                    values["alert_id"] = write.alert.id if write.alert is not None else None
                    if write.stored is None:
                        values.update(rule_id=rule_id, series_key=write.update.series_key, labels=write.labels)
                        inserted.append(values)
                    else:
                        values["id"] = write.stored.row  # its labels stay: a series key is the hash of its labels
                        changed.append(values)
            _update_by_id(session, RuleState.__table__, changed)
            _insert_many(session, RuleState.__table__, inserted)
            _insert_many(session, AlertEvent.__table__, [event.row() for plan in plans for event in plan.events])
            outbox = [(plan.rule.id, _outbox_row(plan.rule, row, channels.get((plan.rule.owner_id, row.channel))))
                      for plan in plans for row in plan.outbox]
            if outbox:
                table = NotificationOutbox.__table__
                keys = sorted({values["idempotency_key"] for _, values in outbox})
                seen: set[str] = set()
                for chunk in _chunks(keys):
                    seen.update(session.scalars(select(table.c.idempotency_key)
                                                .where(table.c.idempotency_key.in_(chunk))))
                rows = []
                for rule_key, values in outbox:
                    if values["idempotency_key"] in seen:
                        continue
                    seen.add(values["idempotency_key"])
                    rows.append(values)
                    added[rule_key] += 1
                for chunk in _chunks(rows):
                    session.execute(self._outbox_insert(session), chunk)  # still guarded against another writer
        self._remember_rows(found, changed)
        return added

    def _remember_rows(self, found: dict, changed: list[dict]) -> None:
        """After a commit: the alert each updated row now points to (``found`` maps pairs to row ids)."""
        alert_of = {values["id"]: values["alert_id"] for values in changed if "alert_id" in values}
        for (rule_id, key), row in found.items():
            if row[0] in alert_of:
                self._rows.setdefault(rule_id, {})[key] = (row[0], alert_of[row[0]])

    @staticmethod
    def _outbox_insert(session):
        """An outbox insert that skips a row whose idempotency key exists."""
        table = NotificationOutbox.__table__
        dialect = session.bind.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert

            return insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert

            stmt = insert(table)
            return stmt.on_duplicate_key_update(idempotency_key=stmt.inserted.idempotency_key)
        return sa.insert(table)

    def _insert_outbox(self, session, values: dict) -> int:
        """Insert one outbox row unless its idempotency key exists; 1 when inserted."""
        table = NotificationOutbox.__table__
        if session.scalar(select(table.c.id).where(table.c.idempotency_key == values["idempotency_key"])) is not None:
            return 0
        dialect = session.bind.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert

            stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
        elif dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert

            stmt = insert(table).values(**values)
            stmt = stmt.on_duplicate_key_update(idempotency_key=stmt.inserted.idempotency_key)
        else:
            stmt = sa.insert(table).values(**values)
        session.execute(stmt)  # still guarded: another writer may have inserted the key meanwhile
        return 1

    def _load_errored(self) -> set[int]:
        if self._errored is None:
            with self.db.session() as session:
                self._errored = set(session.scalars(select(Rule.id).where(Rule.last_error.is_not(None))))
        return self._errored

    def record_error(self, rule: EngineRule, at: datetime, error: str) -> None:
        rule_id = rule.store_id
        if rule_id is None:
            return
        errored = self._load_errored()
        with self.db.session() as session:
            session.execute(update(Rule).where(Rule.id == rule_id).values(last_error=error[:2000], last_error_at=at))
            session.execute(update(RuleState).where(RuleState.rule_id == rule_id).values(last_error=error[:2000]))
        errored.add(rule_id)

    def errored(self) -> set[str]:
        return {str(rule_id) for rule_id in self._load_errored()}

    def clear_error(self, rule: EngineRule) -> None:
        rule_id = rule.store_id
        if rule_id is None or rule_id not in self._load_errored():
            return
        with self.db.session() as session:
            session.execute(update(Rule).where(Rule.id == rule_id).values(last_error=None, last_error_at=None))
            session.execute(update(RuleState).where(RuleState.rule_id == rule_id).values(last_error=None))
        self._errored.discard(rule_id)
