"""Bad input to every tool: an isError result with a clear message, and nothing in the store changes.

Also: a channel's secret URL appears in no tool output and no log line.
"""

from __future__ import annotations

import logging

import pytest

from monitors_mcp.store import Database

from tests.support.mcp_client import BTC, add_alerts, connect, snapshot

pytestmark = pytest.mark.anyio

MB = "x" * 1_048_576
SLACK = "slack://TokenA/TokenB/TokenC"
SECRET = "SuperSecretHookToken9876543210abcdef"

BAD_CALLS = [
    ("describe_data", {"measurement": MB}, "limit is 256"),
    ("describe_data", {"measurement": 5}, "valid string"),
    ("validate_alert_rule", {"rule": 5}, "valid string"),
    ("validate_alert_rule", {"rule": MB}, "limit is 20,000"),
    ("validate_alert_rule", {}, "Field required"),
    ("create_alert_rule", {"rule": 5, "name": "x"}, "valid string"),
    ("create_alert_rule", {"rule": MB, "name": "x"}, "limit is 20,000"),
    ("create_alert_rule", {"rule": BTC, "name": MB}, "limit is 128"),
    ("create_alert_rule", {"rule": "avgg(x.y) >", "name": "x"}, "line 1, column"),
    ("create_alert_rule", {"rule": BTC, "name": "bad name!"}, "not a valid name"),
    ("create_alert_rule", {"rule": BTC, "name": "btc"}, "already have a rule named 'btc'"),
    ("create_alert_rule", {"rule": BTC, "name": "x", "dry_run": "maybe"}, "valid boolean"),
    ("create_alert_rule", {"rule": "   ", "name": "x"}, "empty"),
    ("list_alert_rules", {"limit": 0}, "greater than or equal to 1"),
    ("list_alert_rules", {"limit": "ten"}, "valid integer"),
    ("list_alert_rules", {"query": MB}, "limit is 200"),
    ("list_alert_rules", {"cursor": "garbage!"}, "cursor is not one this tool returned"),
    ("list_alert_rules", {"cursor": MB}, "cursor is not one this tool returned"),
    ("get_alert_rule", {"rule": 987654}, "No rule '987654'"),
    ("get_alert_rule", {"rule": "nope"}, "No rule 'nope'"),
    ("get_alert_rule", {"rule": MB}, "limit is 128"),
    ("get_alert_rule", {"rule": [1]}, "valid"),
    ("update_alert_rule", {"rule": "btc"}, "Nothing to change"),
    ("update_alert_rule", {"rule": "btc", "text": "avgg(x.y) > 1"}, "line 1, column 1"),
    ("update_alert_rule", {"rule": "btc", "text": MB}, "limit is 20,000"),
    ("update_alert_rule", {"rule": 987654, "enabled": False}, "No rule"),
    ("update_alert_rule", {"rule": "btc", "enabled": "sometimes"}, "valid boolean"),
    ("delete_alert_rule", {"rule": 987654}, "No rule"),
    ("delete_alert_rule", {"rule": MB}, "limit is 128"),
    ("delete_alert_rule", {"rule": None}, "valid"),
    ("list_alerts", {"state": "open"}, "'firing' or 'resolved'"),
    ("list_alerts", {"since": "yesterday"}, "neither a time nor a duration"),
    ("list_alerts", {"since": MB}, "neither a time nor a duration"),
    ("list_alerts", {"rule": 987654}, "No rule"),
    ("list_alerts", {"limit": 1000}, "less than or equal to 200"),
    ("list_alerts", {"cursor": "abc"}, "cursor is not one this tool returned"),
    ("acknowledge_alert", {"alert": 987654}, "No alert 987654"),
    ("acknowledge_alert", {"alert": "abc"}, "valid integer"),
    ("acknowledge_alert", {"alert": MB}, "valid integer"),
    ("acknowledge_alert", {"alert": -1}, "positive number"),
    ("silence_alert_rule", {"rule": "btc"}, "exactly one of duration"),
    ("silence_alert_rule", {"rule": "btc", "duration": "2h", "until": "2030-01-01"}, "exactly one of duration"),
    ("silence_alert_rule", {"rule": "btc", "duration": "soon"}, "not a duration"),
    ("silence_alert_rule", {"rule": "btc", "duration": MB}, "not a duration"),
    ("silence_alert_rule", {"rule": "btc", "until": "2000-01-01T00:00:00Z"}, "in the past"),
    ("silence_alert_rule", {"rule": "btc", "until": "next week"}, "not an ISO 8601 time"),
    ("silence_alert_rule", {"rule": "btc", "duration": "400d"}, "at most 365 days"),
    ("silence_alert_rule", {"rule": 987654, "duration": "1h"}, "No rule"),
    ("silence_alert_rule", {"rule": "btc", "duration": "1h", "comment": MB}, "limit is 500"),
    ("silence_alert_rule", {"rule": "btc", "duration": "1h", "start": "tomorrow"}, "not an ISO 8601 time"),
    ("silence_alert_rule", {"rule": "btc", "until": "2027-06-01T00:00:00Z", "start": "2027-06-02T00:00:00Z"},
     "until must be after start"),
    ("list_silences", {"rule": 987654}, "No rule"),
    ("list_silences", {"rule": [1]}, "valid"),
    ("end_silence", {"silence": 987654}, "No silence 987654"),
    ("end_silence", {"silence": "abc"}, "valid integer"),
    ("end_silence", {"silence": 0}, "positive number"),
    ("add_notification_channel", {"name": "x", "apprise_url": "not a url"}, "not a URL"),
    ("add_notification_channel", {"name": "x", "apprise_url": f"{SLACK} discord://1/2"}, "holds 2 URLs"),
    ("add_notification_channel", {"name": "x", "apprise_url": f"{SLACK},jsons://example.com"}, "holds 2 URLs"),
    ("add_notification_channel", {"name": "x", "apprise_url": "foo://bar"}, "not supported"),
    ("add_notification_channel", {"name": "x", "apprise_url": "file:///etc/passwd"}, "not supported"),
    ("add_notification_channel", {"name": "x", "apprise_url": f"slack://{SECRET}"}, "not in a form apprise accepts"),
    ("add_notification_channel", {"name": "desk", "apprise_url": SLACK}, "already have a channel named 'desk'"),
    ("add_notification_channel", {"name": MB, "apprise_url": SLACK}, "limit is 128"),
    ("add_notification_channel", {"name": "bad name", "apprise_url": SLACK}, "not a valid name"),
    ("add_notification_channel", {"name": "x", "apprise_url": MB}, "limit is 2,000"),
    ("add_notification_channel", {"name": "x", "apprise_url": 5}, "valid string"),
    ("add_notification_channel", {"name": "x", "apprise_url": ""}, "empty"),
    ("add_notification_channel", {"name": "x", "apprise_url": SLACK, "policies": {"group_wait": "soon"}},
     "group_wait 'soon' is not a duration"),
    ("add_notification_channel", {"name": "x", "apprise_url": SLACK, "policies": {"group_by": "rule", "wait": 1}},
     "no setting 'wait': the settings are group_by, group_wait, group_interval, mute_during"),
    ("add_notification_channel", {"name": "x", "apprise_url": SLACK, "policies": {"gruop_wait": "1m"}},
     "no setting 'gruop_wait': did you mean 'group_wait'?"),
    ("add_notification_channel", {"name": "x", "apprise_url": SLACK, "policies": {"group_wait": "2h"}},
     "group_wait '2h' is out of range: give 0s to 1h"),
    ("add_notification_channel", {"name": "x", "apprise_url": SLACK, "policies": "group by rule"}, "valid dictionary"),
    ("update_notification_channel", {"name": "nope", "policies": {"group_by": ["rule"]}}, "No channel named 'nope'"),
    ("update_notification_channel", {"name": "desk"}, "Nothing to change"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_interval": "20s"}},
     "group_interval (20s) is shorter than group_wait (30s)"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_interval": "5s"}},
     "group_interval '5s' is out of range: give 10s to 1d"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_by": ["rule", "rule"]}},
     "group_by names 'rule' twice"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_by": [""]}}, "group_by item 1 is not"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_by": ["x"] * 17}}, "at most 16"),
    ("update_notification_channel", {"name": "desk", "policies": {"group_wait": 30}}, "must be a duration"),
    ("update_notification_channel", {"name": "desk", "apprise_url": "foo://bar"}, "not supported"),
    ("update_notification_channel", {"name": MB, "policies": {}}, "limit is 128"),
    ("delete_notification_channel", {"name": "nope"}, "No channel named 'nope'"),
    ("delete_notification_channel", {"name": MB}, "limit is 128"),
    ("delete_notification_channel", {"name": 5}, "valid string"),
    ("preview_alert_rule", {"rule": MB, "since": "1h"}, "limit is 20,000"),
    ("preview_alert_rule", {"rule": "avgg(x.y) > 1", "since": "1h"}, "line 1, column 1"),
    ("preview_alert_rule", {"rule": BTC, "since": MB}, "too long"),
    ("preview_alert_rule", {"rule": BTC, "since": "soon"}, "RFC 3339"),
    ("preview_alert_rule", {"rule": BTC}, "Field required"),
    ("preview_alert_rule", {"rule": BTC, "since": "1h", "until": 5}, "valid string"),
]


@pytest.fixture
async def client(db: Database, secrets, alice: int):  # noqa: ANN201
    async with connect(db, secrets, alice) as client:
        rule = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
        add_alerts(db, rule.structured_content["id"], alice, 2)
        await client.call_tool("add_notification_channel", {"name": "desk", "apprise_url": SLACK})
        yield client


async def test_every_tool_rejects_bad_input_and_changes_nothing(db: Database, client) -> None:  # noqa: ANN001
    before = snapshot(db)
    failures = []
    for tool, args, expected in BAD_CALLS:
        result = await client.call_tool(tool, args)
        text = result.content[0].text if result.content else ""
        body = result.structured_content or {}
        shaped = isinstance(body.get("code"), str) and body.get("hint") and body.get("error") == body.get("message")
        if not result.is_error or expected not in text or len(text) > 4000 or not shaped:
            failures.append((tool, {k: (v if len(str(v)) < 50 else "<long>") for k, v in args.items()}, text[:300]))
    assert failures == []
    assert snapshot(db) == before


async def test_every_tool_is_covered() -> None:
    from tests.support.tools import EXPECTED_TOOLS

    covered = {tool for tool, _, _ in BAD_CALLS}
    assert covered == set(EXPECTED_TOOLS) - {"list_notification_channels"}


async def test_channel_secret_is_in_no_output_and_no_log(db: Database, secrets, alice: int, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"jsons://user:{SECRET}@hooks.example.com/path/{SECRET}?token={SECRET}"
    outputs = []
    async with connect(db, secrets, alice) as client:
        outputs.append(await client.call_tool("add_notification_channel", {"name": "hook", "apprise_url": url}))
        outputs.append(await client.call_tool("add_notification_channel", {"name": "hook", "apprise_url": url}))
        outputs.append(await client.call_tool("add_notification_channel", {"name": "h2", "apprise_url": f"slack://{SECRET}"}))
        outputs.append(await client.call_tool("add_notification_channel", {"name": "h3", "apprise_url": f"{url} {url}"}))
        outputs.append(await client.call_tool("add_notification_channel", {"name": "h4", "apprise_url": [url]}))
        outputs.append(await client.call_tool("create_alert_rule", {"rule": "rule r { when last(x.y) > 1\n notify hook }"}))
        outputs.append(await client.call_tool("list_notification_channels", {}))
        outputs.append(await client.call_tool("get_alert_rule", {"rule": "r"}))
        outputs.append(await client.call_tool("delete_notification_channel", {"name": "hook"}))
    for result in outputs:
        assert SECRET not in result.model_dump_json()
    assert outputs[0].structured_content["host"] == "hooks.example.com"
    assert [r.is_error for r in outputs[:5]] == [False, True, True, True, True]
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in caplog.text
