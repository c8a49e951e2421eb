"""The runner over simulated time with the in-memory repository: section 5 through real queries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

from engine.evaluate import Evaluator
from engine.repository import MemoryRepository
from engine.rules import rule_from_text
from engine.runner import Runner, StaticRules
from engine.schedule import is_due, next_due
from engine.sources import DataFusionSource

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def prices(values: list[float | None]):
    """One BTC price per minute from T0 (None: no point that minute)."""
    points = [(T0 + i * MIN, v) for i, v in enumerate(values) if v is not None]
    return pa.table({"time": [t for t, _ in points], "symbol": ["BTC"] * len(points),
                     "price": [v for _, v in points]})


def make(rules_text: list[str], values: list[float | None]):
    src = DataFusionSource()
    src.add_table("crypto", prices(values))
    rules = [rule_from_text(text, id=f"r{i}") for i, text in enumerate(rules_text)]
    repo = MemoryRepository()
    return Runner(StaticRules(rules), repo, Evaluator(src)), repo, src


def run(runner, minutes: int):
    return [runner.tick(T0 + i * MIN) for i in range(minutes)]


def test_fires_once_resolves_once_with_values_at_resolution() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify ops }'
    runner, repo, _ = make([text], [69_000, 70_500, 71_000, 69_900, 69_800])
    run(runner, 5)
    kinds = [(n.notification.kind, n.notification.at) for n in repo.notifications]
    assert kinds == [("firing", T0 + MIN), ("resolved", T0 + 3 * MIN)]
    resolved = repo.notifications[1].notification
    assert resolved.value == 69_900 and resolved.started_at == T0 + MIN
    (alert,) = repo.alerts
    assert alert.state == "resolved" and alert.values_at_start == {'last(crypto.price{symbol="BTC"}, 1m)': 70_500}
    assert alert.values_at_resolution == {'last(crypto.price{symbol="BTC"}, 1m)': 69_900}
    assert [e[0] for e in alert.events] == ["fired", "resolved"]
    assert len(repo.outbox) == 2 and {r["status"] for r in repo.outbox.values()} == {"pending"}


def test_for_clause_holds_pending_to_the_tick() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n for 2m }'
    runner, repo, _ = make([text], [70_500] * 5)
    run(runner, 5)
    assert [(t.transition.from_state, t.transition.to_state, t.transition.at) for t in repo.transitions] == [
        ("inactive", "pending", T0), ("pending", "firing", T0 + 2 * MIN)]


def test_a_rerun_tick_changes_and_sends_nothing() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify ops }'
    runner, repo, _ = make([text], [70_500, 70_600])
    first = runner.tick(T0)
    again = runner.tick(T0)
    assert first.notifications == 1 and again.notifications == 0 and again.outbox_rows == 0
    assert len(repo.outbox) == 1 and len(repo.alerts) == 1


def test_silenced_rule_records_but_does_not_notify() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify ops }'
    runner, repo, _ = make([text], [70_500])
    repo.silence("r0", T0 - MIN, T0 + MIN)
    runner.tick(T0)
    assert len(repo.alerts) == 1
    assert [r["status"] for r in repo.outbox.values()] == ["silenced"]


def test_acknowledged_alert_suppresses_repeats_only() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n repeat every 1m\n notify ops }'
    runner, repo, _ = make([text], [70_500, 70_500, 70_500, 60_000])
    runner.tick(T0)
    repo.acknowledge(1)
    for i in (1, 2, 3):
        runner.tick(T0 + i * MIN)
    statuses = [(r["kind"], r["status"]) for r in repo.outbox.values()]
    assert statuses == [("firing", "pending"), ("repeat", "suppressed"), ("repeat", "suppressed"),
                        ("resolved", "pending")]


def test_rules_are_due_at_multiples_of_every() -> None:
    fast = rule_from_text("rule a { when last(x.y) > 1\n every 30s }")
    slow = rule_from_text("rule b { when last(x.y) > 1\n every 1h }")
    assert is_due(fast, T0 + timedelta(seconds=30)) and not is_due(slow, T0 + timedelta(seconds=30))
    assert is_due(slow, T0) and not is_due(fast, T0 + timedelta(seconds=31, microseconds=5))
    assert next_due([fast, slow], T0.timestamp() + 1) == T0.timestamp() + 30
    runner, _, _ = make(["rule a { when last(crypto.price) > 1\n every 2m }"], [1.0] * 4)
    assert [r.rules for r in run(runner, 4)] == [1, 0, 1, 0]


def test_a_series_that_disappears_is_stepped_as_no_data() -> None:
    text = ('rule g { when last(crypto.price, 1m) > 70000\n group by symbol\n on no data ok\n notify ops }')
    runner, repo, _ = make([text], [70_500, None, None])
    run(runner, 3)
    assert [n.notification.kind for n in repo.notifications] == ["firing", "resolved"]
    assert repo.alerts[0].labels == {"symbol": "BTC"}


def test_a_dropped_table_is_no_data_not_an_error() -> None:
    """A measurement that disappears reads as no points: the rule keeps its state (on no data keep)."""
    runner, repo, src = make(['rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }'], [70_500, 60_000])
    runner.tick(T0)
    src.remove_table("crypto")
    report = runner.tick(T0 + MIN)
    assert report.errors == {}
    assert repo.states["r0"][next(iter(repo.states["r0"]))].state == "firing"


def test_query_error_keeps_state_and_records_the_error() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }'
    runner, repo, src = make([text], [70_500, 60_000])
    runner.tick(T0)

    def unreachable(sql):
        from engine.sources import SourceError

        raise SourceError("test source", "unreachable", "connection refused")

    src.query = unreachable
    report = runner.tick(T0 + MIN)
    assert "r0" in report.errors and "r0" in repo.errors
    assert repo.states["r0"][next(iter(repo.states["r0"]))].state == "firing"
    assert len(repo.notifications) == 1


def test_rule_changes_are_picked_up_between_ticks() -> None:
    runner, repo, _ = make(['rule btc { when last(crypto.price, 1m) > 80000 }'], [70_500, 70_500])
    runner.tick(T0)
    assert repo.alerts == []
    runner.rules.replace([rule_from_text('rule btc { when last(crypto.price, 1m) > 70000 }', id="r0")])
    runner.tick(T0 + MIN)
    assert len(repo.alerts) == 1


def test_escalation_and_labels_clause() -> None:
    text = ('rule btc { critical when last(crypto.price, 1m) > 72000\n warning when last(crypto.price, 1m) > 70000\n'
            ' labels team = "desk"\n notify ops }')
    runner, repo, _ = make([text], [70_500, 73_000, 70_600])
    run(runner, 3)
    notes = [(n.notification.kind, n.notification.severity, n.notification.direction) for n in repo.notifications]
    assert notes == [("firing", "warning", None), ("escalation", "critical", "up"), ("escalation", "warning", "down")]
    assert [e[0] for e in repo.alerts[0].events] == ["fired", "escalated", "de-escalated"]
    assert repo.alerts[0].labels == {"team": "desk"}


def test_live_loop_ticks_on_due_seconds_and_dispatches_between() -> None:
    import time

    runner, repo, _ = make(["rule a { when last(crypto.price, 1m) > 1\n every 1s }"], [5.0])
    began, origin = time.monotonic(), T0.timestamp() - 0.3
    ticks, between = [], []

    def on_tick(report):
        ticks.append(report.at)
        if len(ticks) == 2:
            runner.stop()

    runner.run(clock=lambda: origin + time.monotonic() - began, idle=0.05,
               between_ticks=lambda: between.append(1), on_tick=on_tick)
    assert ticks == [T0, T0 + timedelta(seconds=1)]
    assert between and len(repo.alerts) == 1


def test_live_loop_does_not_replay_missed_ticks() -> None:
    import time

    runner, _, _ = make(["rule a { when last(crypto.price, 1m) > 1\n every 1s }"], [5.0])
    began, origin, jump = time.monotonic(), T0.timestamp() - 0.3, [0.0]
    ticks = []

    def on_tick(report):
        ticks.append(report.at)
        jump[0] = 99.1  # the process was suspended for a while after the first tick
        if len(ticks) == 2:
            runner.stop()

    runner.run(clock=lambda: origin + time.monotonic() - began + jump[0], idle=0.05, on_tick=on_tick)
    assert ticks[0] == T0 and ticks[1] >= T0 + timedelta(seconds=98)  # the newest due second, not the missed ones
