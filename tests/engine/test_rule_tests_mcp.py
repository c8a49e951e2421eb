"""Test blocks through the MCP tools: validate and create run them, a failing one refuses the rule, a stored
rule keeps them in its text and get_alert_rule lists them or runs them again."""

from __future__ import annotations

import pytest

from monitors_mcp.store import Database, Rule
from tests.support.mcp_client import connect

pytestmark = pytest.mark.anyio

RULE = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}, 1m) > 70000
    severity critical
    title "BTC above 70k"
}

test crosses for btc_above_70k {
    series crypto.price{symbol="BTC"} every 1m: 69000 70100x3 69000
    expect firing at 1m severity critical
    expect resolved at 5m
}

test stays_below {
    series crypto.price{symbol="BTC"} every 1m: 69000x5
    expect inactive at 5m
}
"""
FAILING = RULE.replace("expect resolved at 5m", "expect resolved at 4m")


async def test_validate_runs_the_tests_and_says_which_fail(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        good = (await client.call_tool("validate_alert_rule", {"rule": RULE})).structured_content
        bad = (await client.call_tool("validate_alert_rule", {"rule": FAILING})).structured_content
    assert good["valid"] is True
    assert good["tests"] == ["crosses: passed", "stays_below: passed"]
    assert "test crosses" in good["canonical"]
    assert bad["valid"] is True
    (crosses, below) = bad["tests"]
    assert crosses.startswith("crosses: FAILED: line 10: expect resolved at 4m: expected a resolution at 4m; seen")
    assert below == "stays_below: passed"
    assert any("Tests failing: crosses" in note for note in bad["notes"])


async def test_a_failing_test_refuses_the_create_dry_run_or_not(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        for dry_run in (True, False):
            refused = await client.call_tool("create_alert_rule", {"rule": FAILING, "dry_run": dry_run})
            assert refused.is_error
            assert refused.structured_content["code"] == "test_failed"
            text = refused.content[0].text
            assert text.startswith("1 of 2 tests of the rule failed; nothing was stored.")
            assert "- test crosses: line 10: expect resolved at 4m" in text
        listed = (await client.call_tool("list_alert_rules", {})).structured_content
    assert listed["rules"] == []


async def test_a_stored_rule_keeps_its_tests_and_runs_them_again(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        dry = (await client.call_tool("create_alert_rule", {"rule": RULE, "dry_run": True})).structured_content
        assert dry["stored"] is False and dry["tests"] == ["crosses: passed", "stays_below: passed"]
        created = await client.call_tool("create_alert_rule", {"rule": RULE})
        assert not created.is_error, created.content
        out = created.structured_content
        assert out["tests"] == ["crosses: passed", "stays_below: passed"]
        assert out["text"] == RULE
        assert "test " not in out["canonical"]
        listed = (await client.call_tool("get_alert_rule", {"rule": "btc_above_70k"})).structured_content
        assert listed["tests"] == ["crosses: not run", "stays_below: not run"] and listed["text"] == RULE
        rerun = (await client.call_tool("get_alert_rule", {"rule": "btc_above_70k", "run_tests": True}))
        assert rerun.structured_content["tests"] == ["crosses: passed", "stays_below: passed"]
        refused = await client.call_tool("update_alert_rule", {"rule": "btc_above_70k", "text": FAILING})
        assert refused.is_error and refused.structured_content["code"] == "test_failed"
    with db.session() as session:
        (stored,) = session.query(Rule).all()
        assert stored.text == RULE
        assert stored.canonical.startswith("rule btc_above_70k {") and "test" not in stored.canonical


async def test_without_the_engine_tests_are_listed_not_run_and_the_rule_is_stored(
        db: Database, secrets, alice: int, monkeypatch) -> None:
    from monitors_mcp.service import engine_link
    from monitors_mcp.service.errors import Unavailable

    def missing():
        raise Unavailable("This needs the engine, which is not installed with this server.",
                          code="engine_not_installed", hint=f"install it with: {engine_link.INSTALL}")

    monkeypatch.setattr(engine_link, "engine_features", missing)
    async with connect(db, secrets, alice) as client:
        checked = (await client.call_tool("validate_alert_rule", {"rule": FAILING})).structured_content
        created = await client.call_tool("create_alert_rule", {"rule": FAILING})
    assert checked["tests"] == ["crosses: not run", "stays_below: not run"]
    assert any(note.startswith("The tests were not run: This needs the engine") and "[engine]" in note
               for note in checked["notes"])
    assert not created.is_error, created.content
    assert created.structured_content["tests"] == ["crosses: not run", "stays_below: not run"]
    assert any("The tests were not run" in note for note in created.structured_content["notes"])
