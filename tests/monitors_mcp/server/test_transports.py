"""The real transports with the SDK's own client: a stdio subprocess (the local user), and
streamable HTTP on 127.0.0.1 with bearer tokens for two users."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from monitors_mcp.service import UserService
from monitors_mcp.store import Database

from tests.support.mcp_client import BTC

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
SECRET = "HttpSecretToken1234567890"


@pytest.fixture(scope="module")
def secret_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _env(db: Database, secret_key: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "MONITORS_DATABASE_URL": db.url,
        "MONITORS_SECRET_KEY": secret_key,
        "MONITORS_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


async def test_stdio_subprocess_acts_as_the_local_user(db: Database, secret_key: str, tmp_path: Path) -> None:
    local = f"local-{uuid.uuid4().hex[:8]}"
    errlog = tmp_path / "stderr.log"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "monitors_mcp"],
        env=_env(db, secret_key, tmp_path, MONITORS_USER=local),
        cwd=str(ROOT),
    )
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            valid = await client.call_tool("validate_alert_rule", {"rule": BTC})
            assert valid.structured_content["valid"] is True
            created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
            assert not created.is_error, created.content
            listed = await client.call_tool("list_alert_rules", {})
            assert [r["name"] for r in listed.structured_content["rules"]] == ["btc"]
            got = await client.call_tool("get_alert_rule", {"rule": "btc"})
            assert got.structured_content["id"] == created.structured_content["id"]
            updated = await client.call_tool("update_alert_rule", {"rule": "btc", "enabled": False})
            assert updated.structured_content["version"] == 2
            added = await client.call_tool(
                "add_notification_channel", {"name": "hook", "apprise_url": f"jsons://u:{SECRET}@example.com/x"}
            )
            assert not added.is_error
            deleted = await client.call_tool("delete_alert_rule", {"rule": "btc"})
            assert deleted.structured_content["deleted"] is True
            bad = await client.call_tool("get_alert_rule", {"rule": 987654})
            assert bad.is_error
    user_id = UserService(db).user_id(local)  # created on first run
    assert user_id > 0
    log = errlog.read_text()
    assert "Traceback" not in log and SECRET not in log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(db: Database, secret_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("http")
    log = data_dir / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitors_mcp", "serve", "--http", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **_env(db, secret_key, data_dir)},
            cwd=str(ROOT),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp", log
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@asynccontextmanager
async def http_client(url: str, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def _user_with_token(db: Database, prefix: str) -> tuple[int, str, int]:
    users = UserService(db)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    user_id = users.add_user(name)
    issued = users.create_token(name)
    return user_id, issued.token, issued.id


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_http_rejects_missing_unknown_and_revoked_tokens(db: Database, http_server) -> None:
    url, _ = http_server
    _, token, token_id = _user_with_token(db, "carol")
    async with httpx2.AsyncClient() as http:
        assert (await http.post(url, json=INIT, headers=HEADERS)).status_code == 401
        bogus = {**HEADERS, "Authorization": "Bearer mon_not-a-real-token"}
        assert (await http.post(url, json=INIT, headers=bogus)).status_code == 401
        good = {**HEADERS, "Authorization": f"Bearer {token}"}
        assert (await http.post(url, json=INIT, headers=good)).status_code == 200
        UserService(db).revoke_token(token_id)
        assert (await http.post(url, json=INIT, headers=good)).status_code == 401


async def test_http_two_users_are_isolated(db: Database, http_server) -> None:
    url, log = http_server
    alice, alice_token, alice_token_id = _user_with_token(db, "alice")
    bob, bob_token, _ = _user_with_token(db, "bob")
    async with http_client(url, alice_token) as a:
        rule = (await a.call_tool("create_alert_rule", {"rule": BTC, "name": "shared_name"})).structured_content
        channel = await a.call_tool("add_notification_channel", {"name": "c", "apprise_url": f"jsons://u:{SECRET}@h.example.com/"})
        assert not channel.is_error
    async with http_client(url, bob_token) as b:
        assert (await b.call_tool("list_alert_rules", {})).structured_content["rules"] == []
        assert (await b.call_tool("list_notification_channels", {})).structured_content["channels"] == []
        for tool, args in [
            ("get_alert_rule", {"rule": rule["id"]}),
            ("update_alert_rule", {"rule": rule["id"], "enabled": False}),
            ("delete_alert_rule", {"rule": "shared_name"}),
            ("silence_alert_rule", {"rule": rule["id"], "duration": "1h"}),
            ("list_alerts", {"rule": rule["id"]}),
            ("delete_notification_channel", {"name": "c"}),
        ]:
            result = await b.call_tool(tool, args)
            assert result.is_error and result.structured_content["code"] == "not_found", tool
        mine = await b.call_tool("create_alert_rule", {"rule": BTC, "name": "shared_name"})
        assert not mine.is_error and mine.structured_content["id"] != rule["id"]
    async with http_client(url, alice_token) as a:
        got = (await a.call_tool("get_alert_rule", {"rule": "shared_name"})).structured_content
        assert got["id"] == rule["id"] and got["enabled"] is True
        UserService(db).revoke_token(alice_token_id)
        with pytest.raises(Exception):  # the next request is refused: 401
            await a.call_tool("list_alert_rules", {})
    text = log.read_text()
    assert SECRET not in text and alice_token not in text and bob_token not in text
    assert "Traceback" not in text


async def test_http_health_endpoints_need_no_token_and_reveal_nothing(db: Database, http_server) -> None:
    url, _ = http_server
    base = url.rsplit("/mcp", 1)[0]
    async with httpx2.AsyncClient() as http:
        healthz = await http.get(f"{base}/healthz")
        readyz = await http.get(f"{base}/readyz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "ready"})
