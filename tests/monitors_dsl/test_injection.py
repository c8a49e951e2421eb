"""No user text changes the shape of the SQL: any string as a tag value or any name filters on exactly it."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitors_dsl import compile_rule
from monitors_dsl.ast import Aggregate, Comparison, Filter, Number, Rule, Selector

from tests.support.compiler_harness import run_sql, source_for

AT = datetime(2024, 5, 1, 12, 0)
AT_NS = 1714564800 * 10**9
CASES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
nasty = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["'", "''", '"', "\\", "'; DROP TABLE m; --", "' OR '1'='1", '" OR "1"="1', "%", "_",
                     "a' || 'b", "\x00", "é☃東京", "\n", "$1", "?", "{{x}}", "`", "*/", "/*"]),
)
# Arrow passes column names as C strings, so no table can have a NUL in a column name.
names = nasty.filter(lambda s: s not in ("", "time") and "\x00" not in s)


def _count(measurement: str, field: str, tag: str, op: str, value) -> Rule:
    selector = Selector(measurement, field, (Filter(tag, op, value),))
    return Rule(when=Comparison(">=", Aggregate("count", selector), Number(0)))


def _points(tag: str, field: str, value: str, other: str) -> list[dict]:
    return [{"time": AT_NS - 10**9, tag: value, field: 1.0},
            {"time": AT_NS - 2 * 10**9, tag: value, field: 1.0},
            {"time": AT_NS - 3 * 10**9, tag: other, field: 1.0},
            {"time": AT_NS - 4 * 10**9, field: 1.0}]


def _run(rule: Rule, measurement: str, tag: str, field: str, points) -> int:
    compiled = compile_rule(rule)
    rows = run_sql(compiled, source_for({measurement: points}, [tag], [field], []), AT)
    return rows[()][compiled.terms[0].column]


@CASES
@given(value=nasty, other=nasty)
def test_any_tag_value_is_matched_exactly(value, other):
    assume(value != other and "" not in (value, other))
    points = _points("host", "v", value, other)
    assert _run(_count("m", "v", "host", "=", value), "m", "host", "v", points) == 2
    assert _run(_count("m", "v", "host", "!=", value), "m", "host", "v", points) == 2
    assert _run(_count("m", "v", "host", "in", (value, "zz")), "m", "host", "v", points) == 2
    assert _run(_count("m", "v", "host", "not in", (value,)), "m", "host", "v", points) == 2


@CASES
@given(measurement=names, field=names, tag=names, value=nasty)
def test_any_name_is_quoted_exactly(measurement, field, tag, value):
    assume(len({field, tag}) == 2 and value != "")
    points = _points(tag, field, value, value + "x")
    assert _run(_count(measurement, field, tag, "=", value), measurement, tag, field, points) == 2


@CASES
@given(tag=names, value=nasty)
def test_any_name_as_a_group_tag(tag, value):
    assume(tag != "v" and value != "")
    rule = Rule(when=Comparison(">", Aggregate("count", Selector("m", "v")), Number(0)), group_by=(tag,))
    compiled = compile_rule(rule)
    rows = run_sql(compiled, source_for({"m": _points(tag, "v", value, "other")}, [tag], ["v"], []), AT)
    assert {key: row[compiled.terms[0].column] for key, row in rows.items()} == {(value,): 2, ("other",): 1,
                                                                                 ("",): 1}
