"""An engine restarted under its replica name sends at once what it was sending when it stopped; another
replica waits for that claim to run out (SQLite and MariaDB)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from sqlalchemy import select, update

from engine.notify.dispatch import Dispatcher
from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from monitors_mcp.store import NotificationOutbox
from tests.support.receivers import HttpReceiver

MIN = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


@pytest.fixture
def source():
    src = DataFusionSource()
    src.add_table("crypto", pa.table({"time": [T0], "symbol": ["BTC"], "price": [71_000.0]}))
    yield src
    src.close()


def test_a_restarted_replica_takes_back_its_own_claims_at_once(db, workspace, alice, source, secrets):  # noqa: F811
    with HttpReceiver() as http:
        ws = workspace(alice)
        ws.channels.add("hook", http.url("json", "/hook"))
        rule = ws.rules.create('rule takeback { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook }')
        Runner(StoreRules(db), SqlRepository(db), Evaluator(source)).tick(T0, all_rules=True)
        now = datetime.now(timezone.utc)
        # what a replica that was killed mid-send leaves: a row claimed by it, its claim still running
        with db.session() as s:
            s.execute(update(NotificationOutbox).where(NotificationOutbox.rule_id == rule.id)
                      .values(status="sending", claimed_by="engine-0", next_attempt_at=now + timedelta(seconds=90)))

        other = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-1")
        assert other.dispatch(now).attempted == 0  # another replica's claim: not before it runs out
        restarted = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-0")
        assert restarted.dispatch(now).sent == 1 and http.wait_for(1)
        assert restarted.dispatch(now).attempted == 0 and other.dispatch(now).attempted == 0
        with db.session() as s:
            row = s.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id == rule.id)).one()
            assert row.status == "sent" and row.claimed_by == "engine-0"
        assert http.count == 1
