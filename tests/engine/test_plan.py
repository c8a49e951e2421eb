"""Shared queries: one query per distinct scan, whoever owns the rules; rows joined per rule, hand-computed values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from engine.evaluate import Evaluator
from engine.plan import plan_tick
from engine.rules import RuleBuilder, rule_from_text
from engine.sources import DataFusionSource, SourceError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def btc(threshold: float, name: str = "r") -> str:
    return f'rule {name} {{ when last(crypto.price{{symbol="BTC"}}) > {threshold} }}'


@pytest.fixture(scope="module")
def source():
    src = DataFusionSource()
    times = [T0 - timedelta(minutes=m) for m in (4, 3, 2, 1, 0)]
    src.add_table("crypto", pa.table({
        "time": times * 2,
        "symbol": ["BTC"] * 5 + ["ETH"] * 5,
        "price": [69_000.0, 69_500.0, 70_000.0, 71_000.0, 70_500.0, 3000.0, 3100.0, 2900.0, 3050.0, float("nan")],
    }))
    src.add_table("cpu", pa.table({
        "time": [T0 - timedelta(seconds=s) for s in (240, 120, 30, 200, 10)],
        "host": ["a", "a", "a", "b", "b"],
        "usage": [10.0, 20.0, 60.0, 95.0, 97.0],
    }))
    yield src
    src.close()


class CountingSource:
    """Wraps a source, counting queries; ``fail_on`` makes queries mentioning a text fail."""

    def __init__(self, inner, fail_on: str | None = None) -> None:
        self.inner, self.fail_on, self.queries = inner, fail_on, []

    def query(self, sql):
        self.queries.append(sql)
        if self.fail_on and self.fail_on in sql:
            raise SourceError("test source", "unreachable", "connection refused")
        return self.inner.query(sql)


def test_many_rules_on_the_same_term_are_one_query(source) -> None:
    rules = [rule_from_text(btc(60_000 + i, f"r{i}"), id=str(i)) for i in range(2000)]
    rules.append(rule_from_text(btc(99_000, "high"), id="high"))
    plan = plan_tick(rules, T0)
    assert plan.query_count == 1 and plan.term_count == 1
    counting = CountingSource(source)
    tick = Evaluator(counting).evaluate(rules, T0)
    assert len(counting.queries) == 1
    assert all(r.series[0].decision.result is True for r in tick.results[:-1])  # thresholds below 70,500
    assert tick.results[-1].series[0].decision.result is False
    assert all(r.series[0].row[r.rule.terms[0].column] == 70_500.0 for r in tick.results)


def test_thresholds_decide_per_rule_over_shared_rows(source) -> None:
    rules = [rule_from_text(btc(t, f"r{t}"), id=str(t)) for t in (70_000, 70_499, 70_500, 80_000)]
    tick = Evaluator(source).evaluate(rules, T0)
    assert [r.series[0].decision.result for r in tick.results] == [True, True, False, False]


def test_different_filters_are_different_scans_and_functions_share_a_scan() -> None:
    rules = [
        rule_from_text('last(crypto.price{symbol="BTC"}) > 1', id="a"),
        rule_from_text('max(crypto.price{symbol="BTC"}) > 1', id="b"),           # same scan, other term
        rule_from_text('last(crypto.price{symbol="ETH"}) > 1', id="c"),           # other filter
        rule_from_text('last(crypto.price{symbol="BTC"}, 10m) > 1', id="d"),      # other window
        rule_from_text('last(crypto.price{symbol="BTC"}) offset 1h > 1', id="e"),  # other offset
        rule_from_text('rule g { when last(crypto.price) > 1\n group by symbol }', id="g"),  # other group tags
    ]
    plan = plan_tick(rules, T0)
    assert plan.term_count == 6
    assert plan.scan_count == 5
    assert plan.query_count == 4  # BTC and ETH differ only in the symbol: one query grouped by symbol
    assert plan_tick(rules, T0, merge=False).query_count == 5
    assert plan.rule_scans["a"] == plan.rule_scans["b"]
    assert len({plan.rule_scans[r] for r in "acdeg"}) == 5


def test_rules_of_different_owners_share_queries() -> None:
    class Row:
        def __init__(self, id, owner):
            self.id, self.owner_id, self.version, self.name = id, owner, 1, f"r{id}"
            self.canonical = btc(70_000 + id, f"r{id}")

    rules = RuleBuilder().build_all([Row(i, owner=i % 7) for i in range(1, 50)])
    assert len({r.owner_id for r in rules}) == 7
    assert plan_tick(rules, T0).query_count == 1


def test_grouped_rows_are_joined_on_tags_with_hand_computed_values(source) -> None:
    rule = rule_from_text('rule hot { when avg(cpu.usage, 5m) > 50 and max(cpu.usage, 1m) > 50\n group by host }',
                          id="hot")
    result = Evaluator(source).evaluate([rule], T0).results[0]
    by_host = {s.labels["host"]: s for s in result.series}
    assert set(by_host) == {"a", "b"}
    avg_col, max_col = (t.column for t in rule.terms)
    assert by_host["a"].row[avg_col] == pytest.approx(30.0)     # (10 + 20 + 60) / 3
    assert by_host["a"].row[max_col] == 60.0                    # only 30 s ago is within 1m
    assert by_host["b"].row[avg_col] == pytest.approx(96.0)
    assert by_host["b"].row[max_col] == 97.0
    assert by_host["a"].decision.result is False                # avg 30 ≤ 50
    assert by_host["b"].decision.result is True


def test_missing_term_for_a_series_is_no_data_and_nan_is_no_data(source) -> None:
    rule = rule_from_text('rule r { when last(crypto.price, 1m) > 0 or avg(crypto.price, 5m) > 0\n group by symbol }',
                          id="r")
    result = Evaluator(source).evaluate([rule], T0).results[0]
    by = {s.labels["symbol"]: s.row for s in result.series}
    last_col = rule.terms[0].column
    assert by["BTC"][last_col] == 70_500.0
    assert by["ETH"][last_col] is None  # the only point in the last minute is NaN


def test_a_failing_query_errors_only_its_rules(source) -> None:
    good = rule_from_text(btc(1, "good"), id="good")
    also_good = rule_from_text(btc(2, "good2"), id="good2")
    bad = rule_from_text("rule bad { when last(cpu.usage) > 1 }", id="bad")
    counting = CountingSource(source, fail_on='"cpu"')
    tick = Evaluator(counting).evaluate([good, bad, also_good], T0)
    by = {r.rule.id: r for r in tick.results}
    assert by["bad"].error and "connection refused" in by["bad"].error
    assert by["good"].error is None and by["good"].series[0].decision.result is True
    assert by["good2"].error is None
    assert len(tick.query_errors) == 1


def test_a_slow_query_times_out_without_holding_up_the_others(source) -> None:
    import time

    class Slow(CountingSource):
        def query(self, sql):
            if '"cpu"' in sql:
                time.sleep(2)
            return super().query(sql)

    fast = rule_from_text(btc(1, "fast"), id="fast")
    slow = rule_from_text("rule slow { when last(cpu.usage) > 1 }", id="slow")
    began = time.monotonic()
    tick = Evaluator(Slow(source), max_in_flight=2, query_timeout=0.3).evaluate([fast, slow], T0)
    assert time.monotonic() - began < 1.5
    by = {r.rule.id: r for r in tick.results}
    assert "timed out" in by["slow"].error
    assert by["fast"].error is None


def test_a_rule_that_does_not_compile_is_skipped() -> None:
    class Row:
        id, owner_id, version, name, canonical = 1, 1, 3, "broken", "last(crypto.price > "

    builder = RuleBuilder()
    assert builder.build_all([Row()]) == []
    assert 1 in builder.failed


def test_a_measurement_never_written_is_no_points_not_an_error() -> None:
    """`absent` on data that never arrived fires; `count` is 0; other aggregates are no data."""
    from datetime import datetime, timezone

    from engine.evaluate import Evaluator
    from engine.rules import rule_from_text
    from engine.sources import DataFusionSource

    with DataFusionSource() as source:
        rules = [rule_from_text('absent(heartbeat.up{service="api"}, 5m)', id="absent"),
                 rule_from_text("count(heartbeat.up, 5m) == 0", id="count"),
                 rule_from_text("last(heartbeat.up, 5m) > 0", id="last"),
                 rule_from_text("rule grouped { when absent(heartbeat.up, 5m) group by service }", id="grouped")]
        result = Evaluator(source).evaluate(rules, datetime(2026, 1, 1, tzinfo=timezone.utc))
    by_id = {r.rule.id: r for r in result.results}
    assert all(r.error is None for r in result.results), [r.error for r in result.results]
    assert by_id["absent"].series[0].decision.result is True
    assert by_id["count"].series[0].decision.result is True
    assert by_id["last"].series[0].decision.result is None
    assert by_id["grouped"].series == []
