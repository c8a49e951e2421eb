"""Faults on one engine (SQLite store, the test InfluxDB 3 endpoint, real receivers): each test counts what
reached the receivers by notification key — nothing lost, nothing twice.

(a) SIGKILL mid-tick, then a restart; (b) a receiver down for a while (delivered once it is back) and one
down for good (failed with the reason past the deadline); (d) a slow query: its rule is in error, nothing
fires for it, the other rules go on, and it recovers."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import Database, NotificationLog, NotificationOutbox, Rule
from monitors_mcp.store.secrets import SecretBox
from tests.support.engine_process import EngineProcess, base_env, receipts, rule_text, wait_until
from tests.support import influx_store
from tests.support.influx_server import InfluxServer
from tests.support.receivers import HttpReceiver
from tests.support.prices import write_prices


@pytest.fixture
def rig(tmp_path):
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'monitors.db'}"
    db = Database(url)
    db.migrate()
    with InfluxServer(token="fault-token") as influx, HttpReceiver() as http:
        ws = Workspace(db, UserService(db).add_user("ops"), SecretBox([key]))
        ws.channels.add("hook", http.url("json", "/hook"))
        env = base_env(url, key, influx)
        yield db, ws, influx, http, env, tmp_path
    db.dispose()


def config(tmp_path, **settings) -> str:
    path = tmp_path / "engine.toml"
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()).replace("'", '"'))
    return str(path)


def outbox(db) -> list[tuple[str, str, str | None]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(NotificationOutbox.idempotency_key, NotificationOutbox.status,
                                                   NotificationOutbox.last_error))]


def test_sigkill_mid_tick_then_restart_delivers_every_notification_once(rig) -> None:
    db, ws, influx, http, env, tmp = rig
    for name, window in (("wide1", "1h"), ("wide2", "2h"), ("wide3", "3h")):  # three distinct queries
        ws.rules.create(rule_text(name, window=window))
    write_prices(influx, {f"S{i}": 200 + i for i in range(10)})  # 3 rules x 10 series fire
    entered = threading.Event()
    original = influx.wait_delay
    influx.wait_delay = lambda: (entered.set(), original())  # noqa: E731 - know when a query is in flight
    influx.delay = 2.5
    env = dict(env, MONITORS_ENGINE_REPLICA="engine-a")  # a restarted pod keeps its name
    cfg = config(tmp, first_backoff=1, max_backoff=2, attempt_timeout=5)
    first = EngineProcess(env, tmp / "first.log", "--config", cfg)
    second = EngineProcess(env, tmp / "second.log", "--config", cfg)
    try:
        first.start()
        assert entered.wait(20), first.log_path.read_text()
        time.sleep(0.8)  # in the middle of the tick's queries
        first.kill()
        assert http.count == 0 and outbox(db) == []
        second.start()
        wait_until(lambda: http.count >= 30, 40, what="30 deliveries")
        time.sleep(4)  # two more ticks: nothing new
        assert second.alive()
    finally:
        first.close()
        second.close()
    counts = receipts(http)
    assert len(counts) == 30 and set(counts.values()) == {1}, counts
    rows = outbox(db)
    assert len(rows) == 30 and {status for _, status, _ in rows} == {"sent"}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationLog).where(NotificationLog.status == "sent")) == 30


def test_receiver_down_then_back_is_delivered_once_and_one_down_for_good_fails_with_the_reason(rig) -> None:
    db, ws, influx, http, env, tmp = rig
    with HttpReceiver() as dead:
        ws.channels.add("dead", dead.url("json", "/hook"))
        dead.down()
        http.down()
        ws.rules.create(rule_text("both", channels="hook, dead"))
        write_prices(influx, {"A": 300, "B": 400, "C": 500})
        cfg = config(tmp, first_backoff=1, max_backoff=1, delivery_deadline=15, attempt_timeout=3)
        with EngineProcess(env, tmp / "engine.log", "--config", cfg) as engine:
            wait_until(lambda: _errors(db) >= 6, 20, what="failed attempts")
            assert http.count == 0
            http.up()
            wait_until(lambda: http.count >= 3, 30, what="3 deliveries after the receiver came back")
            wait_until(lambda: sum(1 for _, status, _ in outbox(db) if status == "failed") == 3, 30,
                       what="the dead channel's rows to fail")  # past the 15 s deadline
            time.sleep(2)
            assert engine.metric("monitors_engine_notifications_sent_total") == 3
            assert engine.metric("monitors_engine_notifications_failed_total") == 3
            assert engine.metric("monitors_engine_notifications_retried_total") >= 6
        assert dead.count == 0
    counts = receipts(http)
    assert len(counts) == 3 and set(counts.values()) == {1}, counts
    failed = [(key, error) for key, status, error in outbox(db) if status == "failed"]
    assert len(failed) == 3 and all(error for _, error in failed)
    assert all("127.0.0.1" not in error or "***" not in error for _, error in failed)


def _errors(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(NotificationLog).where(NotificationLog.status == "error"))


def test_a_slow_query_errors_its_rule_only_and_it_recovers(rig, monkeypatch) -> None:
    db, ws, influx, http, env, tmp = rig
    slow = threading.Event()
    slow.set()
    original = influx_store.Database.source

    class Slowed:
        def __init__(self, source) -> None:
            self.inner = source

        def query(self, sql, params=None):
            if slow.is_set() and '"slowm"' in sql:
                time.sleep(4)
            return self.inner.query(sql, params=params)

    monkeypatch.setattr(influx_store.Database, "source", lambda self: Slowed(original(self)))
    fast = ws.rules.create(rule_text("fast"))
    lagging = ws.rules.create(rule_text("lagging", measurement="slowm"))
    write_prices(influx, {"F": 200})
    write_prices(influx, {"L": 200}, measurement="slowm")
    cfg = config(tmp, query_timeout=1.5, first_backoff=1, max_backoff=2)
    with EngineProcess(env, tmp / "engine.log", "--config", cfg) as engine:
        wait_until(lambda: http.count >= 1, 20, what="the fast rule's notification")
        wait_until(lambda: _rule_error(db, lagging.id) is not None, 20, what="the slow rule's error")
        assert "timed out" in _rule_error(db, lagging.id)
        assert _rule_error(db, fast.id) is None
        time.sleep(3)
        assert list(receipts(http)) == [m for m in receipts(http) if m.startswith("key=fast|")]  # nothing else fired
        slow.clear()
        wait_until(lambda: http.count >= 2, 20, what="the slow rule's notification once it recovered")
        wait_until(lambda: _rule_error(db, lagging.id) is None, 10, what="the error to clear")
        time.sleep(2)
        assert engine.alive()
    counts = receipts(http)
    assert len(counts) == 2 and set(counts.values()) == {1}, counts
    assert {m.split("|")[0] for m in counts} == {"key=fast", "key=lagging"}


def _rule_error(db, rule_id: int) -> str | None:
    with db.session() as s:
        return s.scalar(select(Rule.last_error).where(Rule.id == rule_id))
