"""Property tests: random condition timelines follow the contract's section 5."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import (
    FIRING,
    INACTIVE,
    PENDING,
    SEVERITY_RANK,
    Clauses,
    Evaluation,
    FlapDetection,
    SeriesState,
    step,
)

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Tick:
    at: datetime
    evaluation: Evaluation


def _evaluation(at, kind, severity, resolve, n):
    if kind == "nodata":
        return Evaluation(at=at, no_data=True, values={"last(m.x)": None})
    return Evaluation(at=at, severity=severity if kind == "holds" else None, resolve=resolve,
                      values={"last(m.x)": float(n)}, value=float(n))


@st.composite
def timelines(draw, max_size=40):
    every = draw(st.sampled_from([15, 60]))
    size = draw(st.integers(1, max_size))
    ticks, offset = [], 0
    for n in range(size):
        # sometimes the engine was down: evaluations are skipped, not replayed
        offset += every * draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 5]))
        kind = draw(st.sampled_from(["holds", "holds", "clear", "clear", "nodata"]))
        severity = draw(st.sampled_from(SEVERITIES))
        resolve = draw(st.sampled_from([True, False, None]))
        at = T0 + timedelta(seconds=offset)
        ticks.append(Tick(at, _evaluation(at, kind, severity, resolve, n)))
    return every, ticks


durations = st.one_of(st.just(0), st.integers(1, 400), st.sampled_from([60, 120, 300]))


@st.composite
def clauses(draw, flap=False):
    return Clauses(
        for_=draw(durations),
        keep_firing_for=draw(durations),
        has_resolve=draw(st.booleans()),
        on_no_data=draw(st.sampled_from(["ok", "alert", "keep"])),
        no_data_severity=draw(st.sampled_from(SEVERITIES)),
        repeat_every=draw(st.one_of(st.none(), st.integers(1, 600))),
        flap=FlapDetection(window=draw(st.integers(60, 1200)), high=draw(st.integers(2, 5)),
                           low=draw(st.integers(0, 1))) if flap else None,
    )


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
