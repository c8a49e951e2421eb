"""Table-driven tests of the state machine's tricky cases (contract section 5)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.state import (
    Clauses,
    Evaluation,
    FlapDetection,
    SeriesState,
    idempotency_key,
    step,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
EVERY = 60

# Timeline codes: "C" critical, "W" warning, "I" info holds; "." nothing holds;
# "N" no data; "R" nothing holds and the resolve condition holds;
# "r" warning holds and the resolve condition holds (overlapping conditions).
_SEV = {"C": "critical", "W": "warning", "I": "info"}


def evaluation(code: str, at: datetime, i: int) -> Evaluation:
    values = {"last(x)": float(i)}
    if code == "N":
        return Evaluation(at=at, no_data=True, values={"last(x)": None})
    if code == "R":
        return Evaluation(at=at, severity=None, resolve=True, values=values, value=float(i))
    if code == "r":
        return Evaluation(at=at, severity="warning", resolve=True, values=values, value=float(i))
    return Evaluation(at=at, severity=_SEV.get(code), resolve=False, values=values, value=float(i))


def run(timeline: str, clauses: Clauses, state: SeriesState | None = None):
    """Run a timeline; return (states, transitions, notifications) as compact text."""
    state = state or SeriesState()
    states, transitions, notifications = [], [], []
    for i, code in enumerate(timeline):
        at = T0 + timedelta(seconds=EVERY * i)
        result = step(state, evaluation(code, at, i), clauses, rule_id="rule-1", series_key='{"host":"a"}')
        state = result.state
        states.append(state.state[0].upper())
        transitions += [f"{i}:{t.from_state[0]}>{t.to_state[0]}:{t.severity}" for t in result.transitions]
        for n in result.notifications:
            text = f"{i}:{n.kind}:{n.severity}"
            if n.direction:
                text += f":{n.direction}"
            notifications.append(text)
    return "".join(states), transitions, notifications


CASES = [
    # id, timeline, clauses, expected states, expected notifications
    ("for-0-fires-at-once", "..W..", Clauses(),
     "IIFII", ["2:firing:warning", "3:resolved:warning"]),
    ("for-2m-to-the-tick", "WWWW.", Clauses(for_=120),
     "PPFFI", ["2:firing:warning", "4:resolved:warning"]),
    ("for-not-a-multiple-of-every", "WWWW", Clauses(for_=90),
     "PPFF", ["2:firing:warning"]),
    ("pending-then-false-no-notification", "WW.WW.", Clauses(for_=180),
     "PPIPPI", []),
    ("keep-firing-for-bridges-a-gap", "W..W...", Clauses(keep_firing_for=120),
     "FFFFFFI", ["0:firing:warning", "6:resolved:warning"]),
    ("keep-firing-for-expires", "W...", Clauses(keep_firing_for=60),
     "FFII", ["0:firing:warning", "2:resolved:warning"]),
    ("escalation-up-and-down", "WWCCW.", Clauses(),
     "FFFFFI", ["0:firing:warning", "2:escalation:critical:up", "4:escalation:warning:down",
                "5:resolved:warning"]),
    ("pending-severity-follows-condition", "WCC", Clauses(for_=120),
     "PPF", ["2:firing:critical"]),
    ("repeat-every", "WWWWWWW.", Clauses(repeat_every=180),
     "FFFFFFFI", ["0:firing:warning", "3:repeat:warning", "6:repeat:warning", "7:resolved:warning"]),
    ("escalation-restarts-repeat-clock", "WWCCCCC", Clauses(repeat_every=180),
     "FFFFFFF", ["0:firing:warning", "2:escalation:critical:up", "5:repeat:critical"]),
    ("resolve-when-hysteresis", "W..R.", Clauses(has_resolve=True),
     "FFFII", ["0:firing:warning", "3:resolved:warning"]),
    ("resolve-when-interrupted-keeps-counting-from-scratch", "WR.RR", Clauses(has_resolve=True,
                                                                               keep_firing_for=60),
     "FFFFI", ["0:firing:warning", "4:resolved:warning"]),
    ("resolve-when-overlapping-condition-resolves", "Wr", Clauses(has_resolve=True),
     "FI", ["0:firing:warning", "1:resolved:warning"]),
    ("no-data-keep-leaves-state", "WNNN.", Clauses(),
     "FFFFI", ["0:firing:warning", "4:resolved:warning"]),
    ("no-data-keep-pending-timer-runs-on", "WNW", Clauses(for_=120),
     "PPF", ["2:firing:warning"]),
    ("no-data-keep-still-repeats", "WNNNN", Clauses(repeat_every=120),
     "FFFFF", ["0:firing:warning", "2:repeat:warning", "4:repeat:warning"]),
    ("no-data-ok-resolves", "WN", Clauses(on_no_data="ok"),
     "FI", ["0:firing:warning", "1:resolved:warning"]),
    ("no-data-ok-resolves-with-resolve-clause", "WN", Clauses(on_no_data="ok", has_resolve=True),
     "FI", ["0:firing:warning", "1:resolved:warning"]),
    ("no-data-ok-ends-pending", "WN", Clauses(on_no_data="ok", for_=60),
     "PI", []),
    ("no-data-alert-fires-at-no-data-severity", ".NN.", Clauses(on_no_data="alert",
                                                                 no_data_severity="critical"),
     "IFFI", ["1:firing:critical", "3:resolved:critical"]),
    ("no-data-alert-respects-for", ".NNN", Clauses(on_no_data="alert", for_=120),
     "IPPF", ["3:firing:warning"]),
    ("no-data-alert-escalates", "INN", Clauses(on_no_data="alert", no_data_severity="critical"),
     "FFF", ["0:firing:info", "1:escalation:critical:up"]),
]


@pytest.mark.parametrize(("timeline", "clauses", "states", "notifications"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(timeline, clauses, states, notifications):
    got_states, _, got_notifications = run(timeline, clauses)
    assert got_states == states
    assert got_notifications == notifications


def test_transitions_are_recorded_with_severity():
    _, transitions, _ = run("WWC..", Clauses(for_=60))
    assert transitions == ["0:i>p:warning", "1:p>f:warning", "2:f>f:critical", "3:f>i:critical"]


def test_pending_to_inactive_is_a_transition_without_notification():
    _, transitions, notifications = run("W.", Clauses(for_=60))
    assert transitions == ["0:i>p:warning", "1:p>i:warning"]
    assert notifications == []


def test_resolved_carries_values_at_resolution_and_start_time():
    clauses = Clauses()
    state = SeriesState()
    first = step(state, Evaluation(at=T0, severity="critical", values={"last(x)": 75000.0}, value=75000.0),
                 clauses, rule_id="r", series_key="s")
    (firing,) = first.notifications
    assert firing.values == {"last(x)": 75000.0} and firing.started_at == T0
    second = step(first.state, Evaluation(at=T0 + timedelta(minutes=1), values={"last(x)": 69000.0},
                                          value=69000.0), clauses, rule_id="r", series_key="s")
    (resolved,) = second.notifications
    assert resolved.kind == "resolved" and resolved.state == "resolved"
    assert resolved.values == {"last(x)": 69000.0} and resolved.value == 69000.0
    assert resolved.started_at == T0
    assert resolved.severity == "critical"


def test_escalation_names_previous_severity():
    clauses = Clauses()
    a = step(SeriesState(), Evaluation(at=T0, severity="info"), clauses, rule_id="r", series_key="s")
    b = step(a.state, Evaluation(at=T0 + timedelta(minutes=1), severity="critical"), clauses,
             rule_id="r", series_key="s")
    (n,) = b.notifications
    assert (n.kind, n.direction, n.previous_severity, n.severity) == ("escalation", "up", "info", "critical")
    assert n.state == "firing"


def test_idempotency_key_is_hash_of_rule_series_kind_time():
    result = step(SeriesState(), Evaluation(at=T0, severity="warning"), Clauses(), rule_id="r1", series_key="k")
    (n,) = result.notifications
    assert n.idempotency_key == idempotency_key("r1", "k", "firing", T0)
    assert len(n.idempotency_key) == 64
    others = {idempotency_key("r2", "k", "firing", T0), idempotency_key("r1", "k2", "firing", T0),
              idempotency_key("r1", "k", "repeat", T0),
              idempotency_key("r1", "k", "firing", T0 + timedelta(seconds=1))}
    assert n.idempotency_key not in others and len(others) == 4


def test_the_same_evaluation_twice_changes_nothing():
    clauses = Clauses()
    first = step(SeriesState(), Evaluation(at=T0, severity="warning"), clauses, rule_id="r", series_key="s")
    again = step(first.state, Evaluation(at=T0, severity="critical"), clauses, rule_id="r", series_key="s")
    older = step(first.state, Evaluation(at=T0 - timedelta(minutes=1)), clauses, rule_id="r", series_key="s")
    for result in (again, older):
        assert result.state == first.state
        assert result.transitions == () and result.notifications == ()


def test_state_round_trips_through_json():
    clauses = Clauses(for_=60, keep_firing_for=60, repeat_every=120,
                      flap=FlapDetection(window=600, high=3, low=1))
    state = SeriesState()
    for i, code in enumerate("WWC.W..C"):
        state = step(state, evaluation(code, T0 + timedelta(minutes=i), i), clauses,
                     rule_id="r", series_key="s").state
        text = json.dumps(state.to_dict(), allow_nan=False)
        assert SeriesState.from_dict(json.loads(text)) == state


def test_non_finite_values_are_stored_as_no_data():
    result = step(SeriesState(), Evaluation(at=T0, severity="warning", values={"a": float("nan"),
                                                                               "b": float("inf")},
                                            value=float("-inf")), Clauses(), rule_id="r", series_key="s")
    json.dumps(result.state.to_dict(), allow_nan=False)
    (n,) = result.notifications
    assert n.values == {"a": None, "b": None} and n.value is None


def test_naive_times_are_utc():
    result = step(SeriesState(), Evaluation(at=datetime(2024, 5, 1, 12, 0), severity="warning"), Clauses(),
                  rule_id="r", series_key="s")
    assert result.state.firing_since == T0


@pytest.mark.parametrize("bad", [
    dict(for_=-1), dict(keep_firing_for=-5), dict(repeat_every=0), dict(on_no_data="maybe"),
    dict(no_data_severity="fatal"),
])
def test_bad_clauses_are_refused(bad):
    with pytest.raises(ValueError):
        Clauses(**bad)


def test_flapping_holds_notifications_then_catches_up():
    # More than 2 changes within 5 minutes is flapping; 0 changes ends it.
    clauses = Clauses(flap=FlapDetection(window=300, high=2, low=0))
    states, transitions, notifications = run("W.W.W.W........", clauses)
    assert states == "FIFIFIFIIIIIIII"
    assert len(transitions) == 8  # every state change is still recorded
    # changes at 0,1 notified; the third change (at 2) starts flapping: held;
    # the receivers were last told "resolved" (at 1) and the series is inactive when
    # flapping ends, so nothing more is sent.
    assert notifications == ["0:firing:warning", "1:resolved:warning"]


def test_flapping_end_sends_the_missing_resolve():
    clauses = Clauses(flap=FlapDetection(window=300, high=2, low=0))
    _, _, notifications = run("W.W...........", clauses)
    # at 2 the series fires again (third change: flapping, held); it resolves at 3 (held).
    # Told "resolved" at 1: already up to date, nothing more.
    assert notifications == ["0:firing:warning", "1:resolved:warning"]
    _, _, notifications = run("W.WWWWWWWWWWWW", clauses)
    # flapping from 2; the changes at 0,1,2 leave the 5-minute window by 7 (low=0 reached at 7):
    # the receivers were told "resolved" but it is firing: a firing notification then.
    assert notifications == ["0:firing:warning", "1:resolved:warning", "7:firing:warning"]


def test_flapping_since_is_when_the_series_started_flapping():
    clauses = Clauses(flap=FlapDetection(window=300, high=2, low=0))
    state, seen = SeriesState(), []
    for i, code in enumerate("W.WWWWWWW"):
        at = T0 + timedelta(seconds=EVERY * i)
        state = step(state, evaluation(code, at, i), clauses, rule_id="r", series_key="s").state
        seen.append(state.flapping_since)
    start = T0 + timedelta(seconds=EVERY * 2)  # the third change within the window
    assert seen[:2] == [None, None]
    assert seen[2:7] == [start] * 5  # kept while flapping, however the changes slide
    assert seen[7:] == [None, None]  # the changes left the window: flapping ended
    assert SeriesState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_clauses_from_rule():
    from monitors_dsl import parse

    result = parse("""
    rule r {
        critical when last(m.x) > 10
        warning when last(m.x) > 5
        resolve when last(m.x) < 3
        for 2m
        keep firing for 1m30s
        on no data alert
        repeat every 1h
    }""")
    (rule,) = result
    clauses = Clauses.from_rule(rule)
    assert clauses == Clauses(for_=120, keep_firing_for=90, has_resolve=True, on_no_data="alert",
                              no_data_severity="critical", repeat_every=3600)
    (plain,) = parse("rule p { when last(m.x) > 1 severity info }")
    assert Clauses.from_rule(plain) == Clauses(no_data_severity="info")



def test_evaluation_from_a_compiled_rule_decision():
    from monitors_dsl.predicate import Decision

    firing = Evaluation.from_decision(Decision(True, "critical", False), at=T0, values={"last(m.x)": 11.0},
                                      value=11.0)
    assert (firing.severity, firing.resolve, firing.no_data, firing.value) == ("critical", False, False, 11.0)
    unknown = Evaluation.from_decision(Decision(None, None, None), at=T0)
    assert unknown.no_data and unknown.severity is None
    clear = Evaluation.from_decision(Decision(False, None, True), at=T0)
    assert not clear.no_data and clear.resolve is True


def test_nothing_changed_means_the_same_state_object():
    clauses = Clauses(for_=120, repeat_every=600)
    quiet = SeriesState()
    assert step(quiet, Evaluation(at=T0), clauses, rule_id="r", series_key="s").state is quiet
    assert step(quiet, Evaluation(at=T0, no_data=True), clauses, rule_id="r", series_key="s").state is quiet
    pending = step(quiet, Evaluation(at=T0, severity="warning"), clauses, rule_id="r", series_key="s").state
    assert pending.last_evaluated_at == T0
    still = step(pending, Evaluation(at=T0 + timedelta(minutes=1), severity="warning"), clauses,
                 rule_id="r", series_key="s")
    assert still.state is pending and still.transitions == ()
