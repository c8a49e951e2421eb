"""Three `monitors-mcp serve --http --stateless` processes on one MariaDB and one Redis, behind a
round-robin TCP proxy on 127.0.0.1 (no sticky routing): an SDK client's calls land on all three
and succeed, in the per-request protocol and in the initialize handshake; a replica SIGKILLed
mid-conversation leaves the client carrying on; per-user call limits hold across replicas."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography.fernet import Fernet

from monitors_mcp.concurrency import RedisLimiter
from monitors_mcp.service import UserService
from monitors_mcp.store import Database
from tests.support import mariadb, redis_server
from tests.support.ports import free_port
from tests.support.round_robin import RoundRobinProxy

from tests.support.store import mysql_base_url
from tests.support.mcp_client import BTC

pytestmark = [pytest.mark.anyio, pytest.mark.mysql]

ROOT = Path(__file__).resolve().parents[3]
REPLICAS = 3
PER_USER = 2


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    url = redis_server.server_url()
    if url is not None:
        yield url
        return
    if os.environ.get("MONITORS_REQUIRE_REDIS") == "1":
        pytest.fail("Redis is not reachable (set MONITORS_TEST_REDIS_URL or run scripts/test.sh)")
    url = redis_server.start()  # no Redis running: start one for this module, never skip
    yield url
    redis_server.stop()


@pytest.fixture(scope="module")
def store() -> Iterator[Database]:
    url = mariadb.database_url(mysql_base_url(), f"mt_replicas_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    db = Database(url)
    db.migrate()
    yield db
    db.dispose()
    mariadb.drop_database(url)


class Replicas:
    """The server processes, the proxy in front of them, and each one's log."""

    def __init__(self, db: Database, redis_url: str, workdir: Path) -> None:
        self.prefix = f"monitors-test:{uuid.uuid4().hex[:8]}:"
        self.redis_url = redis_url
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.logs = [workdir / f"replica-{i}.log" for i in range(REPLICAS)]
        self.proxy = RoundRobinProxy([("127.0.0.1", port) for port in self.ports])
        self.env = {**os.environ, "MONITORS_DATABASE_URL": db.url, "MONITORS_SECRET_KEY": Fernet.generate_key().decode(),
                    "MONITORS_DATA_DIR": str(workdir), "PYTHONPATH": str(ROOT), "MONITORS_REDIS_PREFIX": self.prefix,
                    "MONITORS_MAX_CONCURRENT_CALLS": str(PER_USER)}
        self.procs: list[subprocess.Popen | None] = [None] * REPLICAS

    def start(self, i: int) -> None:
        with self.logs[i].open("a") as out:
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "monitors_mcp", "serve", "--http", "--stateless", "--host", "127.0.0.1",
                 "--port", str(self.ports[i]), "--redis-url", self.redis_url,
                 "--public-url", f"http://127.0.0.1:{self.proxy.port}/mcp"],
                env=self.env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)

    def wait(self, i: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.ports[i]), timeout=0.2).close()
                return
            except OSError:
                if self.procs[i].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica {i} did not start:\n{self.logs[i].read_text()}") from None
                time.sleep(0.1)

    def requests(self, i: int) -> int:
        return self.logs[i].read_text().count('"POST /mcp HTTP/1.1" 200')

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}/mcp"

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture(scope="module")
def replicas(store: Database, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    running = Replicas(store, redis_url, tmp_path_factory.mktemp("replicas"))
    with running.proxy:
        try:
            for i in range(REPLICAS):
                running.start(i)
            for i in range(REPLICAS):
                running.wait(i)
            yield running
        finally:
            running.stop()
    for log in running.logs:
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _token(db: Database, prefix: str) -> tuple[int, str]:
    users = UserService(db)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    user_id = users.add_user(name)
    return user_id, users.create_token(name).token


def _client(url: str, token: str, **options):  # noqa: ANN003, ANN202
    """The SDK's client opening a connection per request (no keep-alive), so that a TCP balancer
    spreads even one conversation's requests over the replicas."""
    from contextlib import asynccontextmanager

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def connect():  # noqa: ANN202
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                      limits=httpx2.Limits(max_keepalive_connections=0),
                                      timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(url, http_client=http), **options) as client:
                yield client

    return connect()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_one_conversations_calls_land_on_every_replica_and_succeed(store: Database, replicas: Replicas,
                                                                        mode: str) -> None:
    _, token = _token(store, f"spread-{mode}")
    before = [replicas.requests(i) for i in range(REPLICAS)]
    async with _client(replicas.url, token, mode=mode) as client:
        for i in range(4):
            created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": f"r{i}"})
            assert not created.is_error, created.content
        for _ in range(4):
            listed = await client.call_tool("list_alert_rules", {})
            assert sorted(r["name"] for r in listed.structured_content["rules"]) == ["r0", "r1", "r2", "r3"]
        got = await client.call_tool("get_alert_rule", {"rule": "r2"})
        assert got.structured_content["name"] == "r2"
    served = [replicas.requests(i) - before[i] for i in range(REPLICAS)]
    assert all(n >= 2 for n in served), served  # every replica answered part of one conversation


async def test_per_user_limits_hold_across_replicas(store: Database, replicas: Replicas) -> None:
    user_id, token = _token(store, "limited")
    _, other_token = _token(store, "other")
    limiter = RedisLimiter(replicas.redis_url, prefix=replicas.prefix)
    key = f"user:{user_id}:calls"
    try:
        # two calls of this user in flight somewhere (the most allowed): every replica refuses a third
        held = [await limiter.acquire(key, PER_USER, 60) for _ in range(PER_USER)]
        assert all(held)
        before = [replicas.requests(i) for i in range(REPLICAS)]
        async with _client(replicas.url, token) as client:
            for _ in range(REPLICAS * 2):
                refused = await client.call_tool("list_alert_rules", {})
                assert refused.is_error and refused.structured_content["code"] == "too_many_concurrent_calls"
                assert f"{PER_USER} tool calls running" in refused.structured_content["error"]
            assert all(replicas.requests(i) > before[i] for i in range(REPLICAS))  # asked on every replica
            async with _client(replicas.url, other_token) as other:  # nobody else is affected
                assert not (await other.call_tool("list_alert_rules", {})).is_error
            await limiter.release(key, held.pop())
            for _ in range(REPLICAS):  # one slot free: one call at a time goes through, on any replica
                assert not (await client.call_tool("list_alert_rules", {})).is_error
        assert await limiter.held(key) == 1  # the calls gave their slots back
    finally:
        for handle in held:
            await limiter.release(key, handle)
        await limiter.close()


async def test_a_replica_killed_mid_conversation_leaves_the_client_carrying_on(store: Database,
                                                                              replicas: Replicas) -> None:
    _, token = _token(store, "survivor")
    victim = 1
    async with _client(replicas.url, token) as client:
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "before"})).is_error
        for _ in range(REPLICAS):
            assert not (await client.call_tool("list_alert_rules", {})).is_error
        replicas.procs[victim].send_signal(signal.SIGKILL)
        replicas.procs[victim].wait(timeout=10)
        for i in range(6):
            created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": f"after_{i}"})
            assert not created.is_error, created.content
        listed = await client.call_tool("list_alert_rules", {})
        assert len(listed.structured_content["rules"]) == 7
    assert replicas.proxy.refused[("127.0.0.1", replicas.ports[victim])] >= 1  # the balancer met the dead one
    replicas.start(victim)  # back for any test after this one
    replicas.wait(victim)
