"""Helpers for the MCP tests: connect a client as a user, snapshot the store, write alerts as the engine would."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from mcp import Client

from monitors_mcp.server import build_server, fixed_user
from monitors_mcp.store import Alert, Base, Database, RuleState
from monitors_mcp.store.secrets import SecretBox
from monitors_mcp.store.types import utcnow

BTC = 'last(crypto.price{symbol="BTC"}) > 70000'


@asynccontextmanager
async def connect(db: Database, secrets: SecretBox, user_id: int) -> AsyncIterator[Client]:
    async with Client(build_server(db, secrets, fixed_user(user_id))) as client:
        yield client


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a failed call changed nothing."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name != "last_used_at"]
            rows = conn.execute(sa.select(*columns).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def series_key(labels: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()


def add_alerts(
    db: Database,
    rule_id: int,
    owner_id: int,
    count: int = 1,
    *,
    state: str = "firing",
    start: datetime | None = None,
    step: timedelta = timedelta(minutes=1),
) -> list[int]:
    """Alerts as the engine writes them, started ``step`` apart going back from ``start``."""
    start = start or utcnow()
    rows = []
    for i in range(count):
        labels = {"symbol": "BTC", "n": str(i)}
        rows.append(
            Alert(
                rule_id=rule_id,
                owner_id=owner_id,
                series_key=series_key(labels),
                labels=labels,
                severity="critical",
                state=state,
                started_at=start - i * step,
                resolved_at=(start - i * step + timedelta(seconds=30)) if state == "resolved" else None,
                values_at_start={"last(crypto.price{symbol=\"BTC\"}, 5m)": 70001.5},
            )
        )
    with db.session() as session:
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def add_series_state(db: Database, rule_id: int, labels: dict[str, Any], state: str = "firing") -> None:
    with db.session() as session:
        session.add(
            RuleState(
                rule_id=rule_id,
                series_key=series_key(labels),
                labels=labels,
                state=state,
                severity="critical",
                since=utcnow(),
                last_evaluated_at=utcnow(),
                last_values={"v": 1.0},
            )
        )
