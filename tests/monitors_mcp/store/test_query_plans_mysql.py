"""list_alerts on MariaDB reads a page from an index, never sorting the user's whole history:
checked with EXPLAIN on the statements the service really sends, over enough alerts for the
optimizer's choice to matter (with the rules joined into the page query it started from the
rules and sorted every alert — 350 ms a page at 100,000 alerts)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import event

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import Alert, Database, Rule
from monitors_mcp.store.secrets import SecretBox
from monitors_mcp.store.types import utcnow
from tests.support import mariadb

from tests.support.store import mysql_base_url

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def db():  # noqa: ANN201
    url = mariadb.database_url(mysql_base_url(), "mt_plans_mysql")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()
    mariadb.drop_database(url)


def _seed(db: Database, user_id: int, rules: int = 20, alerts: int = 5_000) -> list[int]:
    now = utcnow()
    with db.session() as session:
        made = [Rule(owner_id=user_id, name=f"r{i}", live_name=f"r{i}", text="x", canonical="x", created_at=now,
                     updated_at=now) for i in range(rules)]
        session.add_all(made)
        session.flush()
        ids = [r.id for r in made]
    rows = [{"rule_id": ids[i % rules], "owner_id": user_id, "series_key": hashlib.sha256(str(i).encode()).hexdigest(),
             "labels": {"n": str(i)}, "severity": "critical", "state": "resolved" if i % 10 else "firing",
             "started_at": now - timedelta(minutes=i)} for i in range(alerts)]
    with db.engine.begin() as conn:
        conn.execute(Alert.__table__.insert(), rows)
        conn.exec_driver_sql("ANALYZE TABLE alerts, rules")
    return ids


@pytest.mark.parametrize("kwargs", [{}, {"state": "firing"}, {"rule": "r3"}, {"since": "2h"}])
def test_list_alerts_pages_come_from_an_index_without_a_sort(db: Database, kwargs: dict) -> None:
    users = UserService(db)
    user_id = users.ensure_user("plans")
    if not users.describe_users()[0].rules:
        _seed(db, user_id)
    ws = Workspace(db, user_id, SecretBox.generate())
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        first = ws.alerts.list(limit=50, **kwargs)
        ws.alerts.list(limit=50, cursor=first.next_cursor, **kwargs) if first.next_cursor else None
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert first.alerts
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            if "FROM alerts" not in statement:
                continue
            plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters).mappings().all()
            extra = " ".join(str(row["Extra"] or "") for row in plan)
            assert "filesort" not in extra and "temporary" not in extra, (statement, plan)
