"""Test blocks in the language: the values notation, each expectation, every diagnostic, the canonical text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitors_dsl
from monitors_dsl import testblocks as tb
from monitors_dsl._api import analyze
from monitors_dsl.compiler import compile_rule

RULE = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
    notify trading_slack
    title "BTC above 70k"
}
"""
EXAMPLE = RULE + """
test btc_crosses for btc_above_70k {
    series crypto.price{symbol="BTC"} every 1m: 69000 69500 70100 70200+0x3 69900
    expect firing at 2m severity critical
    expect inactive at 8m
    expect notification at 2m to trading_slack contains "BTC above 70k"
}
"""


def _values(notation: str) -> list:
    text = RULE + f"test t {{\n    series crypto.price every 1m: {notation}\n    expect inactive at 0m\n}}\n"
    document = monitors_dsl.parse(text)
    return tb.expand(document.tests[0].series[0].runs)


@pytest.mark.parametrize(("notation", "values"), [
    ("1 2 3", [1, 2, 3]),
    ("1+2x3", [1, 3, 5, 7]),
    ("10-1x2", [10, 9, 8]),
    ("5x2", [5, 5, 5]),
    ("70200+0x3", [70200] * 4),
    ("_", [None]),
    ("_x3", [None, None, None]),
    ("1 _ 2 _x2 3", [1, None, 2, None, None, 3]),
    ("-5 -1.5 .5 2.", [-5, -1.5, 0.5, 2.0]),
    ("-1-1x2", [-1, -2, -3]),
    ("1.5+0.5x2", [1.5, 2.0, 2.5]),
    ("1e3 2E-1", [1000, 0.2]),
    ("1e3+1e2x1", [1000, 1100]),
    ("0+1x0", [0]),
    ("_x0 4", [4]),
])
def test_the_values_notation_expands_as_prometheus_does(notation, values):
    assert _values(notation) == values


@pytest.mark.parametrize(("notation", "message", "column", "end_column"), [
    ("70200+0x", "`70200+0x` is missing its count after `x`", 8, 9),
    ("1+", "`+` must be followed by a step", 2, 3),
    ("1+2", "`1+2` needs `x` and a count after the step", 1, 4),
    ("1+2x-3", "the count after `x` must be a whole number, not `-3`", 5, 7),
    ("1+2x1.5", "the count after `x` must be a whole number, not `1.5`", 5, 8),
    ("_x", "the count of missing points after `_x` is missing", 2, 3),
    ("_y", "`_y` is not a value: `_` (no point) stands alone or as `_xn`", 2, 3),
    ("_xa", "the count of missing points after `_x` must be a whole number, not `a`", 3, 4),
    ("abc", "`abc` is not a number", 1, 4),
    ("NaN", "`NaN` is not a number", 1, 4),
    ("stale", "`stale` is not a number", 1, 6),
    ("1+2y3", "unexpected `y3` in `1+2y3`", 4, 6),
    ("1/2", "unexpected `/2` after `1`", 2, 4),
    ("1e999", "number `1e999` is too large", 1, 6),
])
def test_every_notation_error_has_its_position(notation, message, column, end_column):
    prefix = "    series crypto.price every 1m: 1 "
    text = RULE + f"test t {{\n{prefix}{notation}\n    expect inactive at 0m\n}}\n"
    found = [d for d in monitors_dsl.validate(text) if d.code == "test-bad-values"]
    assert [(d.message, d.line, d.column, d.end_column) for d in found] == [
        (message, 8, len(prefix) + column, len(prefix) + end_column)]


def test_a_series_without_values_and_one_too_long_are_errors():
    text = RULE + "test t {\n    series crypto.price every 1m:\n    expect inactive at 0m\n}\n"
    (empty,) = [d for d in monitors_dsl.validate(text) if d.severity == "error"]
    assert (empty.code, empty.line) == ("test-no-values", 8)
    text = RULE + "test t {\n    series crypto.price every 1s: 1x200000\n    expect inactive at 0m\n}\n"
    assert "test-too-many-points" in {d.code for d in monitors_dsl.validate(text)}


def test_the_parse_result_keeps_tests_apart_and_the_rules_compile_the_same():
    document = monitors_dsl.parse(EXAMPLE)
    assert document == monitors_dsl.parse(RULE)
    assert [t.name for t in document.tests] == ["btc_crosses"]
    assert monitors_dsl.parse(RULE).tests == []
    with_tests, without = compile_rule(EXAMPLE), compile_rule(RULE)
    assert with_tests.canonical == without.canonical
    assert with_tests.sql(0) == without.sql(0)
    assert with_tests.predicate_source == without.predicate_source


def test_each_expectation_is_read():
    text = RULE.replace("severity critical", "group by host\n    labels team = \"t\"") + """
test all for btc_above_70k {
    series crypto.price{symbol="BTC", host="a"} every 1m from 2m: 1 2
    expect pending at 1m labels host = "a", team = "t" severity warning
    expect firing at 2m
    expect inactive at 3m labels host = "a"
    expect resolved at 4m
    expect notification at 2m
    expect notification at 3m to trading_slack
    expect notification at 3m contains "70k"
    expect no notification between 10s and 50s
}
"""
    assert monitors_dsl.validate(text) == []
    (test,) = monitors_dsl.parse(text).tests
    (series,) = test.series
    assert series.tags == {"symbol": "BTC", "host": "a"}
    assert series.points() == [(120, 1.0), (180, 2.0)]
    assert test.expectations == (
        tb.ExpectState("pending", monitors_dsl.ast.Duration(60), (("host", "a"), ("team", "t")), "warning"),
        tb.ExpectState("firing", monitors_dsl.ast.Duration(120)),
        tb.ExpectState("inactive", monitors_dsl.ast.Duration(180), (("host", "a"),)),
        tb.ExpectResolved(monitors_dsl.ast.Duration(240)),
        tb.ExpectNotification(monitors_dsl.ast.Duration(120)),
        tb.ExpectNotification(monitors_dsl.ast.Duration(180), channel="trading_slack"),
        tb.ExpectNotification(monitors_dsl.ast.Duration(180), contains="70k"),
        tb.ExpectNoNotification(monitors_dsl.ast.Duration(10), monitors_dsl.ast.Duration(50)),
    )
    assert test.last_time == 240


def test_canonical_prints_tests_after_the_rules_in_the_order_written():
    messy = """TEST second FOR btc_above_70k {
  EXPECT  firing AT 60s   SEVERITY Critical
  SERIES crypto.price{symbol='BTC'} EVERY 60s FROM 0s:   70001x2  _x1  1+1x1
}
""" + RULE + """test first { series crypto.price{symbol="BTC"} every 1m: 1
expect inactive at 0m }
"""
    printed = monitors_dsl.canonical(messy)
    assert printed == monitors_dsl.canonical(RULE) + """
test second for btc_above_70k {
    expect firing at 1m severity critical
    series crypto.price{symbol="BTC"} every 1m: 70001+0x2 _ 1+1x1
}

test first {
    series crypto.price{symbol="BTC"} every 1m: 1
    expect inactive at 0s
}
"""
    assert monitors_dsl.canonical(printed) == printed
    assert monitors_dsl.parse(printed).tests == monitors_dsl.parse(messy).tests


def test_names_spelled_like_the_new_words_still_read_as_names():
    text = """rule test {
    when last(series.expect{at="to"}, 5m) > 1
    notify between
}

test at for test {
    series series.expect{at="to"} every 1m: 2
    expect firing at 0s
    expect notification at 0s to between contains "x"
}
"""
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []
    assert monitors_dsl.canonical(text) == text


# --- diagnostics ------------------------------------------------------------------------------

TWO_RULES = RULE + """
rule btc_below_60k {
    when last(crypto.price{symbol="BTC"}) < 60000
    every 5m
    group by host
    notify pager
}
"""
SERIES = '    series crypto.price{symbol="BTC"} every 1m: 1x20\n'

#: (test text after the rules, code, line, column, severity)
DIAGNOSTICS = [
    ("test t for nope {\n" + SERIES + "    expect inactive at 0m\n}", "test-unknown-rule", 15, 12, "error"),
    ("test t for btc_below_6k {\n" + SERIES + "    expect inactive at 0m\n}", "test-unknown-rule", 15, 12, "error"),
    ("test t {\n" + SERIES + "    expect inactive at 0m\n}", "test-needs-rule", 15, 6, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "}", "test-no-expectations", 15, 6, "warning"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect inactive at 0m\n}\ntest t for btc_above_70k {\n"
     + SERIES + "    expect inactive at 0m\n}", "test-duplicate-name", 19, 6, "error"),
    ("test t for btc_above_70k {\n    series crypto.price{symbol!=\"BTC\"} every 1m: 1\n    expect inactive at 0m\n}",
     "test-series-filter", 16, 25, "error"),
    ("test t for btc_above_70k {\n    series crypto.price{symbol in (\"BTC\")} every 1m: 1\n"
     "    expect inactive at 0m\n}", "test-series-filter", 16, 25, "error"),
    ("test t for btc_above_70k {\n" + SERIES + SERIES + "    expect inactive at 0m\n}",
     "test-duplicate-series", 17, 5, "error"),
    ("test t for btc_above_70k {\n    series crypto.price every 0s: 1\n    expect inactive at 0m\n}",
     "duration-not-positive", 16, 31, "error"),
    ("test t for btc_above_70k {\n    series crypto.volume every 1m: 1\n    expect inactive at 0m\n}",
     "test-series-unused", 16, 12, "warning"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 30m\n}", "test-time-past-series", 17, 22, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect no notification between 0m and 22m\n}",
     "test-time-past-series", 17, 43, "error"),
    ("test t for btc_below_60k {\n" + SERIES + "    expect firing at 3m\n}", "test-time-not-evaluated", 17, 22, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 2m\n    expect inactive at 2m\n}",
     "test-contradiction", 18, 5, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect pending at 2m\n    expect firing at 2m\n}",
     "test-contradiction", 18, 5, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 2m severity info\n"
     "    expect firing at 2m severity critical\n}", "test-contradiction", 18, 5, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect resolved at 2m\n    expect firing at 2m\n}",
     "test-contradiction", 18, 5, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect notification at 2m\n"
     "    expect no notification between 1m and 3m\n}", "test-contradiction", 18, 5, "error"),
    ("test t for btc_below_60k {\n" + SERIES + "    expect firing at 5m labels host = \"a\"\n"
     "    expect inactive at 5m\n}", "test-contradiction", 18, 5, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect inactive at 2m severity critical\n}",
     "test-inactive-severity", 17, 36, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect notification at 2m to pager\n}",
     "test-unknown-channel", 17, 34, "error"),
    ("test t for btc_below_60k {\n" + SERIES + "    expect notification at 5m to pagr\n}",
     "test-unknown-channel", 17, 34, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect no notification between 3m and 1m\n}",
     "test-bad-range", 17, 5, "error"),
    ("test t for btc_below_60k {\n" + SERIES + "    expect firing at 5m labels hots = \"a\"\n}",
     "test-unknown-label", 17, 32, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect fiering at 2m\n}", "test-unknown-state", 17, 12, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 2m severity high\n}",
     "unknown-severity", 17, 34, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 2m labels a = \"1\", a = \"2\"\n}",
     "duplicate-label", 17, 41, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing at 2m labels a =~ \"1\"\n}",
     "bad-label", 17, 34, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    expect firing 2m\n}", "syntax-error", 17, 19, "error"),
    ("test t for btc_above_70k {\n    series crypto.price every 1m 1 2\n    expect firing at 2m\n}",
     "syntax-error", 16, 34, "error"),
    ("test t for btc_above_70k {\n" + SERIES + "    wait 2m\n}", "syntax-error", 17, 5, "error"),
]


@pytest.mark.parametrize(("tests", "code", "line", "column", "severity"), DIAGNOSTICS,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(DIAGNOSTICS)])
def test_each_diagnostic_has_its_code_and_position(tests, code, line, column, severity):
    found = monitors_dsl.validate(TWO_RULES + "\n" + tests + "\n")
    matching = [d for d in found if d.code == code]
    assert [(d.line, d.column, d.severity) for d in matching][:1] == [(line, column, severity)], \
        [str(d) + " " + d.code for d in found]
    assert all(d.hint for d in matching)


def test_a_test_in_a_document_without_rules_and_a_broken_rule_beside_a_test():
    found = monitors_dsl.validate("test t {\n    expect inactive at 0m\n}\n")
    assert [d.code for d in found] == ["test-no-rule"]
    broken = "rule a {\n    when lats(x.y) > 1\n}\n\ntest t for a {\n    series x.y every 1m: 1 2+x\n" \
             "    expect firing at 1m\n}\n"
    codes = {(d.code, d.line) for d in monitors_dsl.validate(broken)}
    assert {("unknown-function", 2), ("test-bad-values", 6)} <= codes


def test_a_broken_document_still_reports_every_broken_test_line():
    text = """rule a {
    when last(x.y) > 1
    evry 1m
}

test t for a {
    series x.y every 1m 1 2
    expect firing 2m
    expect firing at 1m labels h = "x"
}
"""
    found = [(d.code, d.line) for d in monitors_dsl.validate(text)]
    assert ("unknown-clause", 3) in found
    assert ("syntax-error", 7) in found and ("syntax-error", 8) in found
    assert ("test-unknown-label", 9) in found


# --- properties --------------------------------------------------------------------------------

_numbers = st.one_of(st.integers(-10_000, 10_000).map(float),
                     st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)))
_runs = st.lists(st.one_of(
    st.builds(tb.ValueRun, _numbers),
    st.builds(tb.ValueRun, _numbers, _numbers, st.integers(0, 5)),
    st.builds(lambda n: tb.ValueRun(None, 0.0, n), st.integers(1, 5)),
), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(_runs)
def test_printed_values_read_back_to_the_same_runs_and_points(runs):
    printed = tb.print_values(runs)
    expected = tb.expand(runs)
    assert _values(printed) == pytest.approx(expected, nan_ok=False) if None not in expected \
        else [v is None for v in _values(printed)] == [v is None for v in expected]
    text = RULE + f"test t {{\n    series crypto.price every 1m: {printed}\n    expect inactive at 0m\n}}\n"
    assert monitors_dsl.canonical(monitors_dsl.canonical(text)) == monitors_dsl.canonical(text)


def test_a_broken_test_header_and_an_unclosed_test_are_reported():
    rule = "rule a {\n    when last(x.y) > 1\n    evry 1m\n}\n"
    no_brace = rule + "test t for a\n    series x.y every 1m: 1\n"
    found = {(d.code, d.line) for d in monitors_dsl.validate(no_brace)}
    assert ("syntax-error", 5) in found
    unclosed = rule + "test t for a {\n    series x.y every 1m: 1 2\n    expect firing at 1m\n"
    found = [(d.code, d.line) for d in monitors_dsl.validate(unclosed)]
    assert ("unclosed-test", 7) in found
    (test,) = analyze(unclosed)[0].tests
    assert [type(item).__name__ for item in test.items] == ["TestSeries", "ExpectState"]


_name = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in {"rule", "test", "slo", "and", "or", "not", "in", "for", "on", "no", "by"})
_when = st.integers(0, 12).map(lambda m: f"{m}m")
_expectation = st.one_of(
    st.builds(lambda s, t: f"expect {s} at {t}", st.sampled_from(["pending", "firing"]), _when),
    st.builds(lambda t, v: f'expect inactive at {t} labels host = "{v}"', _when, _name),
    st.builds(lambda t, s: f"expect firing at {t} severity {s}", _when, st.sampled_from(["critical", "info"])),
    st.builds(lambda t: f"expect resolved at {t}", _when),
    st.builds(lambda t, c: f'expect notification at {t} to desk contains "{c}"', _when, _name),
    st.builds(lambda a_, b: f"expect no notification between {min(a_, b)}m and {max(a_, b)}m",
              st.integers(0, 12), st.integers(0, 12)),
)


@settings(max_examples=100, deadline=None)
@given(name=_name, lines=st.lists(_expectation, max_size=6), values=_runs)
def test_any_test_block_prints_canonically_and_reads_back_the_same(name, lines, values):
    rule = "rule r {\n    when last(x.y) > 1\n    group by host\n    notify desk\n}\n"
    text = rule + f"\ntest {name} {{\n    series x.y{{host=\"a\"}} every 1m: {tb.print_values(values)} _x12\n" \
        + "".join(f"    {line}\n" for line in lines) + "}\n"
    document = monitors_dsl.parse(text) if not any(
        d.severity == "error" for d in monitors_dsl.validate(text)) else None
    if document is None:  # contradictory expectations: reported, never printed
        assert {d.code for d in monitors_dsl.validate(text) if d.severity == "error"} == {"test-contradiction"}
        return
    printed = monitors_dsl.canonical(text)
    assert monitors_dsl.canonical(printed) == printed
    again = monitors_dsl.parse(printed)
    assert again == document and again.tests == document.tests
