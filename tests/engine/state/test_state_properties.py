"""Property tests: random condition timelines follow the contract's section 5."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import FIRING, INACTIVE, PENDING, SEVERITY_RANK, SeriesState, step
from tests.support.state_strategies import clauses, timelines


def run(ticks, clauses, *, roundtrip=False):
    state, steps = SeriesState(), []
    for tick in ticks:
        if roundtrip:
            state = SeriesState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))
        result = step(state, tick.evaluation, clauses, rule_id="rule", series_key="series")
        steps.append((tick, state, result))
        state = result.state
    return steps


def effective(tick, clauses):
    """``(severity holding, resolve criterion met)``, or None for an evaluation that is kept."""
    ev = tick.evaluation
    if ev.no_data:
        return {"keep": None, "ok": (None, True), "alert": (clauses.no_data_severity, False)}[clauses.on_no_data]
    clear = ev.resolve is True if clauses.has_resolve else ev.severity is None
    return ev.severity, clear


def seconds(a, b):
    return (a - b).total_seconds()


def check_notification_grammar(steps):
    """firing (escalation | repeat)* resolved, again and again; severities consistent."""
    told = None
    keys = set()
    for tick, _, result in steps:
        assert len(result.notifications) <= 1
        for n in result.notifications:
            assert n.idempotency_key not in keys
            keys.add(n.idempotency_key)
            assert n.at == tick.at
            if n.kind == "firing":
                assert told is None
                told = n.severity
            elif n.kind == "resolved":
                assert told is not None and n.severity == told
                told = None
            elif n.kind == "escalation":
                assert told is not None and n.severity != told and n.previous_severity == told
                up = SEVERITY_RANK[n.severity] > SEVERITY_RANK[told]
                assert n.direction == ("up" if up else "down")
                told = n.severity
            else:
                assert n.kind == "repeat" and told == n.severity


@settings(max_examples=150, deadline=None)
@given(timelines(), clauses())
def test_section_5(timeline, clauses):
    every, ticks = timeline
    steps = run(ticks, clauses)
    check_notification_grammar(steps)

    pending_since = firing_since = None
    clear_run = []  # effective evaluations with the resolve criterion met, while firing
    last_notified = None
    for tick, before, result in steps:
        after = result.state
        moves = [(t.from_state, t.to_state) for t in result.transitions]
        kinds = [n.kind for n in result.notifications]
        decided = effective(tick, clauses)

        # no notification without a transition or a repeat
        if kinds and kinds != ["repeat"]:
            assert moves, (tick, kinds)
        if kinds == ["firing"]:
            assert moves[-1][1] == FIRING and after.state == FIRING
        if kinds == ["resolved"]:
            assert moves == [(FIRING, INACTIVE)]
        if kinds == ["escalation"]:
            assert moves == [(FIRING, FIRING)]
        if kinds == ["repeat"]:
            assert after.state == FIRING and clauses.repeat_every is not None
            assert seconds(tick.at, last_notified) >= clauses.repeat_every
        # every state change that involves firing is notified (no flap detection here)
        for move in moves:
            if FIRING in move:
                assert kinds and kinds != ["repeat"]
        # a due repeat is not skipped
        if (before.state == FIRING and after.state == FIRING and not moves and clauses.repeat_every
                and seconds(tick.at, last_notified) >= clauses.repeat_every):
            assert kinds == ["repeat"]
        if result.notifications:
            last_notified = tick.at

        if decided is None:  # on no data keep: the state is left as it is
            assert not moves
            assert after.state == before.state and after.severity == before.severity
            continue
        severity, clear = decided

        # section 5, move by move
        if before.state == INACTIVE:
            if severity is None:
                assert moves == []
            elif clauses.for_ == 0:
                assert moves == [(INACTIVE, FIRING)] and after.severity == severity
            else:
                assert moves == [(INACTIVE, PENDING)]
                pending_since = tick.at
        elif before.state == PENDING:
            assert clauses.for_ > 0
            if severity is None:
                assert moves == [(PENDING, INACTIVE)]
            elif seconds(tick.at, pending_since) >= clauses.for_:  # `for` to the tick
                assert moves == [(PENDING, FIRING)] and after.severity == severity
            else:
                assert moves == [] and after.state == PENDING
        else:
            clear_run = clear_run + [tick.at] if clear else []
            if clear and seconds(tick.at, clear_run[0]) >= clauses.keep_firing_for:
                assert moves == [(FIRING, INACTIVE)]
                assert result.notifications[0].values == dict(tick.evaluation.values)
                assert result.notifications[0].started_at == firing_since
            else:
                assert after.state == FIRING
                if severity is not None and severity != before.severity:
                    assert moves == [(FIRING, FIRING)] and after.severity == severity
                else:
                    assert moves == []
        if after.state == FIRING and before.state != FIRING:
            firing_since, clear_run = tick.at, []
            assert result.notifications[0].values == dict(tick.evaluation.values)


@settings(max_examples=60, deadline=None)
@given(timelines(), clauses())
def test_serialise_deserialise_behaves_identically(timeline, clauses):
    _, ticks = timeline
    plain = [result for _, _, result in run(ticks, clauses)]
    stored = [result for _, _, result in run(ticks, clauses, roundtrip=True)]
    assert [(r.transitions, r.notifications) for r in plain] == [(r.transitions, r.notifications)
                                                                 for r in stored]
    assert plain[-1].state == stored[-1].state


@settings(max_examples=60, deadline=None)
@given(timelines(), st.booleans().flatmap(lambda flap: clauses(flap=flap)))
def test_a_tick_run_again_sends_nothing_twice(timeline, clauses):
    _, ticks = timeline
    for tick, _, result in run(ticks, clauses):
        again = step(result.state, tick.evaluation, clauses, rule_id="rule", series_key="series")
        assert again.state == result.state and again.notifications == () and again.transitions == ()


@settings(max_examples=100, deadline=None)
@given(timelines(max_size=60), clauses(flap=True))
def test_flapping_holds_and_keeps_receivers_consistent(timeline, clauses):
    _, ticks = timeline
    steps = run(ticks, clauses)
    check_notification_grammar(steps)
    for _, _, result in steps:
        if result.state.flapping:
            assert result.notifications == ()
        else:
            # once not flapping, the receivers know the current state
            told = result.state.notified_severity
            assert told == (result.state.severity if result.state.state == FIRING else None)
        assert len(result.state.changes) <= clauses.flap.high + 1
