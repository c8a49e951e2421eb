"""The store as the engine's repository: each rule's tick all or nothing (SQLite, MariaDB, MySQL).

``record`` writes, in one transaction: ``rule_states`` (``machine`` holds
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
alerts opened (inserted in one statement, their ids read back in order),
changed and closed, their events, ``rule_states`` and outbox rows, each
table written in bulk, as ``record`` would write each rule. If a
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
from .base import Repository, SeriesUpdate, alert_changes, alert_labels, notification_payload, outbox_status

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


def _states_only(updates: Sequence[SeriesUpdate]) -> bool:
    """Whether a rule's tick writes series states only: no notification, no alert opened, changed or closed."""
    return not any(u.step.notifications or alert_changes(u.step.transitions) for u in updates)


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


def _outbox_row(rule: EngineRule, notification, labels: dict, name: str, channel_id: int | None,
                status: str) -> dict:
    """The ``notification_outbox`` row (its alert aside) of a notification to the rule's channel ``name``:
    a channel the owner does not have gives a ``failed`` row saying so."""
    suffix = str(channel_id) if channel_id is not None else f"missing:{name}"
    return {
        "idempotency_key": f"{notification.idempotency_key}:{suffix}",
        "owner_id": rule.owner_id,
        "rule_id": rule.store_id,
        "channel_id": channel_id,
        "kind": notification.kind,
        "payload": notification_payload(rule, notification, labels, name),
        "status": status if channel_id is not None else "failed",
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None if channel_id is not None else f"no notification channel named {name!r}",
        "created_at": utcnow(),
    }


def _since(state: SeriesState) -> datetime | None:
    if state.state == FIRING:
        return state.firing_since
    if state.state == "pending":
        return state.pending_since
    return None


class _Alert:
    """An alert as a batch of ticks sees it: read (or opened) once, changed in place, written at the end."""

    __slots__ = ("id", "severity", "state", "acknowledged_at", "row", "changes")

    def __init__(self, id_: int | None, severity: str, state: str, acknowledged_at) -> None:
        self.id = id_
        self.severity = severity
        self.state = state
        self.acknowledged_at = acknowledged_at
        self.row: dict | None = None  # the values to insert, for an alert opened in the batch
        self.changes: dict = {}  # the columns to update, for an alert already stored

    def set(self, **changes) -> None:
        for name in ("severity", "state"):
            if name in changes:
                setattr(self, name, changes[name])
        if self.row is not None:
            self.row.update(changes)
        else:
            self.changes.update(changes)


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

    def record(self, rule: EngineRule, at: datetime, updates: Sequence[SeriesUpdate], *, silenced: bool) -> int:
        rule_id = rule.store_id
        if rule_id is None:
            raise ValueError(f"rule {rule.id!r} is not a stored rule")
        try:
            added = self._record(rule, rule_id, at, updates, silenced)
        except BaseException:
            self.forget([rule.id])  # unknown what was committed: read it again
            raise
        rows = self._rows.get(rule_id)
        if rows:
            for u in updates:  # their alerts may have changed: looked up again when next written
                rows.pop(u.series_key, None)
        if rule.id in self._loaded:
            known = self._states.setdefault(rule.id, {})
            for u in updates:
                known[u.series_key] = u.step.state
        return added

    def _record(self, rule: EngineRule, rule_id: int, at: datetime, updates: Sequence[SeriesUpdate],
                silenced: bool) -> int:
        added = 0
        with self.db.session() as session:
            channels = self._channels(session, rule) if any(u.step.notifications for u in updates) else {}
            rows = {r.series_key: r for r in session.scalars(select(RuleState).where(
                RuleState.rule_id == rule_id, RuleState.series_key.in_([u.series_key for u in updates])))}
            alerts: dict[int, Alert] = {}  # the series' alerts, read at once (one get per series flushes each time)
            for chunk in _chunks(sorted({r.alert_id for r in rows.values() if r.alert_id})):
                alerts.update((a.id, a) for a in session.scalars(select(Alert).where(Alert.id.in_(chunk))))
            for u in updates:
                row = rows.get(u.series_key)
                if row is None:
                    row = RuleState(rule_id=rule_id, series_key=u.series_key, labels=dict(u.labels or {}))
                    session.add(row)
                elif u.labels is not None:
                    row.labels = dict(u.labels)
                state = u.step.state
                labels = alert_labels(rule, row.labels or {})
                alert = alerts.get(row.alert_id) if row.alert_id else None
                for change in alert_changes(u.step.transitions, alert.severity if alert else None):
                    t = change.transition
                    if change.action == "open":
                        alert = Alert(rule_id=rule_id, owner_id=rule.owner_id, series_key=u.series_key, labels=labels,
                                      severity=t.severity, state="firing", started_at=t.at,
                                      values_at_start=dict(u.evaluation.values))
                        session.add(alert)
                        session.flush()
                    elif alert is None:
                        continue
                    elif change.action == "severity":
                        alert.severity = t.severity
                    else:
                        alert.state, alert.resolved_at = "resolved", t.at
                        alert.values_at_resolution = dict(u.evaluation.values)
                    session.add(AlertEvent(alert_id=alert.id, at=t.at, kind=change.event, from_state=t.from_state,
                                           to_state=t.to_state, severity=t.severity,
                                           values=dict(u.evaluation.values)))
                row.machine = state.to_dict()
                row.state = state.state
                row.severity = state.severity
                row.since = _since(state)
                row.last_evaluated_at = state.last_evaluated_at
                row.last_values = dict(state.last_values)
                row.last_notified_at = state.last_notified_at
                row.last_error = None
                row.alert_id = alert.id if (alert is not None and alert.state == "firing") else None
                acknowledged = bool(alert is not None and alert.acknowledged_at is not None)
                for n in u.step.notifications:
                    status = outbox_status(n, silenced=silenced, acknowledged=acknowledged)
                    for name in rule.channels:
                        values = _outbox_row(rule, n, labels, name, channels.get(name), status)
                        values["alert_id"] = alert.id if alert is not None else None
                        added += self._insert_outbox(session, values)
        return added

    def record_many(self, at: datetime, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]
                    ) -> dict[str, int | Exception]:
        out: dict[str, int | Exception] = {}
        plain = [e for e in entries if e[0].store_id is not None and _states_only(e[1])]
        if len(plain) > 1:
            try:
                self._record_states(plain)
            except Exception:  # nothing of it was written: each rule on its own below
                log.warning("writing %d rules' states together failed; writing them one by one", len(plain),
                            exc_info=True)
                self.forget([rule.id for rule, _, _ in plain])
            else:
                for rule, updates, _ in plain:
                    out[rule.id] = 0
                    if rule.id in self._loaded:
                        known = self._states.setdefault(rule.id, {})
                        for u in updates:
                            known[u.series_key] = u.step.state
        changing = [e for e in entries if e[0].store_id is not None and e[0].id not in out]
        for batch in _batches(changing):
            if len(batch) < 2:
                continue
            try:
                added = self._record_alerts(batch)
            except Exception:  # nothing of it was written: each rule on its own below
                log.warning("writing %d rules' alerts together failed; writing them one by one", len(batch),
                            exc_info=True)
                self.forget([rule.id for rule, _, _ in batch])
            else:
                for rule, updates, _ in batch:
                    out[rule.id] = added[rule.id]
                    if rule.id in self._loaded:
                        known = self._states.setdefault(rule.id, {})
                        for u in updates:
                            known[u.series_key] = u.step.state
        for rule, updates, silenced in entries:
            if rule.id in out:
                continue
            try:
                out[rule.id] = self.record(rule, at, updates, silenced=silenced)
            except Exception as error:  # one rule's failure must not stop the others
                out[rule.id] = error
        return out

    def _record_states(self, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]) -> None:
        """The series states of rules whose tick touches no alert and no outbox: one transaction."""
        wanted = {(rule.store_id, u.series_key): u for rule, updates, _ in entries for u in updates}
        with self.db.session() as session:
            found = _lookup_rows(session, set(wanted), self._rows)
            alert_ids = sorted({alert_id for _, alert_id in found.values() if alert_id is not None})
            firing: set[int] = set()
            for chunk in _chunks(alert_ids):
                firing.update(session.scalars(select(Alert.id).where(Alert.id.in_(chunk), Alert.state == "firing")))
            changed, added = [], []
            for (rule_id, key), u in wanted.items():
                state = u.step.state
                existing = found.get((rule_id, key))
                if existing is not None and u.step.values_only:
                    changed.append(_values_columns(existing[0], state))
                    continue
                values = _state_columns(state)
                if existing is None:
                    added.append({"rule_id": rule_id, "series_key": key, "labels": dict(u.labels or {}),
                                  "alert_id": None, **values})
                    continue
                id_, alert_id = existing
                values["id"] = id_
                values["alert_id"] = alert_id if alert_id in firing else None
                changed.append(values)  # its labels stay: a series key is the hash of its labels
            _update_by_id(session, RuleState.__table__, changed)
            _insert_many(session, RuleState.__table__, added)
        self._remember_rows(found, changed)

    def _record_alerts(self, entries: Sequence[tuple[EngineRule, Sequence[SeriesUpdate], bool]]) -> dict[str, int]:
        """Several rules' ticks, alerts, events and outbox rows included, in one transaction (as ``_record``
        for each, in order): reads and writes in bulk; the outbox rows added per rule."""
        added: dict[str, int] = {}
        with self.db.session() as session:
            # the owners' channels the rules name, for the rules that notify
            names: dict[int, set[str]] = {}
            for rule, updates, _ in entries:
                if rule.channels and any(u.step.notifications for u in updates):
                    names.setdefault(rule.owner_id, set()).update(rule.channels)
            channels: dict[tuple[int, str], int] = {}
            for owner_id, wanted_names in names.items():
                rows = session.execute(select(NotificationChannel.name, NotificationChannel.id).where(
                    NotificationChannel.owner_id == owner_id, NotificationChannel.name.in_(sorted(wanted_names))))
                channels.update(((owner_id, name), id_) for name, id_ in rows)
            # the series' rows and their alerts
            wanted = {(rule.store_id, u.series_key) for rule, updates, _ in entries for u in updates}
            found: dict[tuple[int, str], tuple[int, int | None, dict | None]] = {
                pair: (row[0], row[1], None) for pair, row in _lookup_rows(session, wanted, self._rows).items()}
            # the stored labels, only of the series the query no longer returned (the others bring theirs)
            unlabelled = sorted(found[(rule.store_id, u.series_key)][0] for rule, updates, _ in entries
                                for u in updates if u.labels is None and (rule.store_id, u.series_key) in found)
            stored_labels: dict[int, dict] = {}
            for chunk in _chunks(unlabelled):
                rows = session.execute(select(RuleState.id, RuleState.labels).where(RuleState.id.in_(chunk)))
                stored_labels.update((row_id, labels) for row_id, labels in rows)  # a Result is not a mapping
            if stored_labels:
                found = {k: (v[0], v[1], stored_labels.get(v[0])) for k, v in found.items()}
            alerts: dict[int, _Alert] = {}
            for chunk in _chunks(sorted({v[1] for v in found.values() if v[1]})):
                rows = session.execute(select(Alert.id, Alert.severity, Alert.state, Alert.acknowledged_at)
                                       .where(Alert.id.in_(chunk)))
                alerts.update((id_, _Alert(id_, severity, state, acknowledged_at))
                              for id_, severity, state, acknowledged_at in rows)
            new_alerts: list[_Alert] = []
            events: list[tuple[_Alert, dict]] = []
            changed_states: list[tuple[dict, _Alert | None]] = []
            values_only: list[dict] = []
            added_states: list[tuple[dict, _Alert | None]] = []
            outbox: list[tuple[str, _Alert | None, dict]] = []
            for rule, updates, silenced in entries:
                rule_id = rule.store_id
                added[rule.id] = 0
                for u in updates:
                    existing = found.get((rule_id, u.series_key))
                    if existing is not None and u.step.values_only:  # no alert, event or notification
                        values_only.append(_values_columns(existing[0], u.step.state))
                        continue
                    if existing is None:
                        row_labels = dict(u.labels or {})
                        alert_id = None
                    else:
                        row_labels = dict(u.labels) if u.labels is not None else existing[2]
                        alert_id = existing[1]
                    labels = alert_labels(rule, row_labels or {})
                    alert = alerts.get(alert_id) if alert_id else None
                    values_now = u.evaluation.values
                    for change in alert_changes(u.step.transitions, alert.severity if alert else None):
                        t = change.transition
                        if change.action == "open":
                            alert = _Alert(None, t.severity, "firing", None)
                            alert.row = {"rule_id": rule_id, "owner_id": rule.owner_id, "series_key": u.series_key,
                                         "labels": labels, "severity": t.severity, "state": "firing",
                                         "started_at": t.at, "resolved_at": None,
                                         "values_at_start": dict(values_now), "values_at_resolution": None}
                            new_alerts.append(alert)
                        elif alert is None:
                            continue
                        elif change.action == "severity":
                            alert.set(severity=t.severity)
                        else:
                            alert.set(state="resolved", resolved_at=t.at, values_at_resolution=dict(values_now))
                        events.append((alert, {"at": t.at, "kind": change.event, "from_state": t.from_state,
                                               "to_state": t.to_state, "severity": t.severity,
                                               "values": dict(values_now)}))
                    state = u.step.state
                    values = _state_columns(state)
                    holder = alert if (alert is not None and alert.state == "firing") else None
                    if existing is None:
                        values.update(rule_id=rule_id, series_key=u.series_key, labels=row_labels)
                        added_states.append((values, holder))
                    else:
                        values["id"] = existing[0]  # its labels stay: a series key is the hash of its labels
                        changed_states.append((values, holder))
                    acknowledged = bool(alert is not None and alert.acknowledged_at is not None)
                    for n in u.step.notifications:
                        status = outbox_status(n, silenced=silenced, acknowledged=acknowledged)
                        for name in rule.channels:
                            outbox.append((rule.id, alert, _outbox_row(rule, n, labels, name,
                                                                       channels.get((rule.owner_id, name)), status)))
            # alerts opened: inserted first, their ids read back in order
            if new_alerts:
                for alert, id_ in zip(new_alerts, _insert_alerts(session, [a.row for a in new_alerts])):
                    alert.id = id_
            shapes: dict[tuple, list[dict]] = {}
            for alert in alerts.values():
                if alert.changes:
                    shapes.setdefault(tuple(sorted(alert.changes)), []).append({"id": alert.id, **alert.changes})
            for rows in shapes.values():
                _update_by_id(session, Alert.__table__, rows)
            for values, holder in changed_states:
                values["alert_id"] = holder.id if holder is not None else None
            for values, holder in added_states:
                values["alert_id"] = holder.id if holder is not None else None
            changed_rows = [v for v, _ in changed_states]
            _update_by_id(session, RuleState.__table__, changed_rows + values_only)
            _insert_many(session, RuleState.__table__, [v for v, _ in added_states])
            event_rows = [{"alert_id": alert.id, **values} for alert, values in events]
            _insert_many(session, AlertEvent.__table__, event_rows)
            if outbox:
                table = NotificationOutbox.__table__
                keys = sorted({values["idempotency_key"] for _, _, values in outbox})
                seen: set[str] = set()
                for chunk in _chunks(keys):
                    seen.update(session.scalars(select(table.c.idempotency_key)
                                                .where(table.c.idempotency_key.in_(chunk))))
                rows = []
                for rule_key, alert, values in outbox:
                    if values["idempotency_key"] in seen:
                        continue
                    seen.add(values["idempotency_key"])
                    rows.append({**values, "alert_id": alert.id if alert is not None else None})
                    added[rule_key] += 1
                for chunk in _chunks(rows):
                    session.execute(self._outbox_insert(session), chunk)  # still guarded against another writer
        self._remember_rows(found, changed_rows)
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

    def _channels(self, session, rule: EngineRule) -> dict[str, int]:
        if not rule.channels:
            return {}
        rows = session.execute(select(NotificationChannel.name, NotificationChannel.id).where(
            NotificationChannel.owner_id == rule.owner_id, NotificationChannel.name.in_(rule.channels)))
        return {name: id_ for name, id_ in rows}

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
