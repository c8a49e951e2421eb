"""Leases on MariaDB: replicas share the rules evenly and disjointly through ``SELECT … FOR UPDATE SKIP
LOCKED``, a new replica takes its share without restarting the others, a dead one's rules are taken over
once its leases expire, and a takeover cannot send a notification twice."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from sqlalchemy import func, select, update

from engine.notify.dispatch import Dispatcher
from engine.evaluate import Evaluator
from engine.leases import LeasedRules, LeaseConflict
from engine.repository import SqlRepository
from engine.rules import StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import EngineLease, NotificationOutbox
from monitors_mcp.store.secrets import SecretBox
from tests.support.leases import store, wipe  # noqa: F401 - the store fixture
from tests.support.receivers import HttpReceiver

pytestmark = pytest.mark.mysql

MIN = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


@pytest.fixture
def db(store):
    wipe(store)
    return store


SECRETS = SecretBox.generate()
_names = itertools.count()


@pytest.fixture
def ws(db):
    user = UserService(db).add_user(f"leases-{next(_names)}")
    return Workspace(db, user, SECRETS)


def make_rules(ws, count: int, threshold: float = 70_000) -> list[int]:
    return [ws.rules.create(f'rule r{next(_names)} {{ when last(crypto.price{{symbol="BTC"}}, 1m) > {threshold} }}').id
            for i in range(count)]


def replica(db, name: str, duration: float = 30.0) -> LeasedRules:
    return LeasedRules(StoreRules(db), db, name, lease_duration=duration)


def assert_disjoint(*replicas: LeasedRules) -> None:
    seen: set[int] = set()
    for r in replicas:
        assert not (seen & r.held), f"{r.replica} holds a rule another one holds"
        seen |= r.held


def test_replicas_share_evenly_and_a_new_one_takes_its_share(db, ws) -> None:
    ids = make_rules(ws, 10)
    a = replica(db, "a")
    a.acquire()
    assert a.held == set(ids) and a.share == 10 and len(a.current()) == 10
    b = replica(db, "b")
    b.acquire()  # a holds everything and its leases are live: b gets nothing yet
    assert b.held == frozenset() and b.replicas == 2 and b.share == 5
    assert_disjoint(a, b)
    a.renew()  # a sees b and releases what is above its share
    assert len(a.held) == 5 and a.released == 5
    b.renew()
    assert len(b.held) == 5 and a.held | b.held == set(ids)
    assert_disjoint(a, b)
    c = replica(db, "c")
    c.acquire()
    for r in (a, b, c, a, b, c):
        r.renew()
        assert_disjoint(a, b, c)
    assert sorted(len(r.held) for r in (a, b, c)) == [2, 4, 4]
    assert a.held | b.held | c.held == set(ids)
    assert a.takeovers == b.takeovers == c.takeovers == 0


def test_a_dead_replicas_rules_are_taken_over_when_its_leases_expire(db, ws) -> None:
    ids = make_rules(ws, 6)
    a, b = replica(db, "a", duration=1.0), replica(db, "b", duration=1.0)
    a.acquire()
    b.acquire()
    assert a.held == set(ids) and b.held == frozenset()
    # a dies: it renews no more. Until its leases run out, b cannot take them
    b.renew()
    assert b.held == frozenset()
    time.sleep(1.1)
    b.renew()
    assert b.held == set(ids) and b.takeovers == 6 and b.replicas == 1
    assert a.current() == [] or not a.holds(a.current()[0])  # a's view has expired too


def test_holds_extends_a_lease_close_to_running_out_and_refuses_an_expired_one(db, ws) -> None:
    (rule_id,) = make_rules(ws, 1)
    a = replica(db, "a", duration=3.0)
    a.acquire()
    (rule,) = a.current()
    time.sleep(2.5)  # less than the 0.6 s margin left: holds() extends first
    assert a.holds(rule)
    assert a.status()["valid_for"] > 2.0
    time.sleep(3.1)  # expired: another replica may have it now
    b = replica(db, "b", duration=3.0)
    b.acquire()
    assert rule_id in b.held
    assert not a.holds(rule) and a.discarded == 1


def test_release_frees_the_leases_at_once(db, ws) -> None:
    ids = make_rules(ws, 4)
    a, b = replica(db, "a"), replica(db, "b")
    a.acquire()
    b.acquire()
    assert b.held == frozenset()
    a.release()
    b.renew()
    assert b.held == set(ids) and b.takeovers == 0  # released leases are free, not taken over


def test_rule_changes_add_and_drop_lease_rows(db, ws) -> None:
    ids = make_rules(ws, 3)
    a = replica(db, "a")
    a.acquire()
    ws.rules.update(ids[0], enabled=False)
    ws.rules.delete(ids[1])
    new = make_rules(ws, 1, threshold=1)[0]
    held = {r.store_id for r in a.current()}  # the rules changed: renewed at once
    assert held == {ids[2], new}
    with db.session() as s:
        assert set(s.scalars(select(EngineLease.rule_id))) == {ids[2], new}


def test_concurrent_replicas_never_hold_the_same_rule(db, ws) -> None:
    ids = make_rules(ws, 40)
    replicas = [replica(db, f"r{i}", duration=5.0) for i in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(replicas))

    def work(r: LeasedRules) -> None:
        try:
            for _ in range(6):
                barrier.wait(10)
                r.renew()
                barrier.wait(10)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert_disjoint(*replicas)
    assert set().union(*(r.held for r in replicas)) == set(ids)
    assert sorted(len(r.held) for r in replicas) == [10, 10, 10, 10]


def test_once_mode_refuses_to_run_beside_live_replicas(db, ws) -> None:
    make_rules(ws, 2)
    replica(db, "live").acquire()
    once = LeasedRules(StoreRules(db), db, "once", exclusive=True)
    with pytest.raises(LeaseConflict, match=r"another engine \(live\) is running on this store"):
        once.acquire()


def test_a_takeover_cannot_send_twice(db, ws) -> None:
    source = DataFusionSource()
    source.add_table("crypto", pa.table({"time": [T0], "symbol": ["BTC"], "price": [71_000.0]}))
    with HttpReceiver() as http:
        ws.channels.add("hook", http.url("json", "/hook"))
        ws.rules.create('rule btc { when last(crypto.price{symbol="BTC"}, 5m) > 70000\n notify hook }')
        a, b = replica(db, "a", duration=1.0), replica(db, "b", duration=1.0)
        a.acquire()
        first = Runner(a, SqlRepository(db), Evaluator(source)).tick(T0 + MIN, all_rules=True)
        assert first.outbox_rows == 1
        time.sleep(1.1)  # a died after recording, before dispatching; b takes over and runs the same tick
        second = Runner(b, SqlRepository(db), Evaluator(source)).tick(T0 + MIN, all_rules=True)
        assert b.takeovers == 1 and second.rules == 0  # already evaluated for this due time: skipped
        with db.session() as s:  # even evaluated again (the mark lost), the outbox key stops a second row
            s.execute(update(EngineLease).values(last_tick_at=None))
        third = Runner(b, SqlRepository(db), Evaluator(source)).tick(T0 + MIN, all_rules=True)
        assert third.rules == 1 and third.outbox_rows == 0
        assert Dispatcher(db, SECRETS, attempt_timeout=5).dispatch().sent == 1 and http.wait_for(1)
        assert Dispatcher(db, SECRETS, attempt_timeout=5).dispatch().attempted == 0
        time.sleep(0.2)
        assert http.count == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationOutbox)) == 1
    source.close()
