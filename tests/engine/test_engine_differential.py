"""The live engine decides exactly as its plain definition, tick by tick, on generated rule sets and data.

Each case (``tests.support.engine_differential``) runs twice: through the real runner — rules stored by the
rule service in SQLite, ``StoreRules``, ``Runner`` with ``Evaluator`` over DataFusion (shared and merged
queries, layouts laid out again from the last one as rules change, cohorts of one shape decided by binary
search over thresholds, rules with nothing to step skipped, a firing series' values kept once per period)
and ``SqlRepository`` (batched writes) — and through ``tests.support.plain_engine``: the reference
evaluator over the raw points and the state machine stepped for every known series of every due rule at
every tick. Transitions, alerts (labels, severities, values at start and resolution, events),
notifications, the series states left in the store and rule errors must be identical (numbers within 1e-9
relative: SQL rounds sums and deviations differently).

Cases are built from a seed (drawing a whole rule set through Hypothesis costs more than running it). Every
case a run found different is kept below as an ``@example``, with what it showed.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from tests.support.engine_differential import differences, make_case, run_engine, run_plain

CASES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(case) -> None:
    note(case.texts())
    found = differences(run_engine(case), run_plain(case))
    assert not found, f"case {case.seed}: the engine differs from the plain definition:\n" + "\n".join(found)


@CASES
@given(seed=st.integers(0, 2**32 - 1))
# `absent(…) or absent(…)` with group by: the series never left pending (rules with nothing to step skipped)
@example(seed=51)
# a grouped rule whose condition holds without data (`not absent(…)`, `… or 0.008 <= 7.5`) for a series known
# from the last 24 hours, under `on no data ok`: the engine did not know the series
@example(seed=40)
@example(seed=58)
# a series the query no longer returns: stepped with no values at all instead of its terms' (no data)
@example(seed=31)
@example(seed=72)
# group by a tag a measurement lacks: "No field named host", the rule in error
@example(seed=9)
def test_the_engine_decides_as_the_plain_definition(seed: int) -> None:
    check(make_case(seed))


@settings(CASES, max_examples=60)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_engine_follows_rule_changes_between_ticks(seed: int) -> None:
    """Many rules of few shapes and several changes: layouts laid out from the last one, cohorts changing."""
    check(make_case(seed, rules=12, changes=5))
