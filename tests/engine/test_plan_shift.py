"""A layout's plan is built once at a fixed epoch and its SQL moved to each tick's time (``Plan.at_time``):
the moved SQL must be, character for character, the SQL compiled afresh at that time — for every query of
generated rule sets (merged queries included), at times before and after the epoch, with sub-second parts,
and for windows and offsets of seconds to weeks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.layout import _EPOCH as LAYOUT_EPOCH
from engine import plan as plans
from engine.plan import plan_tick
from engine.rules import build_rule
from monitors_dsl import ast as a
from monitors_dsl.compiler import compile_rule
from monitors_dsl.sql import sql_for_terms, time_ns
from tests.support import compiler_strategies as s

times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                     timezones=st.just(timezone.utc))
durations = st.sampled_from([1, 59, 60, 300, 3600, 86400, 7 * 86400, 30 * 86400]).map(a.Duration)


@st.composite
def merged_family(draw):
    """Rules equal but for one ``tag = value`` filter: their scans are answered by one merged query."""
    function = draw(st.sampled_from(a.AGGREGATES))
    tag = draw(st.sampled_from(s.TAGS))
    values = draw(st.lists(st.sampled_from(s.TAG_VALUES), min_size=2, max_size=4, unique=True))
    group_by = draw(st.sampled_from(s.GROUP_BYS))
    window, offset = draw(durations), draw(st.one_of(st.just(a.ZERO), durations))
    rules = []
    for value in values:
        selector = a.Selector(s.MEASUREMENTS[0], s.FLOAT_FIELDS[0], (a.Filter(tag, "=", value),))
        parameter = 90.0 if function == "percentile" else None
        if function in a.DURATION_PARAMETER:  # a baseline longer than the window
            parameter = float(s.baseline_choices(window.seconds)[-1])
        node = a.Aggregate(function, selector, window, offset, parameter)
        condition = node if function == "absent" else a.Comparison(">", node, a.Number(1.0))
        rules.append(a.Rule(name="r", when=condition, group_by=group_by))
    return rules


rule_sets = st.tuples(st.lists(s.rules(), max_size=4), st.lists(merged_family(), max_size=2)).map(
    lambda parts: parts[0] + [rule for family in parts[1] for rule in family]).filter(bool)


def engine_rules(rules):
    # The SQL of a scan is remembered for the process and shifted wherever it is asked for again; a scan of
    # another rule set whose group tags are listed in another order shares it (its columns in that order,
    # read by name): start each case afresh so that what is compared is this plan's own SQL.
    plans._SQL_CACHE.clear()
    return [build_rule(compile_rule(rule), id=str(i)) for i, rule in enumerate(rules, start=1)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_sets, at=times, epoch=st.one_of(st.just(LAYOUT_EPOCH), times))
def test_sql_moved_from_the_layout_epoch_equals_sql_compiled_at_the_tick(rules, at, epoch) -> None:
    plan = plan_tick(engine_rules(rules), epoch)
    moved = plan.at_time(at)
    assert moved.query_count == plan.query_count
    for query in moved.queries:
        assert query.sql == sql_for_terms(query.scan.terms, time_ns(at), query.scan.group_by)


@settings(max_examples=100, deadline=None)
@given(seed=s.seeds, at=times, step=st.integers(1, 10**6))
def test_sql_moved_twice_equals_sql_compiled_at_the_last_time(seed, at, step) -> None:
    """A plan moved tick after tick (as the live loop does) stays equal to the SQL compiled afresh."""
    rules = s.RandomRules(seed)
    plan = plan_tick(engine_rules([rules.rule() for _ in range(3)]), LAYOUT_EPOCH)
    later = at + timedelta(seconds=step, microseconds=step % 1000)
    moved = plan.at_time(at).at_time(later)
    for query in moved.queries:
        assert query.sql == sql_for_terms(query.scan.terms, time_ns(later), query.scan.group_by)
