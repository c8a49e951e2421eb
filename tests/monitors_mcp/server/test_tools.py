"""The MCP tools through the SDK's in-memory client: the happy path, error results, the tool list."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import monitors_dsl

from monitors_mcp.store import Database
from monitors_mcp.store.types import utcnow

from tests.support.mcp_client import BTC, add_alerts, add_series_state, connect
from tests.support.tools import EXPECTED_TOOLS  # noqa: F401

pytestmark = pytest.mark.anyio


async def test_tool_list_is_complete_annotated_and_small(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == set(EXPECTED_TOOLS)
    for name, (read_only, destructive, idempotent) in EXPECTED_TOOLS.items():
        tool = tools[name]
        assert tool.annotations.read_only_hint is read_only, name
        assert bool(tool.annotations.destructive_hint) is destructive, name
        assert bool(tool.annotations.idempotent_hint) is idempotent, name
        assert tool.output_schema, name
        assert len(tool.description) > 40, name
    size = tool_list_size(listed)
    assert size <= 24_000, f"tools/list is {size:,} characters"


def tool_list_size(listed) -> int:  # noqa: ANN001
    """Characters of the whole tools/list answer (names, descriptions, input and output schemas, annotations)
    as JSON with the spaces ``json.dumps`` puts after `,` and `:` (more than the compact JSON sent)."""
    return len(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True)))


async def test_docs_print_the_tool_list_size(db: Database, secrets, alice: int) -> None:
    import re
    from pathlib import Path

    async with connect(db, secrets, alice) as client:
        size = tool_list_size(await client.list_tools())
    docs = (Path(__file__).resolve().parents[3] / "docs" / "mcp.md").read_text(encoding="utf-8")
    printed = re.search(r"`tools/list` answer is ([\d,]+) characters", docs)
    assert printed, "docs/mcp.md must print the size of the tools/list answer"
    assert abs(int(printed.group(1).replace(",", "")) - size) <= 300, f"docs/mcp.md: measured {size:,} now"


async def test_validate_reports_canonical_text_and_stores_nothing(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("validate_alert_rule", {"rule": "LAST(crypto.price{symbol='BTC'}) > 70_000"})
        assert not result.is_error
        out = result.structured_content
        assert out["valid"] is True
        assert out["canonical"].strip() == 'last(crypto.price{symbol="BTC"}, 5m) > 70000'
        assert len(out["rules"]) == 1
        if hasattr(monitors_dsl, "compile_rule"):
            assert out["rules"][0]["sql"] and out["rules"][0]["english"]
        else:
            assert any("SQL" in note for note in out["notes"])
        listed = await client.call_tool("list_alert_rules", {})
        assert listed.structured_content["rules"] == []


async def test_validate_returns_diagnostics_with_positions(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("validate_alert_rule", {"rule": "avgg(cpu.usage) > 1"})
    assert not result.is_error
    out = result.structured_content
    assert out["valid"] is False
    assert out["diagnostics"][0]["line"] == 1
    assert out["diagnostics"][0]["column"] == 1
    assert "avg" in (out["diagnostics"][0]["hint"] or "") + out["diagnostics"][0]["message"]


async def test_create_list_get_update_delete(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc_high"})
        assert not created.is_error, created.content
        rule = created.structured_content
        assert rule["name"] == "btc_high" and rule["version"] == 1 and rule["stored"] is True

        block = 'rule eth_drop {\n  when pct_change(crypto.price{symbol="ETH"}, 1h) < -5%\n  notify desk\n}'
        eth = await client.call_tool("create_alert_rule", {"rule": block})
        assert eth.structured_content["name"] == "eth_drop"
        assert eth.structured_content["notify"] == ["desk"]
        assert any("desk" in w for w in eth.structured_content["warnings"])

        listed = (await client.call_tool("list_alert_rules", {})).structured_content
        assert [r["name"] for r in listed["rules"]] == ["btc_high", "eth_drop"]
        found = (await client.call_tool("list_alert_rules", {"query": "ETH"})).structured_content
        assert [r["name"] for r in found["rules"]] == ["eth_drop"]

        add_series_state(db, rule["id"], {"symbol": "BTC"})
        got = (await client.call_tool("get_alert_rule", {"rule": rule["id"]})).structured_content
        assert got["series_total"] == 1 and got["series"][0]["state"] == "firing"
        by_name = (await client.call_tool("get_alert_rule", {"rule": "btc_high"})).structured_content
        assert by_name["id"] == rule["id"]

        paused = (await client.call_tool("update_alert_rule", {"rule": "btc_high", "enabled": False})).structured_content
        assert paused["enabled"] is False and paused["version"] == 2 and paused["text"] == BTC
        changed = await client.call_tool(
            "update_alert_rule", {"rule": rule["id"], "text": 'last(crypto.price{symbol="BTC"}) > 80000'}
        )
        assert changed.structured_content["enabled"] is False
        assert "80000" in changed.structured_content["canonical"]
        assert changed.structured_content["version"] == 3

        deleted = await client.call_tool("delete_alert_rule", {"rule": "btc_high"})
        assert deleted.structured_content["deleted"] is True
        gone = await client.call_tool("get_alert_rule", {"rule": "btc_high"})
        assert gone.is_error and "No rule" in gone.content[0].text


async def test_dry_run_stores_nothing(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        dry = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "dry", "dry_run": True})
        assert dry.structured_content["stored"] is False and dry.structured_content["id"] is None
        assert (await client.call_tool("list_alert_rules", {})).structured_content["rules"] == []


async def test_invalid_rule_error_carries_every_diagnostic_and_an_example(db: Database, secrets, alice: int) -> None:
    text = "rule bad {\n  when avgg(cpu.usage) > 1\n  severity urgent\n}"
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("create_alert_rule", {"rule": text})
    assert result.is_error
    body = result.structured_content
    assert body["code"] == "invalid_rule"
    assert len(body["diagnostics"]) >= 2
    for d in body["diagnostics"]:
        assert {"line", "column", "message", "hint"} <= set(d)
        assert f"line {d['line']}, column {d['column']}" in result.content[0].text
    assert "rule btc_above_70k" in body["example"]
    assert body["example"] in result.content[0].text


async def test_example_in_errors_is_itself_valid(db: Database, secrets, alice: int) -> None:
    from monitors_mcp.service.language import EXAMPLE_RULE

    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("validate_alert_rule", {"rule": EXAMPLE_RULE})
    assert result.structured_content["valid"] is True


async def test_names_in_text_and_argument_must_agree(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        both = await client.call_tool("create_alert_rule", {"rule": "rule a { when last(x.y) > 1 }", "name": "b"})
        assert both.is_error and "'a'" in both.content[0].text and "'b'" in both.content[0].text
        nameless = await client.call_tool("create_alert_rule", {"rule": "last(x.y) > 1"})
        assert nameless.is_error and "pass name" in nameless.content[0].text
        two = await client.call_tool(
            "create_alert_rule", {"rule": "rule a { when last(x.y) > 1 }\nrule b { when last(x.y) > 2 }"}
        )
        assert two.is_error and "exactly one rule" in two.content[0].text
        await client.call_tool("create_alert_rule", {"rule": "last(x.y) > 1", "name": "dup"})
        dup = await client.call_tool("create_alert_rule", {"rule": "last(x.y) > 2", "name": "dup"})
        assert dup.is_error and dup.structured_content["code"] == "conflict"


async def test_list_alerts_pages_through_history(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        rule = (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).structured_content
        ids = add_alerts(db, rule["id"], alice, 25)
        seen: list[int] = []
        cursor = None
        while True:
            args = {"limit": 10} | ({"cursor": cursor} if cursor else {})
            page = (await client.call_tool("list_alerts", args)).structured_content
            seen += [a["id"] for a in page["alerts"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids  # newest first, each once
        recent = (await client.call_tool("list_alerts", {"since": "5m"})).structured_content
        assert len(recent["alerts"]) == 25  # all of them are still firing, so firing since 5 minutes ago
        by_rule = (await client.call_tool("list_alerts", {"rule": "btc", "state": "firing", "limit": 3})).structured_content
        assert len(by_rule["alerts"]) == 3 and by_rule["alerts"][0]["rule_name"] == "btc"
        resolved = (await client.call_tool("list_alerts", {"state": "resolved"})).structured_content
        assert resolved["alerts"] == []


async def test_acknowledge_and_silence(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        rule = (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).structured_content
        [alert_id] = add_alerts(db, rule["id"], alice, 1)
        acked = (await client.call_tool("acknowledge_alert", {"alert": alert_id})).structured_content
        assert acked["acknowledged_at"] and acked["acknowledged_by"].startswith("alice-")
        again = (await client.call_tool("acknowledge_alert", {"alert": alert_id})).structured_content
        assert again["acknowledged_at"] == acked["acknowledged_at"]

        silence = (await client.call_tool("silence_alert_rule", {"rule": "btc", "duration": "2h"})).structured_content
        assert silence["rule_name"] == "btc"
        got = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content
        assert got["silenced_until"] == silence["ends_at"]
        until = (utcnow() + timedelta(days=1)).isoformat()
        later = await client.call_tool("silence_alert_rule", {"rule": "btc", "until": until})
        assert not later.is_error


async def test_channels(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        added = await client.call_tool(
            "add_notification_channel", {"name": "desk", "apprise_url": "jsons://user:hunter2@hooks.example.com/alerts"}
        )
        assert not added.is_error, added.content
        assert added.structured_content == added.structured_content | {
            "name": "desk", "scheme": "jsons", "host": "hooks.example.com"
        }
        await client.call_tool("create_alert_rule", {"rule": "rule r { when last(x.y) > 1\n notify desk }"})
        listed = (await client.call_tool("list_notification_channels", {})).structured_content
        assert [c["name"] for c in listed["channels"]] == ["desk"]
        deleted = (await client.call_tool("delete_notification_channel", {"name": "desk"})).structured_content
        assert deleted == {"deleted": "desk", "rules_still_notifying": ["r"]}


async def test_resources_and_prompt(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert resources == {"monitors://docs/language", "monitors://docs/examples"}
        for uri, needle in [("monitors://docs/language", "pct_change"), ("monitors://docs/examples", "70000")]:
            contents = (await client.read_resource(uri)).contents
            assert contents[0].mime_type == "text/markdown"
            assert needle in contents[0].text and len(contents[0].text) > 1000
        prompt = await client.get_prompt("write_alert_rule", {"request": "tell me if BTC goes above 70k"})
        text = prompt.messages[0].content.text
        assert "tell me if BTC goes above 70k" in text and "validate_alert_rule" in text


def test_compact_schemas_say_the_same_and_keep_property_names() -> None:
    import jsonschema

    from monitors_mcp.schemas import AlertPage
    from monitors_mcp.server.app import compact_schema

    full = AlertPage.model_json_schema()
    compact = compact_schema(full, output=True)
    assert "title" not in json.dumps(compact).replace('"title": {', "")
    good = {"alerts": [], "next_cursor": None}
    jsonschema.validate(good, compact)
    for bad in ({"alerts": [{"id": "x"}], "next_cursor": None}, {"alerts": [], "next_cursor": 5}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, compact)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, full)
    named = {"type": "object", "properties": {"title": {"type": "string", "title": "Title"},
                                              "required": {"type": "boolean"}, "default": {"type": "integer"}}}
    assert set(compact_schema(named, output=True)["properties"]) == {"title", "required", "default"}


async def test_an_escalation_channel_counts_as_one_the_rule_notifies(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        for name in ("desk", "oncall"):
            url = f"jsons://hooks.example.com/{name}"
            await client.call_tool("add_notification_channel", {"name": name, "apprise_url": url})
        only = "rule calls { when last(x.y) > 1\n escalate to oncall after 30m }"
        checked = (await client.call_tool("validate_alert_rule", {"rule": only})).structured_content
        assert not any("nobody is told" in note for note in checked["notes"]), checked["notes"]
        both = "rule paged { when last(x.y) > 1\n notify desk\n escalate to oncall after 30m }"
        created = (await client.call_tool("create_alert_rule", {"rule": both})).structured_content
        assert created["notify"] == ["desk", "oncall"]
        deleted = (await client.call_tool("delete_notification_channel", {"name": "oncall"})).structured_content
        assert deleted == {"deleted": "oncall", "rules_still_notifying": ["paged"]}
        silent = (await client.call_tool("validate_alert_rule", {"rule": "rule quiet { when last(x.y) > 1 }"}))
        assert any("nobody is told" in note for note in silent.structured_content["notes"])
