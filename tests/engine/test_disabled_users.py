"""A disabled user's rules stop being evaluated at the engine's next reload, and come back when
the user is enabled again; their firing alert does not fire again meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from monitors_mcp.service import UserService
from monitors_mcp.store import Alert, EngineLease

MIN = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


@pytest.fixture
def source():
    src = DataFusionSource()
    src.add_table("crypto", pa.table({"time": [T0 + i * MIN for i in range(10)], "symbol": ["BTC"] * 10,
                                      "price": [75_000.0] * 10}))
    yield src
    src.close()


def _name(db, user_id):  # noqa: ANN001, ANN202, F811
    return next(n for i, n in UserService(db).list_users() if i == user_id)


def test_rules_of_a_disabled_user_are_not_loaded_until_enabled(db, workspace, new_user):  # noqa: F811
    off, on = new_user("off"), new_user("on")
    off_rule = workspace(off).rules.create('rule a { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    on_rule = workspace(on).rules.create('rule b { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    rules = StoreRules(db)
    loaded = {r.store_id for r in rules.current()}
    assert {off_rule.id, on_rule.id} <= loaded
    UserService(db).set_disabled(_name(db, off), True)
    loaded = {r.store_id for r in rules.current()}  # the fingerprint sees the change: reloaded
    assert off_rule.id not in loaded and on_rule.id in loaded
    UserService(db).set_disabled(_name(db, off), False)
    assert off_rule.id in {r.store_id for r in rules.current()}


def test_the_engine_evaluates_only_enabled_users_rules(db, workspace, new_user, source):  # noqa: F811
    off, on = new_user("off"), new_user("on")
    off_rule = workspace(off).rules.create('rule a { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    on_rule = workspace(on).rules.create('rule b { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    UserService(db).set_disabled(_name(db, off), True)
    runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
    runner.tick(T0 + 5 * MIN, all_rules=True)
    with db.session() as s:
        fired = dict(s.execute(select(Alert.rule_id, func.count()).where(Alert.rule_id.in_([off_rule.id, on_rule.id]))
                               .group_by(Alert.rule_id)).all())
    assert fired == {on_rule.id: 1}


def test_leases_leave_out_a_disabled_users_rules(db, workspace, new_user):  # noqa: F811
    from engine.leases import LeasedRules

    off = new_user("lease")
    rule = workspace(off).rules.create('rule a { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    leases = LeasedRules(StoreRules(db), db, "t-disabled", lease_duration=30)
    leases._sync_rows()
    with db.session() as s:
        assert s.get(EngineLease, rule.id) is not None
    UserService(db).set_disabled(_name(db, off), True)
    leases._sync_rows()
    with db.session() as s:
        assert s.get(EngineLease, rule.id) is None
