"""SQL on DataFusion plus the predicate against the reference evaluator, on generated rules and data.

Every generated case runs the compiled query over the data as InfluxDB 3 presents
it and checks, per series: the same series, each term's value (floats within
1e-9 relative; sums, averages and deviations also within their rounding error
over the inputs' magnitude), the predicate's decision on the reference's values
(exactly), and its decision on the SQL row (the same unless a comparison sits on
a tie that rounding tips).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitors_dsl import ast as a
from monitors_dsl.compiler import compile_rule

from . import strategies as s
from .harness import check_rule, source_for

CASES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


def _check(rule: a.Rule, data) -> int:
    compiled = compile_rule(rule)
    source = source_for(data, s.TAGS, s.FLOAT_FIELDS, s.INT_FIELDS)
    return check_rule(compiled, data, s.AT, source)


@CASES
@given(rule=s.rules(group_by=st.just(())), data=s.datasets())
def test_ungrouped_rules_agree_with_the_reference(rule, data):
    assert _check(rule, data) == 1


@CASES
@given(rule=s.rules(group_by=st.sampled_from([("host",), ("host", "régión"), ("régión",)])), data=s.datasets())
def test_grouped_rules_agree_with_the_reference(rule, data):
    _check(rule, data)


@settings(CASES, max_examples=450)
@given(function=st.sampled_from(a.AGGREGATES), group_by=s.group_bys, data=st.data(), points=s.datasets(40))
def test_every_function_agrees_with_the_reference(function, group_by, data, points):
    """One aggregate at a time over denser data, so each function's edge cases come up often."""
    term = data.draw(s.aggregates(function))
    condition = term if function == "absent" else a.Comparison(">", term, data.draw(s.thresholds))
    _check(a.Rule(name="r", when=condition, group_by=group_by), points)


@settings(CASES, max_examples=300)
@given(rule=s.rules(severities=True), data=s.datasets())
def test_several_severities_and_resolve_agree_with_the_reference(rule, data):
    _check(rule, data)


@settings(CASES, max_examples=300)
@given(terms=st.lists(s.aggregates(), min_size=2, max_size=5), group_by=s.group_bys, data=s.datasets())
def test_terms_sharing_scans_agree_with_the_reference(terms, group_by, data):
    """Many terms on the same measurement and window: shared scans with several fields."""
    same = [a.Aggregate(t.function, a.Selector("cpu", t.selector.field, terms[0].selector.filters),
                        terms[0].window, terms[0].offset, t.parameter) for t in terms]
    condition = a.Comparison(">", same[0], a.Number(0))
    for term in same[1:]:
        condition = a.Logical("or", condition, a.Comparison("<=", term, a.Number(1)))
    _check(a.Rule(name="r", when=condition, group_by=group_by), data)
