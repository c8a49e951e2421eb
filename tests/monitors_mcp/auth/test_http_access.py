"""Through the SDK's HTTP client: read-only tokens see and call only the read tools, an expired
token is refused, a disabled user is refused from the next request on, a deleted user's token is gone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx2
import pytest
import sqlalchemy as sa

from monitors_mcp.service import UserService
from monitors_mcp.store import ApiToken, Database
from monitors_mcp.store.types import utcnow
from tests.support.mcp_http import McpHttpServer, mcp_client

from tests.support.mcp_client import BTC

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(db: Database, secrets):  # noqa: ANN001, ANN201
    with McpHttpServer(db, secrets) as running:
        yield running


def _user(db: Database, prefix: str, **token_options) -> tuple[str, str]:  # noqa: ANN003
    users = UserService(db)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    users.add_user(name)
    return name, users.create_token(name, **token_options).token


async def _status(url: str, token: str) -> int:
    async with httpx2.AsyncClient() as http:
        return (await http.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})).status_code


async def test_a_read_only_token_lists_and_calls_only_the_read_tools(db: Database, server) -> None:  # noqa: ANN001
    name, writer = _user(db, "rw")
    reader = UserService(db).create_token(name, read_only=True).token
    async with mcp_client(server.url, writer) as client:
        all_tools = {t.name for t in (await client.list_tools()).tools}
        created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
        assert not created.is_error
    async with mcp_client(server.url, reader) as client:
        listed = (await client.list_tools()).tools
        names = {t.name for t in listed}
        assert names and names < all_tools
        assert all(t.annotations and t.annotations.read_only_hint for t in listed)
        assert {"create_alert_rule", "delete_alert_rule", "add_notification_channel"} & names == set()
        assert {"list_alert_rules", "list_alerts", "get_alert_rule"} <= names
        rules = await client.call_tool("list_alert_rules", {})
        assert [r["name"] for r in rules.structured_content["rules"]] == ["btc"]
        for tool, args in [("create_alert_rule", {"rule": BTC, "name": "other"}),
                           ("delete_alert_rule", {"rule": "btc"}),
                           ("update_alert_rule", {"rule": "btc", "enabled": False})]:
            refused = await client.call_tool(tool, args)
            assert refused.is_error and refused.structured_content["code"] == "read_only_token", tool
    async with mcp_client(server.url, writer) as client:
        still = await client.call_tool("get_alert_rule", {"rule": "btc"})
        assert still.structured_content["enabled"] is True and still.structured_content["version"] == 1


async def test_an_expired_token_is_refused(db: Database, server) -> None:  # noqa: ANN001
    name, token = _user(db, "exp", expires_in=timedelta(hours=1))
    assert await _status(server.url, token) == 200
    with db.session() as session:
        session.execute(sa.update(ApiToken).where(ApiToken.user_id == UserService(db).user_id(name))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await _status(server.url, token) == 401


async def test_a_disabled_user_is_refused_mid_conversation_and_a_deleted_one_for_good(db: Database, server) -> None:  # noqa: ANN001
    name, token = _user(db, "dis")
    async with mcp_client(server.url, token) as client:
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).is_error
        UserService(db).set_disabled(name, True)
        with pytest.raises(Exception):  # the very next request gets 401
            await client.call_tool("list_alert_rules", {})
    UserService(db).set_disabled(name, False)
    async with mcp_client(server.url, token) as client:
        rules = await client.call_tool("list_alert_rules", {})
        assert [r["name"] for r in rules.structured_content["rules"]] == ["btc"]  # nothing was lost
    UserService(db).delete_user(name)
    assert await _status(server.url, token) == 401


async def test_using_a_token_notes_when(db: Database, server) -> None:  # noqa: ANN001
    name, token = _user(db, "used")
    assert UserService(db).list_tokens(name)[0].last_used_at is None
    async with mcp_client(server.url, token) as client:
        await client.call_tool("list_alert_rules", {})
    used = UserService(db).list_tokens(name)[0].last_used_at
    assert used is not None and utcnow() - used < timedelta(minutes=1)
