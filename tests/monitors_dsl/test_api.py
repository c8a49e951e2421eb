"""The public API: exported names, the Diagnostic record, error collection, schema checks."""

from __future__ import annotations

import dataclasses

import pytest

import monitors_dsl
from monitors_dsl import Diagnostic, DslError, Schema

EXPECTED_EXPORTS = {
    "validate", "parse", "canonical", "Diagnostic", "DslError", "Rule", "Schema", "MeasurementSchema",
    # The compiler's names, once it is part of the package.
    "compile_rule", "CompiledRule", "Decision", "Term",
    # Time windows (a channel's `mute_during` setting is one).
    "TimeWindow", "parse_window",
    # Running a document's test blocks (through the engine, when it is installed).
    "run_tests", "TestResult", "TestFailure", "EngineUnavailable",
}


def test_exported_names_are_exactly_the_public_api():
    exported = set(monitors_dsl.__all__)
    assert exported <= EXPECTED_EXPORTS
    assert {"validate", "parse", "canonical", "Diagnostic", "DslError", "Rule", "Schema"} <= exported
    for name in exported:
        assert hasattr(monitors_dsl, name)


def test_diagnostic_fields():
    fields = [f.name for f in dataclasses.fields(Diagnostic)]
    assert fields == ["severity", "message", "line", "column", "end_line", "end_column", "hint", "code"]


def test_diagnostic_spans_the_offending_text():
    text = 'rule r {\n    when lats(a.b) > 1\n}'
    (d,) = monitors_dsl.validate(text)
    assert (d.code, d.line, d.column, d.end_line, d.end_column) == ("unknown-function", 2, 10, 2, 14)
    assert text.split("\n")[1][d.column - 1:d.end_column - 1] == "lats"
    assert d.hint.startswith("did you mean `last`?")
    assert d.to_dict()["code"] == "unknown-function"


def test_every_recoverable_error_is_collected():
    text = """rule a {
    when lats(x.y) > 1
    evry 5m
    severity high
    title "{{ valu }}"
}
rule b {
    when avg(x.y, 5) > 1 and
}
rule c { when last(x.y) > 1 }
"""
    codes = [d.code for d in monitors_dsl.validate(text)]
    for code in ("unknown-function", "unknown-clause", "unknown-severity", "unknown-template-variable",
                 "unexpected-end"):
        assert code in codes, codes
    assert codes.count("unknown-function") == 1


def test_dsl_error_is_a_value_error_listing_every_problem():
    with pytest.raises(ValueError) as info:
        monitors_dsl.parse("rule a { when lats(x.y) > 1 severity high }")
    assert isinstance(info.value, DslError)
    assert [d.code for d in info.value.diagnostics] == ["unknown-function", "unknown-severity"]
    assert "unknown function `lats`" in str(info.value)


def test_bare_condition_is_one_rule_without_a_name():
    (rule,) = monitors_dsl.parse('last(crypto.price{symbol="BTC"}) > 70000')
    assert rule.name is None
    assert rule.every.seconds == 60 and rule.severity == "warning" and rule.on_no_data == "keep"
    assert rule.when.left.window.seconds == 300


def test_keywords_and_functions_are_case_insensitive_names_are_not():
    a = monitors_dsl.parse("RULE r { WHEN LAST(Cpu.Usage) > 1 SEVERITY CRITICAL }")[0]
    assert a.when.left.function == "last" and a.severity == "critical"
    assert a.when.left.selector.measurement == "Cpu"
    assert monitors_dsl.canonical("RULE r { WHEN LAST(Cpu.Usage) > 1 }") == "rule r {\n    when last(Cpu.Usage, 5m) > 1\n}\n"


def test_percent_literal_is_a_fraction():
    (rule,) = monitors_dsl.parse("pct_change(a.b, 1h) < -5%")
    assert rule.when.right.value == pytest.approx(-0.05)


def test_validate_accepts_any_object_without_raising():
    for bad in (None, 5, b"last(a.b) > 1", ["x"]):
        (d,) = monitors_dsl.validate(bad)
        assert d.code == "not-text"


SCHEMA = {
    "crypto": {"fields": {"price": "float", "volume": "integer", "exchange_name": "string"}, "tags": ["symbol", "exchange"]},
    "cpu": {"fields": {"usage_user": "float"}, "tags": ["host"]},
}


@pytest.mark.parametrize(
    ("text", "code", "hint_part"),
    [
        ('last(cryptos.price{symbol="BTC"}) > 1', "unknown-measurement", "`crypto`"),
        ('last(crypto.prices{symbol="BTC"}) > 1', "unknown-field", "`price`"),
        ('last(crypto.price{symbl="BTC"}) > 1', "unknown-tag", "`symbol`"),
        ("last(crypto.symbol) > 1", "tag-as-field", "price"),
        ("avg(crypto.exchange_name) > 1", "non-numeric-field", "count"),
        ("rule r { when avg(cpu.usage_user) > 1 group by hots }", "unknown-tag", "`host`"),
    ],
)
def test_schema_names_are_checked_with_the_closest_known_name(text, code, hint_part):
    diagnostics = monitors_dsl.validate(text, schema=SCHEMA)
    match = [d for d in diagnostics if d.code == code]
    assert match, diagnostics
    assert hint_part in match[0].hint


def test_schema_object_and_mapping_are_equivalent():
    text = 'last(crypto.prices{symbol="BTC"}) > 1'
    assert monitors_dsl.validate(text, schema=Schema.from_dict(SCHEMA)) == monitors_dsl.validate(text, schema=SCHEMA)
    assert monitors_dsl.validate(text) == []
    assert monitors_dsl.validate("count(crypto.exchange_name) > 1", schema=SCHEMA) == []


def test_warnings_do_not_stop_parse():
    (rule,) = monitors_dsl.parse("pct_change(a.b, 1h) > 5")
    (warning,) = monitors_dsl.validate("pct_change(a.b, 1h) > 5")
    assert warning.severity == "warning" and warning.code == "pct-change-scale" and "5%" in warning.hint
    assert rule.when.right.value == 5


def test_regex_positions_point_inside_the_pattern():
    (d,) = monitors_dsl.validate('last(a.b{host=~"web-(?!db)"}) > 1')
    assert d.code == "invalid-regex" and d.column == len('last(a.b{host=~"web-') + 1


@pytest.mark.parametrize("pattern", [r"^web-\d+$", r"\p{L}+", r"(?<name>x)", r"[[:alpha:]]", r"(?U)a+", r"a{2,3}", r"\z"])
def test_regexes_rust_accepts_are_accepted(pattern):
    text = 'last(a.b{host=~"' + pattern.replace("\\", "\\\\") + '"}) > 1'
    assert monitors_dsl.validate(text) == []


def test_template_error_points_at_the_line_inside_a_long_string():
    text = 'rule r {\n    when last(a.b) > 1\n    message """first\nsecond {{ valu }}\nthird {% if %}"""\n}'
    diagnostics = monitors_dsl.validate(text)
    codes = {(d.code, d.line) for d in diagnostics}
    assert ("template-syntax", 5) in codes
