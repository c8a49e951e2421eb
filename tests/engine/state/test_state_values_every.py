"""Property tests: keeping a firing series' values at most every ``values_every`` seconds changes what is
stored about its values, and nothing else; ``firing_outcome`` never skips an evaluation that matters."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import FIRING, Clauses, Evaluation, SeriesState, step
from engine.state.machine import _values_phase, firing_outcome, keep_values

from tests.support.state_strategies import clauses, timelines

VALUES_FIELDS = ("last_values", "last_value", "last_evaluated_at")


def unchanged_firing(state, severity, resolve, at, clauses, values_every, **key) -> bool:
    """Whether stepping that evaluation of a firing series would change nothing, its values not being due."""
    return firing_outcome(state, severity, resolve, at, clauses, values_every, **key) == "unchanged"


def _run(ticks, clauses, values_every):
    state, out = SeriesState(), []
    for tick in ticks:
        result = step(state, tick.evaluation, clauses, rule_id="rule", series_key="series", values_every=values_every)
        out.append((tick, state, result))
        state = result.state
    return out


def _notifications(steps):
    """What the receivers are told; the values only where the evaluation had data (a ``repeat`` during
    *no data* carries the values last kept, which ``values_every`` may have left older)."""
    out = []
    for tick, _, result in steps:
        for n in result.notifications:
            d = n.to_dict()
            if tick.evaluation.no_data:
                d.pop("values"), d.pop("value")
            out.append(d)
    return out


def _without_values(state: SeriesState) -> SeriesState:
    return replace(state, last_values={}, last_value=None, last_evaluated_at=None)


@settings(max_examples=150, deadline=None)
@given(timelines(), st.booleans().flatmap(lambda flap: clauses(flap=flap)),
       st.sampled_from([15, 60, 120, 300, 3600]))
def test_only_the_values_kept_differ(timeline, clauses, values_every):
    _, ticks = timeline
    every_time = _run(ticks, clauses, 0)
    spaced = _run(ticks, clauses, values_every)
    assert _notifications(spaced) == _notifications(every_time)
    for (tick, _, a), (_, before, b) in zip(every_time, spaced):
        assert a.transitions == b.transitions
        assert _without_values(a.state) == _without_values(b.state)
        state = b.state
        if state.state == FIRING and not tick.evaluation.no_data:
            fresh = dict(state.last_values) == dict(tick.evaluation.values) and state.last_value == tick.evaluation.value
            # the values kept are the current ones, or were kept less than values_every ago
            assert fresh or (tick.at - state.last_evaluated_at).total_seconds() < values_every
            if not fresh:
                assert b.state is before  # nothing written for a values-only change that is not due


@settings(max_examples=200, deadline=None)
@given(timelines(), st.booleans().flatmap(lambda flap: clauses(flap=flap)), st.sampled_from([0, 60, 300]),
       st.sampled_from(["info", "warning", "critical"]), st.sampled_from([True, False, None]),
       st.integers(0, 900))
def test_firing_outcome_skips_only_evaluations_that_change_nothing(timeline, clauses, values_every, severity,
                                                                      resolve, later):
    _, ticks = timeline
    steps = _run(ticks, clauses, values_every)
    state = steps[-1][2].state
    at = ticks[-1].at + timedelta(seconds=later)
    evaluation = Evaluation(at=at, severity=severity, resolve=resolve, values={"last(m.x)": 1.5}, value=1.5)
    outcome = firing_outcome(state, severity, resolve, at, clauses, values_every, rule_id="rule",
                             series_key="series")
    result = step(state, evaluation, clauses, rule_id="rule", series_key="series", values_every=values_every)
    if outcome == "unchanged":
        assert result.state is state
        assert not result.transitions and not result.notifications
    elif outcome == "values":
        assert result == keep_values(state, evaluation)
        assert not result.transitions and not result.notifications
        assert result.values_only or result.state is state
    if result.values_only:
        assert _without_values(result.state) == _without_values(state)


T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def _firing(clauses, values_every):
    first = step(SeriesState(), Evaluation(at=T0, severity="warning", values={"v": 1.0}, value=1.0), clauses,
                 rule_id="r", series_key="s", values_every=values_every)
    assert first.state.state == FIRING and first.notifications
    return first.state


def test_a_firing_series_keeps_new_values_once_per_period_and_at_every_change():
    clauses = Clauses()
    state = _firing(clauses, 300)
    phase = _values_phase(300, "r", "s")
    assert 0 <= phase < 300
    minute = timedelta(minutes=1)
    boundary = ((T0.timestamp() + phase) // 300 + 1) * 300 - phase  # this series' next point in a period
    n = 1
    while (T0 + n * minute).timestamp() < boundary:  # values alone changed, not due: nothing to write
        at = T0 + n * minute
        assert unchanged_firing(state, "warning", None, at, clauses, 300, rule_id="r", series_key="s")
        result = step(state, Evaluation(at=at, severity="warning", values={"v": 1.0 + n}, value=1.0 + n), clauses,
                      rule_id="r", series_key="s", values_every=300)
        assert result.state is state
        n += 1
    assert n <= 6
    at = T0 + n * minute  # due
    assert not unchanged_firing(state, "warning", None, at, clauses, 300, rule_id="r", series_key="s")
    kept = step(state, Evaluation(at=at, severity="warning", values={"v": 9.0}, value=9.0), clauses,
                rule_id="r", series_key="s", values_every=300).state
    assert kept.last_values == {"v": 9.0} and kept.last_value == 9.0 and kept.last_evaluated_at == at
    due = [not unchanged_firing(kept, "warning", None, at + k * minute, clauses, 300, rule_id="r", series_key="s")
           for k in range(1, 11)]
    assert due == [False] * 4 + [True] * 6  # kept just now: due again in its next period, five minutes on
    later = at + minute
    assert not unchanged_firing(kept, "critical", None, later, clauses, 300, rule_id="r", series_key="s")
    escalated = step(kept, Evaluation(at=later, severity="critical", values={"v": 7.0}, value=7.0), clauses,
                     rule_id="r", series_key="s", values_every=300)
    assert escalated.state.last_values == {"v": 7.0}  # a change keeps the values at once


def test_series_keep_their_values_at_different_points_of_the_period():
    phases = [_values_phase(300, "rule", f"series{i}") for i in range(200)]
    assert all(0 <= p < 300 for p in phases)
    assert max(phases) - min(phases) > 200


def test_unchanged_firing_steps_what_is_due():
    repeat = Clauses(repeat_every=120)
    state = _firing(repeat, 3600)
    key = {"rule_id": "r", "series_key": "s"}
    assert unchanged_firing(state, "warning", None, T0 + timedelta(seconds=60), repeat, 3600, **key)
    assert not unchanged_firing(state, "warning", None, T0 + timedelta(seconds=120), repeat, 3600, **key)  # repeat
    resolve = Clauses(has_resolve=True)
    state = _firing(resolve, 3600)
    later = T0 + timedelta(seconds=60)
    assert not unchanged_firing(state, "warning", True, later, resolve, 3600, **key)
    assert unchanged_firing(state, "warning", False, later, resolve, 3600, **key)
    assert not unchanged_firing(state, "critical", None, later, resolve, 3600, **key)
    assert not unchanged_firing(state, "warning", None, later, Clauses(), 0, **key)  # values kept every time
