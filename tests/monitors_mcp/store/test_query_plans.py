"""Every query the tools run is answered from an index: no full table scan, no sort of the
history. Checked with SQLite's EXPLAIN QUERY PLAN on the statements the service really sends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from monitors_mcp.service import Workspace
from monitors_mcp.store import Database
from monitors_mcp.store.secrets import SecretBox
from monitors_mcp.store.types import utcnow

from tests.support.mcp_client import BTC, add_alerts, add_series_state


@pytest.fixture
def sqlite_db(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    db.migrate()
    return db


def test_tool_queries_use_indexes(sqlite_db: Database) -> None:
    from monitors_mcp.service import UserService

    db = sqlite_db
    user = UserService(db).add_user("planner")
    ws = Workspace(db, user, SecretBox.generate())
    rule = ws.rules.create(BTC, name="btc")
    ws.rules.create('rule r2 { when last(x.y) > 1\n notify desk }')
    add_alerts(db, rule.id, user, 120)
    add_series_state(db, rule.id, {"symbol": "BTC"})
    ws.channels.add("desk", "jsons://example.com/hook")

    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        page = ws.rules.list(limit=1)
        ws.rules.list(query="btc", cursor=page.next_cursor)
        ws.rules.get("btc")
        ws.rules.get(rule.id)
        alerts = ws.alerts.list(limit=10)
        ws.alerts.list(cursor=alerts.next_cursor, limit=10)
        ws.alerts.list(state="firing", since="1h", limit=10)
        ws.alerts.list(rule="btc", limit=10)
        ws.alerts.acknowledge(alerts.alerts[0].id)
        ws.rules.silence("btc", until=(utcnow() + timedelta(hours=1)).isoformat())
        ws.rules.update("btc", enabled=False)
        ws.channels.list()
        ws.rules.create('last(x.y) > 1', name="r3")
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)

    assert len(statements) > 10
    problems = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            details = [row[-1] for row in plan]
            for detail in details:
                full_scan = detail.startswith("SCAN ") and "USING" not in detail
                if full_scan and "alembic_version" not in detail:
                    problems.append((detail, statement))
                if "TEMP B-TREE" in detail and "alerts" in statement.split("FROM", 1)[1][:40]:
                    problems.append((detail, statement))
    assert problems == []
