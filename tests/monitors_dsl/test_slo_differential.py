"""SLO blocks' expanded rules: SQL on DataFusion plus the predicate against the reference evaluator.

The blocks are generated with windows the generated data reaches (``RandomRules.slo``), any ``sum`` /
``count`` terms over the test schema, any objective and overridden thresholds, grouped or not; the
checks are the compiler harness's (same series, each term's value, the decisions).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from monitors_dsl.compiler import compile_rule
from monitors_dsl.printer import print_rule

from tests.support import compiler_strategies as s
from tests.support.compiler_harness import check_rule, source_for

CASES = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


@CASES
@given(seed=s.seeds, group_by=st.sampled_from(s.GROUP_BYS))
def test_expanded_slo_rules_agree_with_the_reference(seed, group_by):
    rule = s.RandomRules(seed).slo(group_by=group_by)
    text = print_rule(rule)
    note(text)
    assert text.startswith("slo r {")
    compiled = compile_rule(rule)
    assert compiled.rule == rule
    data = s.make_dataset(seed, max_points=40)
    source = source_for(data, s.TAGS, s.FLOAT_FIELDS, s.INT_FIELDS)
    count = check_rule(compiled, data, s.AT, source)
    if not group_by:
        assert count == 1


@settings(CASES, max_examples=150)
@given(seed=s.seeds)
def test_slo_terms_on_one_measurement_share_a_scan_per_window(seed):
    """bad and total reading one measurement with the same filters: one scan per distinct window."""
    rules = s.RandomRules(seed)
    rule = rules.slo(group_by=())
    slo = rule.slo
    total = type(slo.total)(slo.total.function, type(slo.bad.selector)(
        slo.bad.selector.measurement, rules.rng.choice(s.FLOAT_FIELDS + s.INT_FIELDS), slo.bad.selector.filters))
    from monitors_dsl.slo import slo_rule

    shared = slo_rule("r", type(slo)(slo.bad, total, slo.objective, slo.page, slo.slow_page, slo.ticket))
    compiled = compile_rule(shared)
    windows = {w for alert in (slo.page, slo.slow_page, slo.ticket) for w in (alert.long.seconds, alert.short.seconds)}
    assert compiled.sql(s.AT).count("\n    FROM ") - compiled.sql(s.AT).count("\n    FROM s") == len(windows)
    data = s.make_dataset(seed, max_points=40)
    check_rule(compiled, data, s.AT, source_for(data, s.TAGS, s.FLOAT_FIELDS, s.INT_FIELDS))
