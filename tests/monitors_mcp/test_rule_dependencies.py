"""``depends on`` checked when a rule is stored, over all of the owner's stored rules: a cycle is an error
naming it, a dependency on a rule that does not exist a warning; other users' rules take no part."""

from __future__ import annotations

import pytest

from monitors_mcp.service.errors import InvalidInput, InvalidRule
from monitors_mcp.store import Database

from tests.support.mcp_client import connect, snapshot

pytestmark = pytest.mark.anyio


def rule(name: str, depends: str | None = None) -> str:
    return f"rule {name} {{\n  when last(cpu.usage, 5m) > 90\n" + (f"  depends on {depends}\n" if depends else "") + "}"


def create(ws, name: str, depends: str | None = None):  # noqa: ANN001, ANN201
    return ws.rules.create(rule(name, depends), data_arrives_later=True)


def test_a_missing_dependency_is_a_warning_and_a_cycle_an_error_naming_it(workspace, alice: int) -> None:
    ws = workspace(alice)
    out = create(ws, "web_down", "db_down")
    assert out.id is not None
    assert out.warnings == ["line 3, column 3: depends on `db_down`: you have no rule named 'db_down', so this "
                            "holds nothing until you create it"]
    assert create(ws, "db_down", "disk_full").warnings[0].startswith("line 3, column 3: depends on `disk_full`")
    with pytest.raises(InvalidInput) as raised:
        create(ws, "disk_full", "web_down")
    error = raised.value.to_dict()
    assert error["code"] == "dependency_cycle"
    assert "disk_full → web_down → db_down → disk_full" in error["message"]
    assert error["message"].startswith("line 3, column 3: ")
    assert error["cycle"] == ["disk_full", "web_down", "db_down", "disk_full"]
    assert [r.name for r in ws.rules.list().rules] == ["db_down", "web_down"]  # nothing stored

    assert create(ws, "disk_full").warnings == []  # the end of the chain: no warning any more
    assert ws.rules.update("web_down", rule("web_down", "db_down")).warnings == []


def test_an_update_that_closes_a_cycle_is_refused_and_changes_nothing(db: Database, workspace, alice: int) -> None:
    ws = workspace(alice)
    create(ws, "a")
    create(ws, "b", "a")
    create(ws, "c", "b")
    before = snapshot(db)
    with pytest.raises(InvalidInput, match="a → c → b → a"):
        ws.rules.update("a", rule("a", "c"))
    assert snapshot(db) == before
    # a rule renamed away breaks the chain: no cycle, and the dependency on the old name warns
    ws.rules.update("b", rule("b2", "a"), rename=True)
    out = ws.rules.update("a", rule("a", "c"))
    assert out.warnings == []  # c → b (gone) holds nothing, but a → c exists
    assert create(ws, "d", "b").warnings[0].startswith("line 3, column 3: depends on `b`: you have no rule")


def test_a_dry_run_reports_the_cycle_too_and_deleted_rules_take_no_part(workspace, alice: int) -> None:
    ws = workspace(alice)
    create(ws, "p", "q")
    with pytest.raises(InvalidInput, match="q → p → q"):
        ws.rules.create(rule("q", "p"), dry_run=True, data_arrives_later=True)
    ws.rules.delete("p")
    assert create(ws, "q", "p").warnings[0].startswith("line 3, column 3: depends on `p`: you have no rule")


def test_a_rule_cannot_depend_on_itself(workspace, alice: int) -> None:
    with pytest.raises(InvalidRule, match="cannot depend on itself"):
        create(workspace(alice), "selfish", "selfish")


def test_other_users_rules_are_neither_dependencies_nor_cycles(workspace, alice: int, bob: int) -> None:
    create(workspace(alice), "m", "n")
    create(workspace(alice), "n")
    out = create(workspace(bob), "n", "m")  # Alice's m → n does not close a cycle with Bob's n
    assert out.warnings[0].startswith("line 3, column 3: depends on `m`: you have no rule named 'm'")


async def test_the_tools_answer_a_cycle_as_an_error_with_the_cycle(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        first = await client.call_tool("create_alert_rule", {"rule": rule("one", "two"), "data_arrives_later": True})
        assert not first.is_error and "you have no rule named 'two'" in first.structured_content["warnings"][0]
        second = await client.call_tool("create_alert_rule", {"rule": rule("two", "one"), "data_arrives_later": True})
        assert second.is_error and "two → one → two" in second.content[0].text
        assert second.structured_content["code"] == "dependency_cycle"
