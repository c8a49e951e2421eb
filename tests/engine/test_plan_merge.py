"""Scans differing only in one tag's value share one query: merged and unmerged plans give identical rows.

Random rules (``absent``, ``count``, ``percentile`` and the other aggregates,
equality filters on tags some points lack — ``""`` —, other filters, grouped
and ungrouped, windows and offsets) over random data with missing tags and
fields: every scan's ``ScanRows`` from the merged plan equal those of one
query per scan. The data has no NaN: InfluxDB cannot store one (line
protocol has no NaN), and DataFusion's ``min``/``max`` treat NaN differently
with and without ``GROUP BY``.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from engine.evaluate import Evaluator, ScanRows
from engine.plan import plan_tick
from engine.rules import rule_from_text
from engine.sources import DataFusionSource, SourceError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SYMBOLS = ["A", "B", "C", "D", ""]  # "" selects the points without a symbol
HOSTS = ["h1", "h2", ""]
FUNCTIONS = ["last", "first", "min", "max", "avg", "sum", "median", "count", "stddev", "spread", "delta",
             "pct_change", "rate", "absent", "percentile"]


def random_aggregate(rng: random.Random, group_by: list[str]) -> str:
    function = rng.choice(FUNCTIONS)
    field = rng.choice(["price", "price", "volume"])
    filters = []
    if rng.random() < 0.85:
        filters.append(f'symbol="{rng.choice(SYMBOLS)}"')
    if rng.random() < 0.3:
        filters.append(f'host{rng.choice(["=", "!="])}"{rng.choice(HOSTS)}"')
    if rng.random() < 0.1:
        filters.append(f'symbol!="{rng.choice(SYMBOLS)}"')
    selector = f"m.{field}" + ("{" + ", ".join(filters) + "}" if filters else "")
    window = rng.choice(["2m", "5m"])
    offset = " offset 1m" if rng.random() < 0.2 else ""
    if function == "absent":
        return f"absent({selector}, {window}){offset}"
    if function == "percentile":
        return f"percentile({selector}, {rng.choice([50, 90])}, {window}){offset} > 1"
    return f"{function}({selector}, {window}){offset} > {rng.choice([0, 1, 10])}"


def random_rule(rng: random.Random, index: int) -> str:
    group_by = rng.choice([[], [], [], ["host"], ["symbol"], ["host", "symbol"]])
    condition = " or ".join(random_aggregate(rng, group_by) for _ in range(rng.randint(1, 3)))
    clauses = [f"when {condition}"]
    if group_by:
        clauses.append("group by " + ", ".join(group_by))
    return f"rule r{index} {{\n    " + "\n    ".join(clauses) + "\n}"


def random_table(rng: random.Random) -> pa.Table:
    rows = {"time": [], "symbol": [], "host": [], "price": [], "volume": []}
    for second in range(0, 8 * 60, 20):
        for symbol in ["A", "B", "C", None]:  # D never reports; None: no symbol tag
            if rng.random() < 0.4:
                continue
            rows["time"].append(T0 - timedelta(seconds=second))
            rows["symbol"].append(symbol)
            rows["host"].append(rng.choice(["h1", "h2", None]))
            price = rng.choice([None, 1.0, 2.5, 10.0, 11.0, 0.0])
            rows["price"].append(price)
            rows["volume"].append(rng.choice([None, 3.0, 7.0]) if price is not None else 5.0)
    return pa.table({"time": pa.array(rows["time"], pa.timestamp("ns", "UTC")),
                     "symbol": pa.array(rows["symbol"], pa.string()), "host": pa.array(rows["host"], pa.string()),
                     "price": pa.array(rows["price"], pa.float64()), "volume": pa.array(rows["volume"], pa.float64())})


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def assert_same_rows(merged: ScanRows, alone: ScanRows, where: str) -> None:
    assert merged.groups == alone.groups, where
    assert merged.keys == alone.keys, where
    assert merged.columns.keys() == alone.columns.keys(), where
    for column, values in alone.columns.items():
        got = merged.columns[column]
        assert len(got) == len(values) and all(same(x, y) for x, y in zip(got, values)), (where, column, got, values)


@pytest.mark.parametrize("seed", range(16))
def test_merged_scans_give_the_rows_of_one_query_per_scan(seed: int) -> None:
    rng = random.Random(seed)
    rules = [rule_from_text(random_rule(rng, i), id=str(i)) for i in range(30)]
    source = DataFusionSource()
    source.add_table("m", random_table(rng))
    try:
        at = T0 - timedelta(seconds=rng.choice([0, 10, 30]))
        merged, alone = plan_tick(rules, at), plan_tick(rules, at, merge=False)
        assert [s.key for s in merged.scans] == [s.key for s in alone.scans]
        assert merged.rule_scans == alone.rule_scans
        assert merged.query_count < alone.query_count == alone.scan_count == merged.scan_count
        assert sorted(i for q in merged.queries for i in q.members) == list(range(merged.scan_count))
        evaluator = Evaluator(source, query_timeout=None)
        rows_merged, errors_merged = evaluator.run_queries(merged)
        rows_alone, errors_alone = evaluator.run_queries(alone)
        assert errors_merged == errors_alone == {}
        assert rows_merged.keys() == rows_alone.keys()
        for index, scan in enumerate(alone.scans):
            assert_same_rows(rows_merged[index], rows_alone[index], f"scan {scan.key}")
        # and what the rules decide is the same
        ticks = [Evaluator(source, merge_scans=flag).evaluate(rules, at) for flag in (True, False)]
        decided = [[[(s.key, s.decision.result, s.decision.severity) for s in r.series] for r in t.results]
                   for t in ticks]
        assert decided[0] == decided[1]
    finally:
        source.close()


class FailingSource:
    """Fails every query mentioning ``text``."""

    def __init__(self, inner, text: str) -> None:
        self.inner, self.text, self.queries = inner, text, []

    def query(self, sql):
        self.queries.append(sql)
        if self.text in sql:
            raise SourceError("test source", "unreachable", "connection refused")
        return self.inner.query(sql)


def test_a_failed_merged_query_fails_each_of_its_scans_only() -> None:
    source = DataFusionSource()
    source.add_table("m", random_table(random.Random(1)))
    try:
        rules = [rule_from_text(f'last(m.price{{symbol="{s}"}}) > 1', id=s) for s in "ABC"]
        rules.append(rule_from_text('last(m.volume{host="h1"}, 3m) > 1', id="other"))
        plan = plan_tick(rules, T0)
        assert plan.scan_count == 4 and plan.query_count == 2
        failing = FailingSource(source, '"symbol" IN')
        tick = Evaluator(failing).evaluate(rules, T0)
        assert len(failing.queries) == 2
        assert [r.error is not None for r in tick.results] == [True, True, True, False]
    finally:
        source.close()


def test_a_measurement_never_written_reads_as_no_points_for_each_scan() -> None:
    source = DataFusionSource()
    source.add_table("m", random_table(random.Random(2)))
    try:
        rules = [rule_from_text(f'absent(nowhere.up{{service="{s}"}}, 5m)', id=s) for s in "xyz"]
        rules += [rule_from_text(f'count(nowhere.up{{service="{s}"}}, 5m) == 0', id=f"c{s}") for s in "xyz"]
        plan = plan_tick(rules, T0)
        assert plan.query_count == 1
        tick = Evaluator(source).evaluate(rules, T0)
        assert [r.series[0].decision.result for r in tick.results] == [True] * 6
    finally:
        source.close()
