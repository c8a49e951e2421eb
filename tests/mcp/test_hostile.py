"""Hostile callers of the MCP server: session floods, preview bombs, internal channel targets, malformed
values, quotas — each refused with a clear error while other users' calls go on as usual."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx2
import pytest

from monitors_mcp.server.sessions import SessionLimits
from monitors_mcp.service import UserService
from monitors_mcp.store import Database
from tests.support.mcp_http import McpHttpServer

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CAP = 4


def _token(db: Database, prefix: str) -> str:
    users = UserService(db)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    users.add_user(name)
    return users.create_token(name).token


@pytest.fixture(scope="module")
def server(db: Database, secrets):  # noqa: ANN001, ANN201
    with McpHttpServer(db, secrets, sessions=SessionLimits(per_user=CAP, idle_seconds=1.5, max_sessions=200)) as up:
        yield up


async def _open(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    return await http.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})


async def test_a_session_flood_from_one_user_leaves_others_able_to_open_sessions(db: Database, server) -> None:  # noqa: ANN001
    flooder, other = _token(db, "flood"), _token(db, "other")
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = [await _open(http, server.url, flooder) for _ in range(CAP)]
        assert [r.status_code for r in opened] == [200] * CAP
        assert all(r.headers.get("mcp-session-id") for r in opened)
        flood = await asyncio.gather(*(_open(http, server.url, flooder) for _ in range(60)))
        assert {r.status_code for r in flood} == {429}
        message = flood[0].json()["error"]["message"]
        assert f"{CAP} sessions open" in message and "DELETE" in message and "idle" in message
        assert (await _open(http, server.url, other)).status_code == 200
        # closing one frees its place
        closing = opened[0].headers["mcp-session-id"]
        closed = await http.delete(server.url, headers={**HEADERS, "Authorization": f"Bearer {flooder}",
                                                        "mcp-session-id": closing, "mcp-protocol-version": "2025-06-18"})
        assert closed.status_code < 300
        assert (await _open(http, server.url, flooder)).status_code == 200


async def test_idle_sessions_close_and_free_their_places(db: Database, server) -> None:  # noqa: ANN001
    user = _token(db, "idle")
    async with httpx2.AsyncClient(timeout=30) as http:
        assert [(await _open(http, server.url, user)).status_code for _ in range(CAP + 1)] == [200] * CAP + [429]
        deadline = time.monotonic() + 20
        while (status := (await _open(http, server.url, user)).status_code) == 429 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert status == 200
