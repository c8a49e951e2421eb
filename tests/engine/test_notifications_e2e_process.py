"""(h) A grouped send cut short: the real ``monitors-engine`` process, on SQLite and MariaDB, SIGKILLed while
the receiver is taking a group message in, then restarted under the same replica name. Every notification
reaches the receiver at least once, and no group message lists one twice."""

from __future__ import annotations

import collections
import threading
import time
import uuid

from cryptography.fernet import Fernet
from sqlalchemy import select

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import NotificationOutbox, User
from monitors_mcp.store.secrets import SecretBox
from tests.support.engine_process import EngineProcess, base_env, wait_until
from tests.support.influx_server import InfluxServer
from tests.support.prices import write_prices
from tests.support.receivers import HttpReceiver

SERIES = 40


def listed(item) -> list[str]:
    """The notifications a group message lists, by their titles (``key=…``)."""
    text = item.data.get("message") or ""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("key=")]


def test_h_engine_killed_in_the_middle_of_a_group_send_then_restarted(db, tmp_path) -> None:
    key = Fernet.generate_key().decode()
    user = UserService(db).add_user(f"group-{uuid.uuid4().hex[:10]}")
    ws = Workspace(db, user, SecretBox([key]))
    try:
        with InfluxServer(token="group-token") as influx, HttpReceiver() as http:
            entered = threading.Event()
            original = http._take_failure

            def slow_first_message():  # the first message is held at the receiver while the engine dies
                if not entered.is_set():
                    entered.set()
                    time.sleep(3)
                return original()

            http._take_failure = slow_first_message
            ws.channels.add("hook", http.url("json", "/hook"))
            ws.channels.update("hook", policies={"group_by": ["rule"], "group_wait": "1s", "group_interval": "5m"})
            ws.rules.create('rule prices_high {\n  when last(crypto.price, 1h) > 100\n  group by symbol\n'
                            '  every 2s\n  notify hook\n  title "key={{ rule }}|{{ state }}|{{ labels.symbol }}"\n}')
            write_prices(influx, {f"S{i:02d}": 200 + i for i in range(SERIES)})
            env = dict(base_env(db.url, key, influx), MONITORS_ENGINE_REPLICA="engine-g")
            config = tmp_path / "engine.toml"
            config.write_text("attempt_timeout = 5\nfirst_backoff = 1\nmax_backoff = 2\n")
            first = EngineProcess(env, tmp_path / "first.log", "--config", str(config))
            second = EngineProcess(env, tmp_path / "second.log", "--config", str(config))
            try:
                first.start()
                assert entered.wait(90), first.log_path.read_text()  # a loaded machine starts an engine slowly
                first.kill()  # the receiver is still reading the message in
                wait_until(lambda: http.count >= 1, 10, what="the cut message to land")
                second.start()
                wait_until(lambda: http.count >= 2, 90, what="the group message sent again")
                time.sleep(4)  # more ticks: nothing new
                assert second.alive()
                assert second.terminate() == 0
            finally:
                first.close()
                second.close()
        messages = [listed(item) for item in http.received]
        assert len(messages) == 2, [len(m) for m in messages]
        expected = {f"key=prices_high|firing|S{i:02d}" for i in range(SERIES)}
        for message in messages:  # each message lists the whole group, each notification once
            assert collections.Counter(message) == collections.Counter(expected), message
        with db.session() as s:
            statuses = s.scalars(select(NotificationOutbox.status).where(NotificationOutbox.owner_id == user)).all()
        assert sorted(statuses) == ["sent"] * SERIES
    finally:
        with db.session() as s:
            s.delete(s.get(User, user))
