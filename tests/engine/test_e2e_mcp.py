"""End to end as a person uses it: Claude's MCP client creates the channels and the rule, data arrives by
line protocol at the InfluxDB 3 endpoint, the real engine runs, HTTP and SMTP receivers each get the alert
exactly once, and ``list_alerts`` over MCP shows it."""

from __future__ import annotations

import time

import pytest
from mcp import Client

from monitors_mcp.server import build_server, fixed_user
from monitors_mcp.service import UserService
from tests.support.e2e import NS, T, at, engine, setup  # noqa: F401 - the shared end-to-end fixture

pytestmark = pytest.mark.anyio


async def test_rule_created_through_mcp_fires_once_at_both_receivers(setup) -> None:  # noqa: F811
    db, secrets, influx, http, smtp, env = setup
    writer = influx.client("markets")
    writer.write(f"crypto,symbol=BTC price=69000 {(T - 30) * NS}")
    user = UserService(db).add_user("claude-user")
    async with Client(build_server(db, secrets, fixed_user(user))) as client:
        for name, url in (("hook", http.url("json", "/hook")), ("mail", smtp.url(to="desk@example.com"))):
            added = await client.call_tool("add_notification_channel", {"name": name, "apprise_url": url})
            assert not added.is_error, added.content
        created = await client.call_tool("create_alert_rule", {
            "rule": 'last(crypto.price{symbol="BTC"}, 1m) > 70000', "name": "btc_above_70k"})
        assert not created.is_error, created.content
        updated = await client.call_tool("update_alert_rule", {
            "rule": "btc_above_70k",
            "text": 'rule btc_above_70k {\n  when last(crypto.price{symbol="BTC"}, 1m) > 70000\n'
                    '  severity critical\n  notify hook, mail\n  title "BTC above 70k"\n}'})
        assert not updated.is_error, updated.content

        writer.write(f"crypto,symbol=BTC price=70500 {(T + 30) * NS}")
        writer.close()
        for moment in (T, T + 60, T + 60, T + 120):  # quiet, fires, the same tick again, still firing
            result = engine(env, "run", "--once", "--at", at(moment))
            assert result.returncode == 0, result.stderr
        assert http.wait_for(1) and smtp.wait_for(1)
        time.sleep(0.3)
        assert (http.count, smtp.count) == (1, 1)
        assert http.received[0].data["title"] == "BTC above 70k"

        listed = await client.call_tool("list_alerts", {"state": "firing"})
        assert not listed.is_error, listed.content
        (alert,) = listed.structured_content["alerts"]
        assert alert["rule_name"] == "btc_above_70k" and alert["severity"] == "critical"
        rule = await client.call_tool("get_alert_rule", {"rule": "btc_above_70k"})
        assert [s["state"] for s in rule.structured_content["series"]] == ["firing"]
