"""Two users: each sees and changes only their own rules, alerts, silences and channels, and
another user's id or name answers exactly as an unknown one does."""

from __future__ import annotations

import re

import pytest

from monitors_mcp.store import Database

from tests.support.mcp_client import BTC, add_alerts, connect, snapshot

pytestmark = pytest.mark.anyio

UNKNOWN_ID = 987654


def _same_shape(theirs: str, unknown: str, their_ref: object, unknown_ref: object) -> bool:
    return re.sub(re.escape(str(their_ref)), "REF", theirs) == re.sub(re.escape(str(unknown_ref)), "REF", unknown)


async def test_a_user_cannot_reach_anything_of_another(db: Database, secrets, alice: int, bob: int) -> None:
    async with connect(db, secrets, alice) as a:
        rule = (await a.call_tool("create_alert_rule", {"rule": BTC, "name": "alice_btc"})).structured_content
        [alert_id] = add_alerts(db, rule["id"], alice, 1)
        await a.call_tool("add_notification_channel", {"name": "alice_desk", "apprise_url": "slack://TokenA/TokenB/TokenC"})
        await a.call_tool("silence_alert_rule", {"rule": "alice_btc", "duration": "1h"})

    before = snapshot(db)
    async with connect(db, secrets, bob) as b:
        assert (await b.call_tool("list_alert_rules", {})).structured_content["rules"] == []
        assert (await b.call_tool("list_alert_rules", {"query": "alice"})).structured_content["rules"] == []
        assert (await b.call_tool("list_alerts", {})).structured_content["alerts"] == []
        assert (await b.call_tool("list_notification_channels", {})).structured_content["channels"] == []

        probes = [
            ("get_alert_rule", {"rule": rule["id"]}, {"rule": UNKNOWN_ID}, rule["id"]),
            ("get_alert_rule", {"rule": "alice_btc"}, {"rule": "nobody_btc"}, "alice_btc"),
            ("update_alert_rule", {"rule": rule["id"], "enabled": False}, {"rule": UNKNOWN_ID, "enabled": False}, rule["id"]),
            ("update_alert_rule", {"rule": rule["id"], "text": BTC}, {"rule": UNKNOWN_ID, "text": BTC}, rule["id"]),
            ("delete_alert_rule", {"rule": rule["id"]}, {"rule": UNKNOWN_ID}, rule["id"]),
            ("delete_alert_rule", {"rule": "alice_btc"}, {"rule": "nobody_btc"}, "alice_btc"),
            ("silence_alert_rule", {"rule": rule["id"], "duration": "1h"}, {"rule": UNKNOWN_ID, "duration": "1h"}, rule["id"]),
            ("list_alerts", {"rule": rule["id"]}, {"rule": UNKNOWN_ID}, rule["id"]),
            ("list_alerts", {"rule": "alice_btc"}, {"rule": "nobody_btc"}, "alice_btc"),
            ("acknowledge_alert", {"alert": alert_id}, {"alert": UNKNOWN_ID}, alert_id),
            ("update_notification_channel", {"name": "alice_desk", "policies": {"group_by": ["rule"]}},
             {"name": "nobody_desk", "policies": {"group_by": ["rule"]}}, "alice_desk"),
            ("update_notification_channel", {"name": "alice_desk", "apprise_url": "discord://1/abc"},
             {"name": "nobody_desk", "apprise_url": "discord://1/abc"}, "alice_desk"),
            ("delete_notification_channel", {"name": "alice_desk"}, {"name": "nobody_desk"}, "alice_desk"),
        ]
        for tool, theirs, unknown, ref in probes:
            got = await b.call_tool(tool, theirs)
            missing = await b.call_tool(tool, unknown)
            assert got.is_error and missing.is_error, tool
            unknown_ref = next(iter(unknown.values()))
            assert _same_shape(got.content[0].text, missing.content[0].text, ref, unknown_ref), tool
            assert got.structured_content["code"] == missing.structured_content["code"] == "not_found"
        assert snapshot(db) == before

        # Bob's own things with the same names are independent of Alice's.
        mine = await b.call_tool("create_alert_rule", {"rule": BTC, "name": "alice_btc"})
        assert not mine.is_error
        await b.call_tool("add_notification_channel", {"name": "alice_desk", "apprise_url": "discord://1/abc"})
        assert (await b.call_tool("delete_alert_rule", {"rule": "alice_btc"})).structured_content["deleted"]

    async with connect(db, secrets, alice) as a:
        still = (await a.call_tool("get_alert_rule", {"rule": "alice_btc"})).structured_content
        assert still["enabled"] is True and still["version"] == 1 and still["silenced_until"]
        assert [c["service"] for c in (await a.call_tool("list_notification_channels", {})).structured_content["channels"]] == ["Slack"]
        alerts = (await a.call_tool("list_alerts", {})).structured_content["alerts"]
        assert [x["id"] for x in alerts] == [alert_id] and alerts[0]["acknowledged_at"] is None
