"""An slo block as the MCP service validates and stores it, and as the engine builds the stored text."""

from __future__ import annotations

from types import SimpleNamespace

from engine.rules import RuleBuilder
from monitors_mcp.service import language

TEXT = """slo checkout_availability {
    objective 99.9%
    total SUM(http.requests{service="checkout"})
    bad sum(http.errors{service="checkout"})
    notify pager
}"""
CANONICAL = """slo checkout_availability {
    bad sum(http.errors{service="checkout"})
    total sum(http.requests{service="checkout"})
    objective 99.9%
    notify pager
}
"""


def test_validation_reads_the_block_and_shows_its_sql() -> None:
    checked = language.validate_text(TEXT, data_later=True)
    assert checked.valid and [d for d in checked.diagnostics if d.severity == "error"] == []
    (reading,) = checked.rules
    assert reading.name == "checkout_availability"
    assert reading.english.startswith("Pages (critical) when the error budget of 99.9 %")
    assert reading.sql.count('FROM "http"') == 5  # one scan per window: 1h, 5m, 6h, 30m, 3d


def test_the_block_is_stored_as_written_and_built_as_one_rule() -> None:
    parsed = language.parse_one(TEXT, channels=["pager"])
    assert parsed.name == "checkout_availability"
    assert parsed.canonical == CANONICAL
    assert parsed.notify == ("pager",)
    row = SimpleNamespace(id=3, owner_id=1, name=parsed.name, version=1, canonical=parsed.canonical)
    built = RuleBuilder().build(row)
    assert built is not None and built.compiled.canonical == CANONICAL
    assert [severity for severity, _ in built.compiled.rule.conditions] == ["critical", "warning"]
    assert built.channels == ("pager",) and built.every == 60


def test_a_misused_block_is_refused_with_its_position() -> None:
    checked = language.validate_text(TEXT.replace('sum(http.errors{service="checkout"})',
                                                  'sum(http.errors{service="checkout"}, 5m)'), data_later=True)
    assert not checked.valid
    (problem,) = [d for d in checked.diagnostics if d.severity == "error"]
    assert (problem.code, problem.line) == ("slo-window", 4)
