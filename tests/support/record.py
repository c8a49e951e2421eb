"""What the store-write tests share: the prices, rule texts, counting repositories and snapshots."""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import partial
from datetime import datetime, timedelta, timezone
import pyarrow as pa
import pytest
from sqlalchemy import select
from engine.repository import SqlRepository
from engine.repository.base import Repository
from engine.sources import DataFusionSource
from monitors_mcp.store import Alert, AlertEvent, NotificationOutbox, RuleState


MIN = timedelta(minutes=1)


T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


PRICES = {"A": [10, 12, 12, 12, 9, 9, 12, 12], "B": [5, 5, 6, 7, 8, 8, 2, 2], "C": [1, 1, 1, 1, 1, 1, 1, 1]}


TEXTS = [
    'rule {name} {{ when last(crypto.price{{symbol="A"}}, 1m) > 11\n for 3m }}',  # pending, then firing
    'rule {name} {{ when last(crypto.price{{symbol="B"}}, 1m) > 5\n for 10m }}',  # pending only: states
    'rule {name} {{ when last(crypto.price{{symbol="C"}}, 1m) > 5 }}',  # nothing
    'rule {name} {{ when last(crypto.price, 1m) > 6\n group by symbol\n for 2m }}',
    'rule {name} {{ when last(crypto.price{{symbol="B"}}, 1m) > 4\n for 20m\n keep firing for 1m }}',
    'rule {name} {{ when last(crypto.price{{symbol="A"}}, 1m) > 8\n notify hook }}',
]


@pytest.fixture
def source():
    src = DataFusionSource()
    times, symbols, prices = [], [], []
    for symbol, values in PRICES.items():
        for i, v in enumerate(values):
            times.append(T0 + i * MIN)
            symbols.append(symbol)
            prices.append(float(v))
    src.add_table("crypto", pa.table({"time": times, "symbol": symbols, "price": prices}))
    yield src
    src.close()


class OneByOne(SqlRepository):
    """The reference: one ``record`` (one transaction) per rule."""

    def record_many(self, at, entries):
        return Repository.record_many(self, at, entries)


def in_failing_sessions(db, call):  # noqa: F811
    """``call()`` with the store's transactions failing after their statements ran, as a store going away
    at commit would; the sessions are restored afterwards."""
    real = db.session

    @contextmanager
    def failing():
        with real() as session:
            yield session
            session.flush()
            raise RuntimeError("the store went away")

    db.session = failing
    try:
        return call()
    finally:
        del db.session


class CountingTogether(SqlRepository):
    """Counts the rules a shared write wrote; with ``fail_first``, the first shared transaction fails after its
    statements ran."""

    fail_first = False

    def __init__(self, db) -> None:  # noqa: F811
        super().__init__(db)
        self.together = 0
        self.failed = 0

    def counted(self, write, entries):
        """``write(entries)``, one of the repository's shared writes, counted once it succeeded (a write that
        failed and fell back to one transaction per rule would go unnoticed otherwise)."""
        if not self.fail_first or self.failed:
            result = write(entries)
            self.together += len(entries)
            return result
        self.failed += 1
        return in_failing_sessions(self.db, partial(write, entries))


_STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def assert_times_stored_alike(db, ids: list[int]) -> None:  # noqa: F811
    """On SQLite, times are text: every time the rules' rows hold has the one format the store's queries
    compare with (``YYYY-MM-DD HH:MM:SS.ffffff``), however it was written."""
    if db.dialect != "sqlite":
        return
    marks = ", ".join(str(int(i)) for i in ids)
    queries = {
        "rule_states": f"SELECT since, last_evaluated_at, last_notified_at FROM rule_states WHERE rule_id IN ({marks})",
        "alerts": f"SELECT started_at, resolved_at FROM alerts WHERE rule_id IN ({marks})",
        "alert_events": f"SELECT e.at FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                        f"WHERE a.rule_id IN ({marks})",
    }
    with db.session() as s:
        for table, sql in queries.items():
            for row in s.connection().exec_driver_sql(sql):
                for value in row:
                    assert value is None or _STORED_TIME.match(value), (table, value)


def snapshot(db, ids: list[int]):  # noqa: F811
    """Everything the rules wrote, by position of the rule in ``ids``."""
    position = {rule_id: i for i, rule_id in enumerate(ids)}
    with db.session() as s:
        states = sorted((position[r.rule_id], r.series_key, r.state, r.severity, r.since, r.last_evaluated_at,
                         repr(r.last_values), repr(r.machine), r.alert_id is not None, repr(r.labels), r.last_error)
                        for r in s.scalars(select(RuleState).where(RuleState.rule_id.in_(ids))))
        alerts = sorted((position[a.rule_id], a.series_key, a.state, a.severity, a.started_at, a.resolved_at)
                        for a in s.scalars(select(Alert).where(Alert.rule_id.in_(ids))))
        events = sorted((position[a.rule_id], e.kind, e.at, e.from_state, e.to_state)
                        for e, a in s.execute(select(AlertEvent, Alert).join(Alert).where(Alert.rule_id.in_(ids))))
        outbox = sorted((position[o.rule_id], o.kind, o.status)
                        for o in s.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id.in_(ids))))
    return states, alerts, events, outbox
