"""(d) The InfluxDB 3 endpoint down for a while, then back: the rules are in an error state and nothing
fires, the engine keeps running and reports not ready, and once the endpoint is back the rules recover
and every notification arrives exactly once."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import Database, Rule
from monitors_mcp.store.secrets import SecretBox
from tests.support.engine_process import EngineProcess, TcpProxy, base_env, receipts, rule_text, wait_until
from tests.support.influx_server import InfluxServer
from tests.support.receivers import HttpReceiver


def _errors(db, rule_id: int) -> str | None:
    with db.session() as session:
        return session.get(Rule, rule_id).last_error


def test_source_down_then_back(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'monitors.db'}"
    db = Database(url)
    db.migrate()
    with InfluxServer(token="fault-token") as influx, HttpReceiver() as http:
        target = urlsplit(influx.flight_url)
        with TcpProxy(target.hostname, target.port) as proxy:
            ws = Workspace(db, UserService(db).add_user("ops"), SecretBox([key]))
            ws.channels.add("hook", http.url("json", "/hook"))
            rule = ws.rules.create(rule_text("outage"))
            env = dict(base_env(url, key, influx), INFLUXDB3_HOST=f"http://127.0.0.1:{proxy.port}")
            config = tmp_path / "engine.toml"
            config.write_text("query_timeout = 2\nfirst_backoff = 1\nmax_backoff = 1\n")
            proxy.down()
            with EngineProcess(env, tmp_path / "engine.log", "--config", str(config)) as engine:
                wait_until(lambda: _errors(db, rule.id) is not None, 30, what="the rule's error")
                assert engine.alive() and http.count == 0
                wait_until(lambda: not engine.ready(), 15, what="/readyz to report the source")
                status, body = engine.get("/readyz")
                assert status == 503 and "source" in body
                writer = influx.client("markets")
                writer.write("\n".join(f"crypto,symbol={s} price={p} {time.time_ns()}"
                                       for s, p in (("A", 150), ("B", 250))))
                writer.close()
                time.sleep(3)
                assert http.count == 0  # still down: nothing fires
                proxy.up()
                wait_until(lambda: http.count >= 2, 30, what="two deliveries after the source came back")
                wait_until(lambda: _errors(db, rule.id) is None, 15, what="the error to clear")
                wait_until(engine.ready, 15, what="/readyz to recover")
                time.sleep(4)  # two more ticks: nothing new
                assert engine.alive()
    db.dispose()
    counts = receipts(http)
    assert len(counts) == 2 and set(counts.values()) == {1}, counts
