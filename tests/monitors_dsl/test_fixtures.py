"""Table-driven tests over the shared fixtures: valid rules pass, invalid ones say where and why."""

from __future__ import annotations

import pytest

import monitors_dsl
from monitors_dsl.printer import print_rules
from tests.fixtures.invalid_rules import INVALID_RULES
from tests.fixtures.valid_rules import VALID_RULES


def test_fixture_lists_are_big_enough():
    assert len(VALID_RULES) >= 80
    assert len(INVALID_RULES) >= 60


@pytest.mark.parametrize("text", VALID_RULES)
def test_valid_rule_has_no_diagnostics(text):
    assert monitors_dsl.validate(text) == []


@pytest.mark.parametrize("text", VALID_RULES)
def test_valid_rule_round_trips_through_canonical_text(text):
    rules = monitors_dsl.parse(text)
    assert rules
    canonical = monitors_dsl.canonical(text)
    assert monitors_dsl.parse(canonical) == rules
    assert monitors_dsl.canonical(canonical) == canonical
    assert print_rules(rules) == canonical


@pytest.mark.parametrize(("text", "code", "line", "column"), INVALID_RULES,
                         ids=[f"{code}-{i}" for i, (_, code, _, _) in enumerate(INVALID_RULES)])
def test_invalid_rule_reports_code_and_position(text, code, line, column):
    diagnostics = monitors_dsl.validate(text)
    found = [(d.code, d.line, d.column) for d in diagnostics]
    assert (code, line, column) in found, f"expected {code} at {line}:{column}, got {found}"
    for d in diagnostics:
        assert d.message and not d.message.endswith(" ")
        assert d.severity in ("error", "warning")


@pytest.mark.parametrize(("text", "code", "line", "column"), INVALID_RULES,
                         ids=[f"{code}-{i}" for i, (_, code, _, _) in enumerate(INVALID_RULES)])
def test_parse_raises_dsl_error_with_every_diagnostic(text, code, line, column):
    with pytest.raises(monitors_dsl.DslError) as info:
        monitors_dsl.parse(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert any(d.code == code for d in error.diagnostics)
    assert error.diagnostics == monitors_dsl.validate(text)
