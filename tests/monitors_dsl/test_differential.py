"""SQL on DataFusion plus the predicate against the reference evaluator, on generated rules and data.

Every generated case runs the compiled query over the data as InfluxDB 3 presents
it and checks, per series: the same series, each term's value (floats within
1e-9 relative; sums, averages and deviations also within their rounding error
over the inputs' magnitude), the predicate's decision on the reference's values
(exactly), and its decision on the SQL row (the same unless a comparison sits on
a tie that rounding tips).

Most cases are built from a seed with ``random.Random`` (drawing a whole rule
through Hypothesis costs more than running it); one test draws rules with
Hypothesis strategies, so its failures shrink to a small rule.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from monitors_dsl import ast as a
from monitors_dsl.compiler import compile_rule
from monitors_dsl.printer import print_rule

from tests.support import compiler_strategies as s
from tests.support.compiler_harness import check_rule, source_for

CASES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


def _check(rule: a.Rule, data) -> int:
    note(print_rule(rule))
    note(repr(data))
    compiled = compile_rule(rule)
    source = source_for(data, s.TAGS, s.FLOAT_FIELDS, s.INT_FIELDS)
    return check_rule(compiled, data, s.AT, source)


@CASES
@given(seed=s.seeds)
def test_ungrouped_rules_agree_with_the_reference(seed):
    assert _check(s.RandomRules(seed).rule(group_by=()), s.make_dataset(seed)) == 1


@CASES
@given(seed=s.seeds, group_by=st.sampled_from(s.GROUP_BYS[1:]))
def test_grouped_rules_agree_with_the_reference(seed, group_by):
    _check(s.RandomRules(seed).rule(group_by=group_by), s.make_dataset(seed))


@settings(CASES, max_examples=450)
@given(function=st.sampled_from(a.AGGREGATES), group_by=st.sampled_from(s.GROUP_BYS), seed=s.seeds)
def test_every_function_agrees_with_the_reference(function, group_by, seed):
    """One aggregate at a time over denser data, so each function's edge cases come up often."""
    rules = s.RandomRules(seed)
    term = rules.aggregate(function)
    condition = term if function == "absent" else a.Comparison(">", term, rules.number())
    _check(a.Rule(name="r", when=condition, group_by=group_by), s.make_dataset(seed, max_points=40))


@settings(CASES, max_examples=300)
@given(seed=s.seeds)
def test_several_severities_and_resolve_agree_with_the_reference(seed):
    _check(s.RandomRules(seed).rule(severities=True), s.make_dataset(seed))


@settings(CASES, max_examples=300)
@given(seed=s.seeds, size=st.integers(2, 6), group_by=st.sampled_from(s.GROUP_BYS))
def test_terms_sharing_scans_agree_with_the_reference(seed, size, group_by):
    """Many terms on one measurement, filters, window and offset: shared scans reading several fields."""
    rules = s.RandomRules(seed)
    first = rules.aggregate()
    terms = [first] + [a.Aggregate(rules.aggregate().function, a.Selector(first.selector.measurement,
                                                                          rules.rng.choice(s.FLOAT_FIELDS + s.INT_FIELDS),
                                                                          first.selector.filters),
                                   first.window, first.offset, 50.0 if i % 2 else 90.0)
                       for i in range(size - 1)]
    baseline = float(rules.rng.choice(s.baseline_choices(first.window.seconds)))  # zscores share it
    terms = [t if t.function == "percentile" else a.Aggregate(
                 t.function, t.selector, t.window, t.offset, baseline if t.function == "zscore" else None)
             for t in terms]
    condition = a.Comparison(">", terms[0], a.Number(0))
    for term in terms[1:]:
        condition = a.Logical("or", condition, a.Comparison("<=", term, a.Number(1)))
    _check(a.Rule(name="r", when=condition, group_by=group_by), s.make_dataset(seed))


@settings(CASES, max_examples=150)
@given(rule=s.rules(), data=s.datasets())
def test_drawn_rules_agree_with_the_reference(rule, data):
    _check(rule, data)
