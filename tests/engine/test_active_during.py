"""``active during WINDOW`` in the engine: outside the window no firing condition holds, at the tick's
instant on the window zone's wall clock — daylight-saving changes in Europe/Paris included — in
backtests, the live runner, ``monitors eval`` and cohorts of one shape alike; the queries never change."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from engine.backtest import backtest
from engine.evaluate import Evaluator
from engine.repository import MemoryRepository
from engine.rules import rule_from_text, rules_from_text
from engine.runner import Runner, StaticRules
from engine.sources import DataFusionSource
from monitors_dsl.cli import main

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def source_of(start: datetime, minutes: int, value, *, step: int = 5, hosts=("a",)) -> DataFusionSource:
    """``cpu.usage`` of each host every ``step`` minutes from ``start``: ``value(minute)`` (None: no point)."""
    rows = [(start + m * MIN, host, value(m)) for m in range(0, minutes, step) for host in hosts]
    rows = [r for r in rows if r[2] is not None]
    source = DataFusionSource()
    source.add_table("cpu", pa.table({"time": [r[0] for r in rows], "host": [r[1] for r in rows],
                                      "usage": [float(r[2]) for r in rows]}), tags=["host"])
    return source


def changes(result, rule_index: int = 0) -> list[tuple[str, str, str]]:
    return [(t["at"], t["from"], t["to"]) for t in result.to_json()["rules"][rule_index]["transitions"]]


def rule(clauses: str, condition: str = "last(cpu.usage, 10m) > 90", name: str = "hot") -> str:
    return f"rule {name} {{\n    when {condition}\n    every 15m\n{clauses}\n}}"


def test_working_hours_follow_paris_clocks_over_the_spring_change():
    """09:00-17:00 in Paris is 08:00-16:00 UTC on Saturday 30 March 2024 (CET) and 07:00-15:00 UTC on Sunday
    31 March (CEST, clocks moved forward at 02:00): an always-high series fires and resolves at those times."""
    start = utc(2024, 3, 30, 0, 0)
    source = source_of(start, 48 * 60, lambda m: 95)
    text = rule('    active during 09:00-17:00 in "Europe/Paris"\n    notify hook')
    result = backtest([rule_from_text(text)], source, start, start + 48 * HOUR - MIN)
    assert changes(result) == [
        ("2024-03-30T08:00:00Z", "inactive", "firing"), ("2024-03-30T16:00:00Z", "firing", "inactive"),
        ("2024-03-31T07:00:00Z", "inactive", "firing"), ("2024-03-31T15:00:00Z", "firing", "inactive"),
    ]
    kinds = [(n["at"], n["kind"]) for n in result.to_json()["rules"][0]["notifications"]]
    assert kinds == [("2024-03-30T08:00:00Z", "firing"), ("2024-03-30T16:00:00Z", "resolved"),
                     ("2024-03-31T07:00:00Z", "firing"), ("2024-03-31T15:00:00Z", "resolved")]


def test_an_hour_the_spring_change_skips_never_holds_and_one_autumn_repeats_holds_twice():
    """02:00-03:00 in Paris: on 31 March 2024 the clocks jump from 02:00 to 03:00 (no such hour: never
    active); on 27 October 2024 they go back from 03:00 to 02:00 (the hour is read twice: active from 00:00
    to 02:00 UTC); on the days around, one hour."""
    text = rule('    active during 02:00-03:00 in "Europe/Paris"')
    spring = utc(2024, 3, 30, 0, 0)
    source = source_of(spring, 72 * 60, lambda m: 95)
    result = backtest([rule_from_text(text)], source, spring, spring + 72 * HOUR - MIN)
    assert changes(result) == [
        ("2024-03-30T01:00:00Z", "inactive", "firing"), ("2024-03-30T02:00:00Z", "firing", "inactive"),
        # 31 March: nothing
        ("2024-04-01T00:00:00Z", "inactive", "firing"), ("2024-04-01T01:00:00Z", "firing", "inactive"),
    ]
    autumn = utc(2024, 10, 26, 0, 0)
    source = source_of(autumn, 72 * 60, lambda m: 95)
    result = backtest([rule_from_text(text)], source, autumn, autumn + 72 * HOUR - MIN)
    assert changes(result) == [
        ("2024-10-26T00:00:00Z", "inactive", "firing"), ("2024-10-26T01:00:00Z", "firing", "inactive"),
        ("2024-10-27T00:00:00Z", "inactive", "firing"), ("2024-10-27T02:00:00Z", "firing", "inactive"),
        ("2024-10-28T01:00:00Z", "inactive", "firing"), ("2024-10-28T02:00:00Z", "firing", "inactive"),
    ]


def test_pending_goes_back_to_inactive_and_firing_resolves_as_section_five_says():
    """Window 08:00-09:00 UTC, the value high all along: ``for`` that cannot be met inside leaves pending
    at 09:00; ``keep firing for`` keeps firing past the window's end; ``resolve when`` keeps firing until
    the resolve condition holds (at 10:00 the value drops)."""
    start = utc(2024, 5, 6, 7, 0)
    source = source_of(start, 4 * 60, lambda m: 95 if m < 180 else 40)
    end = start + 4 * HOUR - MIN
    window = "    active during 08:00-09:00"
    pending = backtest([rule_from_text(rule(window + "\n    for 90m"))], source, start, end)
    assert changes(pending) == [("2024-05-06T08:00:00Z", "inactive", "pending"),
                                ("2024-05-06T09:00:00Z", "pending", "inactive")]
    kept = backtest([rule_from_text(rule(window + "\n    keep firing for 20m"))], source, start, end)
    # outside from 09:00: clear since 09:00, resolved at the first evaluation 20 minutes later
    assert changes(kept) == [("2024-05-06T08:00:00Z", "inactive", "firing"),
                             ("2024-05-06T09:30:00Z", "firing", "inactive")]
    hysteresis = rule(window + "\n    resolve when last(cpu.usage, 10m) < 50")
    result = backtest([rule_from_text(hysteresis)], source, start, end)
    assert changes(result) == [("2024-05-06T08:00:00Z", "inactive", "firing"),
                               ("2024-05-06T10:00:00Z", "firing", "inactive")]


def test_no_data_outside_the_window_never_fires_and_resolves_what_it_fired():
    """``on no data alert``: the series stops reporting at 07:30; inside the window (08:00-09:00) no data
    fires, outside it does not (neither before nor after), and the alert no data fired resolves at 09:00."""
    start = utc(2024, 5, 6, 7, 0)
    source = source_of(start, 3 * 60, lambda m: 10 if m < 30 else None)
    text = rule("    on no data alert\n    active during 08:00-09:00")
    result = backtest([rule_from_text(text)], source, start, start + 3 * HOUR - MIN)
    assert changes(result) == [("2024-05-06T08:00:00Z", "inactive", "firing"),
                               ("2024-05-06T09:00:00Z", "firing", "inactive")]
    ok = backtest([rule_from_text(rule("    on no data ok\n    active during 08:00-09:00\n"
                                       "    resolve when last(cpu.usage, 10m) < 50",
                                       condition="last(cpu.usage, 10m) > 5"))],
                  source, start, start + 3 * HOUR - MIN)
    # the condition holds before 07:30, outside the window; inside it there is no data, which is ok
    assert changes(ok) == []


def test_the_window_changes_no_query_and_rules_still_share_their_scans():
    """Two rules on one term, one active during a window: one query either way, the same SQL as without
    the window, inside and outside it."""
    source = source_of(utc(2024, 5, 6, 7, 0), 120, lambda m: 95)
    plain = rules_from_text(rule("", name="a") + "\n" + rule("", name="b", condition="last(cpu.usage, 10m) > 80"))
    timed = rules_from_text(rule("", name="a") + "\n"
                            + rule("    active during 08:00-09:00", name="b", condition="last(cpu.usage, 10m) > 80"))
    for at in (utc(2024, 5, 6, 7, 30), utc(2024, 5, 6, 8, 30)):
        ours = Evaluator(source).evaluate(timed, at)
        theirs = Evaluator(source).evaluate(plain, at)
        assert ours.query_count == theirs.query_count == 1
        assert [q.sql for q in ours.plan.queries] == [q.sql for q in theirs.plan.queries]
        results = {r.rule.name: r for r in ours.results}
        assert results["a"].active and results["a"].series[0].decision.result is True
        inside = at.hour == 8
        assert results["b"].active is inside
        assert results["b"].series[0].decision.result is inside


def test_cohorts_of_one_shape_decide_each_members_window():
    """Rules differing only in thresholds and windows (decided together by binary search): each member
    fires only in its own window, as the same rules compiled one by one."""
    start = utc(2024, 5, 6, 7, 0)
    source = source_of(start, 5 * 60, lambda m: 95, hosts=("a", "b"))
    texts = [
        "rule r1 {\n    when last(cpu.usage, 10m) > 90\n    group by host\n    every 15m\n"
        "    active during 08:00-09:00\n}",
        "rule r2 {\n    when last(cpu.usage, 10m) > 80\n    group by host\n    every 15m\n"
        "    active during 09:00-10:30\n}",
        "rule r3 {\n    when last(cpu.usage, 10m) > 70\n    group by host\n    every 15m\n}",
    ]
    shared = rules_from_text("\n".join(texts))
    alone = [rule_from_text(text) for text in texts]
    end = start + 5 * HOUR - MIN
    together = backtest(shared, source, start, end).to_json()
    apart = [backtest([r], source, start, end).to_json()["rules"][0] for r in alone]
    assert together["rules"] == apart
    firing = {r["name"]: sorted({(t["at"], t["to"]) for t in r["transitions"]}) for r in together["rules"]}
    assert firing["r1"] == [("2024-05-06T08:00:00Z", "firing"), ("2024-05-06T09:00:00Z", "inactive")]
    assert firing["r2"] == [("2024-05-06T09:00:00Z", "firing"), ("2024-05-06T10:30:00Z", "inactive")]
    assert firing["r3"] == [("2024-05-06T07:00:00Z", "firing")]


def test_the_live_runner_skips_nothing_it_must_resolve():
    """Rules the runner does not step (nothing holds, nothing active) are left out; a firing series of a rule
    whose window ends is stepped all the same, and resolves."""
    start = utc(2024, 5, 6, 8, 45)
    source = source_of(start - HOUR, 3 * 60, lambda m: 95)
    rules = rules_from_text(rule("    active during 08:00-09:00", name="timed") + "\n"
                            + rule("", name="always", condition="last(cpu.usage, 10m) > 99"))
    repository = MemoryRepository()
    runner = Runner(StaticRules(rules), repository, Evaluator(source))
    for at in (start, start + 15 * MIN, start + 30 * MIN):
        runner.tick(at)
    assert [(t.rule_id, t.transition.at, t.transition.to_state) for t in repository.transitions] == [
        ("timed", utc(2024, 5, 6, 8, 45), "firing"), ("timed", utc(2024, 5, 6, 9, 0), "inactive")]


def test_monitors_eval_says_when_a_rule_is_outside_its_window(tmp_path, capsys):
    (tmp_path / "cpu.csv").write_text("time,host,usage\n2024-03-31T06:58:00Z,a,95\n2024-03-31T07:58:00Z,a,95\n")
    (tmp_path / "r.rules").write_text(rule('    active during 09:00-17:00 in "Europe/Paris"\n    notify hook'))
    reports = {}
    for at in ("2024-03-31T07:00:00Z", "2024-03-31T08:00:00Z"):  # 09:00 and 10:00 CEST
        assert main(["eval", str(tmp_path / "r.rules"), "--data", str(tmp_path), "--at", at,
                     "--format", "json"]) == 0
        reports[at] = json.loads(capsys.readouterr().out)["rules"][0]
    assert main(["eval", str(tmp_path / "r.rules"), "--data", str(tmp_path), "--at", "2024-03-31T06:59:00Z"]) == 0
    text = capsys.readouterr().out
    assert "outside its active during window" in text and "notify" not in text
    inside = reports["2024-03-31T07:00:00Z"]
    assert inside["active"] is True and inside["series"][0]["result"] is True
    assert [(n["kind"], n["deliveries"]) for n in inside["notifications"]] == [
        ("firing", [{"channel": "hook", "status": "pending", "reason": None}])]


@pytest.mark.parametrize("at", [utc(2024, 3, 31, 0, 59), utc(2024, 3, 31, 1, 0), utc(2024, 10, 27, 0, 59),
                                utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 1, 59)])
def test_every_decision_is_the_windows_answer_at_that_instant(at):
    """Around both changes of 2024: the rule is active exactly when its window contains the instant."""
    text = rule('    active during 02:00-03:00, 08:00-09:00 in "Europe/Paris"')
    [engine_rule] = rules_from_text(text)
    source = source_of(at - HOUR, 61, lambda m: 95, step=1)
    result = Evaluator(source).evaluate([engine_rule], at).results[0]
    assert result.active is engine_rule.active_during.contains(at)
    assert result.series[0].decision.result is result.active
    expected = at in (utc(2024, 10, 27, 0, 59), utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 1, 59))
    assert result.active is expected
