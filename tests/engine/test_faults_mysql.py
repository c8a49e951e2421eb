"""Faults on MariaDB: (c) the store unreachable for a while (through a TCP proxy cut and restored: the engine
keeps running, /readyz says not ready, it recovers and sends once); (e) three replicas, one SIGKILLed
mid-run: its rules are taken over after its leases expire, every notification arrives exactly once, and no
rule is evaluated by two replicas in one tick."""

from __future__ import annotations

import collections
import json
import time
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import AlertEvent, EngineLease, NotificationOutbox
from monitors_mcp.store.secrets import SecretBox
from tests.support.prices import write_prices
from tests.support.engine_process import EngineProcess, TcpProxy, base_env, receipts, rule_text, wait_until
from tests.support.leases import store, wipe  # noqa: F401 - the store fixture
from tests.support.influx_server import InfluxServer
from tests.support.receivers import HttpReceiver

pytestmark = pytest.mark.mysql


@pytest.fixture
def rig(store, tmp_path):
    wipe(store)
    key = Fernet.generate_key().decode()
    with InfluxServer(token="fault-token") as influx, HttpReceiver() as http:
        ws = Workspace(store, UserService(store).add_user(f"ops-{time.time_ns()}"), SecretBox([key]))
        ws.channels.add("hook", http.url("json", "/hook"))
        yield store, ws, influx, http, key, tmp_path


def test_store_unreachable_for_a_while_then_back(rig) -> None:
    db, ws, influx, http, key, tmp = rig
    target = urlsplit(db.url)
    with TcpProxy(target.hostname, target.port or 3306) as proxy:
        via_proxy = target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl()
        env = base_env(via_proxy, key, influx)
        ws.rules.create(rule_text("early"))
        write_prices(influx, {"A": 200})
        with EngineProcess(env, tmp / "engine.log") as engine:
            wait_until(lambda: http.count >= 1, 30, what="the first notification")
            wait_until(engine.ready, 15, what="ready")
            proxy.down()
            wait_until(lambda: engine.get("/readyz")[0] == 503, 20, what="not ready")
            status, body = engine.get("/readyz")
            assert json.loads(body)["store"] != "ok"
            ws.rules.create(rule_text("late"))  # written straight to the store, seen once it is back
            time.sleep(4)
            assert engine.alive() and engine.get("/healthz")[0] == 200
            assert http.count == 1, receipts(http)
            proxy.up()
            wait_until(engine.ready, 30, what="ready again")
            wait_until(lambda: http.count >= 2, 30, what="the late rule's notification")
            time.sleep(3)
            assert engine.alive()
            assert engine.terminate() == 0
    counts = receipts(http)
    assert len(counts) == 2 and set(counts.values()) == {1}, counts
    lines = engine.lines()
    assert all("Traceback" not in str(line.get("message")) for line in lines)


def test_three_replicas_one_killed_mid_run(rig) -> None:
    db, ws, influx, http, key, tmp = rig
    # Leases long enough that a replica slowed down by a busy machine does not lose them between its loops.
    env = dict(base_env(db.url, key, influx), MONITORS_ENGINE_LEASE_DURATION="6")
    rules = [ws.rules.create(rule_text(f"r{i}", threshold=100 + i)).id for i in range(12)]
    # A replica killed while sending leaves its claimed outbox rows to be taken again once the claim runs
    # out (twice the attempt timeout plus 30 s): keep that short here.
    config = tmp / "engine.toml"
    config.write_text("attempt_timeout = 3\nfirst_backoff = 1\nmax_backoff = 2\n")
    replicas = [EngineProcess(dict(env, MONITORS_ENGINE_REPLICA=f"rep-{n}"), tmp / f"rep-{n}.log",
                              "--log-level", "debug", "--config", str(config)) for n in "abc"]
    try:
        for r in replicas:
            r.start()
        wait_until(lambda: all(r.metric("monitors_engine_rules_held") == 4 for r in replicas), 60,
                   what="4 rules held by each replica")
        write_prices(influx, {"X": 500, "Y": 600})  # 12 rules x 2 series fire
        time.sleep(1.0)  # the replicas are ticking on it
        victim = replicas[1]
        victim.kill()
        wait_until(lambda: sum(r.metric("monitors_engine_rules_held") for r in (replicas[0], replicas[2])) == 12,
                   60, what="the killed replica's rules taken over")
        takeovers = sum(r.metric("monitors_engine_lease_takeovers_total") for r in (replicas[0], replicas[2]))
        assert takeovers >= 4  # the victim's 4; more if a busy survivor's lease ran out for a moment
        wait_until(lambda: http.count >= 24, 60, what="24 firing notifications")
        write_prices(influx, {"X": 1, "Y": 1})  # everything resolves, also on the taken-over rules
        wait_until(lambda: http.count >= 48, 60, what="24 resolved notifications")
        time.sleep(3)
        for r in (replicas[0], replicas[2]):
            assert r.terminate() == 0
    finally:
        for r in replicas:
            r.close()
    counts = receipts(http)
    assert len(counts) == 48 and set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationOutbox)) == 48
        events = s.execute(select(AlertEvent.alert_id, AlertEvent.kind)).all()
        holders = set(s.scalars(select(EngineLease.holder)))
    assert holders == {""}  # SIGTERM released the survivors' leases
    assert len(events) == len(set(events)) == 48  # one fired and one resolved per alert, never twice
    seen: dict[tuple[int, str], str] = {}
    for r in replicas:
        for line in r.lines():
            if line.get("event") != "tick":
                continue
            for rule_id in line["rule_ids"]:
                other = seen.setdefault((rule_id, line["at"]), r.env["MONITORS_ENGINE_REPLICA"])
                assert other == r.env["MONITORS_ENGINE_REPLICA"], f"rule {rule_id} at {line['at']} twice"
    by_replica = collections.Counter(seen.values())
    assert set(by_replica) == {"rep-a", "rep-b", "rep-c"} and set(rules) == {rid for rid, _ in seen}
