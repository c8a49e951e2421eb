"""Hand-computed values of every function and filter, on both paths: SQL on DataFusion and the reference.

Each case gives a rule, a few points at known times before ``T`` and the values a
person computes from the language's definitions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitors_dsl import compile_rule, reference

from tests.support.compiler_harness import run_sql, source_for

T = datetime(2024, 5, 1, 12, 0, 0)
S = 10**9
T_NS = 1714564800 * S
TAGS, FLOATS, INTS = ["host", "dc"], ["v", "w"], ["n"]


def ago(seconds: float, **fields) -> dict:
    return {"time": T_NS - int(seconds * S), **fields}


CASES = [
    # (condition or rule, points of measurement "m", {labels: value of the single term})
    ("last(m.v) > 0", [ago(10, v=1.0), ago(5, v=3.0), ago(5, v=2.0), ago(100, v=9.0)], {(): 3.0}),
    ("first(m.v) > 0", [ago(10, v=1.0), ago(200, v=7.0), ago(200, v=4.0)], {(): 4.0}),
    ("last(m.v) > 0", [ago(300, v=1.0), ago(0, v=2.0)], {(): 2.0}),  # T - 5m is outside, T inside
    ("first(m.v) > 0", [ago(300, v=1.0), ago(299.999999999, v=2.0)], {(): 2.0}),
    ("last(m.v) > 0", [ago(-1, v=1.0)], {(): None}),  # after T: not seen
    ("count(m.v) > 0", [], {(): 0}),
    ("count(m.v) > 0", [ago(1, v=1.0), ago(2, w=1.0), ago(3, v=None, n=4)], {(): 1}),
    ("count(m.n) > 0", [ago(1, n=1), ago(2, n=2)], {(): 2}),
    ("sum(m.n) > 0", [ago(1, n=10**12), ago(2, n=-3)], {(): 10.0**12 - 3}),
    ("avg(m.v) > 0", [ago(1, v=1.0), ago(2, v=2.0), ago(3, v=6.0)], {(): 3.0}),
    ("min(m.v) > 0", [ago(1, v=1.0), ago(2, v=-2.0)], {(): -2.0}),
    ("max(m.v) > 0", [ago(1, v=1.0), ago(2, v=-2.0)], {(): 1.0}),
    ("median(m.v) > 0", [ago(1, v=1.0), ago(2, v=10.0), ago(3, v=3.0), ago(4, v=4.0)], {(): 3.5}),
    ("spread(m.v) > 0", [ago(1, v=1.0), ago(2, v=10.0), ago(3, v=3.0)], {(): 9.0}),
    ("stddev(m.v) > 0", [ago(1, v=2.0)], {(): None}),
    ("stddev(m.v) > 0", [ago(1, v=2.0), ago(2, v=4.0)], {(): 2 ** 0.5}),
    ("percentile(m.v, 50) > 0", [ago(i, v=float(x)) for i, x in enumerate([4, 1, 3, 2], 1)], {(): 2.5}),
    ("percentile(m.v, 95) > 0", [ago(i, v=float(x)) for i, x in enumerate([4, 1, 3, 2], 1)], {(): 3.85}),
    ("percentile(m.v, 0) > 0", [ago(i, v=float(x)) for i, x in enumerate([4, 1, 3, 2], 1)], {(): 1.0}),
    ("percentile(m.v, 100) > 0", [ago(i, v=float(x)) for i, x in enumerate([4, 1, 3, 2], 1)], {(): 4.0}),
    ("percentile(m.v, 90) > 0", [ago(1, v=7.0)], {(): 7.0}),
    ("percentile(m.v, 90) > 0", [], {(): None}),
    ("delta(m.v) > 0", [ago(30, v=10.0), ago(10, v=4.0)], {(): -6.0}),
    ("delta(m.v) > 0", [ago(30, v=10.0)], {(): None}),
    ("delta(m.v) > 0", [ago(30, v=10.0), ago(30, v=4.0)], {(): 6.0}),  # equal times: ordered by value
    ("rate(m.v) > 0", [ago(30, v=10.0), ago(10, v=30.0)], {(): 1.0}),
    ("rate(m.v) > 0", [ago(30, v=10.0), ago(30, v=30.0)], {(): None}),
    ("rate(m.v) > 0", [ago(1.5, v=0.0), ago(1, v=1.0)], {(): 2.0}),
    ("pct_change(m.v, 1h) < -5%", [ago(3000, v=100.0), ago(10, v=95.0)], {(): -0.05}),
    ("pct_change(m.v, 1h) < -5%", [ago(3000, v=-100.0), ago(10, v=-50.0)], {(): 0.5}),
    ("pct_change(m.v) > 0", [ago(30, v=0.0), ago(10, v=5.0)], {(): None}),
    ("pct_change(m.v) > 0", [ago(30, v=5.0)], {(): None}),
    ("absent(m.v)", [], {(): True}),
    ("absent(m.v)", [ago(400, v=1.0)], {(): True}),
    ("absent(m.v)", [ago(4, v=1.0)], {(): False}),
    ("last(m.v) offset 1h > 0", [ago(3600, v=1.0), ago(3601, v=2.0), ago(10, v=3.0)], {(): 1.0}),
    ("sum(m.v, 90s) > 0", [ago(90, v=1.0), ago(89, v=2.0), ago(0, v=4.0)], {(): 6.0}),
    # filters; a tag a point lacks reads as ""
    ('count(m.v{host="a"}) > 0', [ago(1, v=1.0, host="a"), ago(2, v=1.0, host="b"), ago(3, v=1.0)], {(): 1}),
    ('count(m.v{host!="a"}) > 0', [ago(1, v=1.0, host="a"), ago(2, v=1.0, host="b"), ago(3, v=1.0)], {(): 2}),
    ('count(m.v{host=""}) > 0', [ago(1, v=1.0, host="a"), ago(3, v=1.0)], {(): 1}),
    ('count(m.v{host=~"^w"}) > 0', [ago(1, v=1.0, host="web"), ago(2, v=1.0, host="db"), ago(3, v=1.0)], {(): 1}),
    ('count(m.v{host!~"^w"}) > 0', [ago(1, v=1.0, host="web"), ago(2, v=1.0, host="db"), ago(3, v=1.0)],
     {(): 2}),
    ('count(m.v{host=~"^$"}) > 0', [ago(1, v=1.0, host="web"), ago(3, v=1.0)], {(): 1}),
    ('count(m.v{host in ("a", "b")}) > 0', [ago(1, v=1.0, host="a"), ago(2, v=1.0, host="b"),
                                           ago(3, v=1.0, host="c"), ago(4, v=1.0)], {(): 2}),
    ('count(m.v{host not in ("a", "b")}) > 0', [ago(1, v=1.0, host="a"), ago(3, v=1.0, host="c"),
                                               ago(4, v=1.0)], {(): 2}),
    ('count(m.v{host="東京 ☃", dc="it\'s"}) > 0', [ago(1, v=1.0, host="東京 ☃", dc="it's"),
                                                 ago(2, v=1.0, host="東京 ☃")], {(): 1}),
    # group by: one series per tag combination; count / absent per group
    ("rule r { when count(m.v) > 0 group by host }",
     [ago(1, v=1.0, host="a"), ago(2, v=1.0, host="a"), ago(3, w=1.0, host="b"), ago(4, v=1.0)],
     {("a",): 2, ("",): 1}),
    ("rule r { when last(m.v) > 0 group by host, dc }",
     [ago(1, v=1.0, host="a", dc="x"), ago(2, v=2.0, host="a", dc="y"), ago(3, v=3.0, host="a", dc="x")],
     {("a", "x"): 1.0, ("a", "y"): 2.0}),
    ("rule r { when absent(m.v) group by host }",
     [ago(3600, v=1.0, host="a"), ago(10, v=1.0, host="b"), ago(90000, v=1.0, host="c"),
      ago(86400 + 299, v=1.0, host="d"), ago(86400 + 300, v=1.0, host="e")],
     {("a",): True, ("b",): False, ("d",): True}),
    # count_series: distinct combinations of every tag of the measurement ("" when a point lacks one)
    ("count_series(m.v) > 0",
     [ago(1, v=1.0, host="a", dc="x"), ago(2, v=1.0, host="a", dc="y"), ago(3, v=1.0, host="b"),
      ago(4, v=2.0, host="a", dc="x"), ago(5, w=1.0, host="c"), ago(400, v=1.0, host="d")], {(): 3}),
    ("count_series(m.v) > 0", [], {(): 0}),
    ("count_series(m.v) > 0", [ago(1, v=1.0, host="", dc="x"), ago(2, v=1.0, dc="x")], {(): 1}),
    ('count_series(m.v{host="a"}) > 0',
     [ago(1, v=1.0, host="a", dc="x"), ago(2, v=1.0, host="a", dc="y"), ago(3, v=1.0, host="b", dc="x")], {(): 2}),
    ("rule r { when count_series(m.v) < 3 group by dc }",
     [ago(1, v=1.0, host="a", dc="x"), ago(2, v=1.0, host="b", dc="x"), ago(3, v=1.0, host="a", dc="y"),
      ago(4, v=1.0, host="a", dc="x"), ago(5, w=1.0, host="c", dc="z")], {("x",): 2, ("y",): 1}),
    # zscore: the window's average against the baseline just before it, (T-3900s, T-300s] here
    ("zscore(m.v, 5m, 1h) > 0",
     [ago(10, v=7.0), ago(400, v=1.0), ago(1000, v=3.0), ago(300, v=5.0), ago(3900, v=100.0)], {(): 2.0}),
    ("zscore(m.v, 5m, 1h) > 0", [ago(10, v=7.0), ago(20, v=9.0), ago(400, v=1.0), ago(500, v=5.0)],
     {(): (8.0 - 3.0) / 8 ** 0.5}),
    ("zscore(m.v, 5m, 1h) > 0", [ago(10, v=7.0), ago(400, v=1.0)], {(): None}),  # one baseline point
    ("zscore(m.v, 5m, 1h) > 0", [ago(10, v=7.0), ago(400, v=2.0), ago(500, v=2.0)], {(): None}),  # stddev 0
    ("zscore(m.v, 5m, 1h) > 0", [ago(400, v=1.0), ago(500, v=3.0)], {(): None}),  # empty window
    ("zscore(m.v, 5m, 1h) offset 1h > 0",
     [ago(3610, v=7.0), ago(4000, v=1.0), ago(5000, v=3.0), ago(10, v=1000.0)], {(): 7.0 / 2 ** 0.5 - 2 / 2 ** 0.5}),
    ("rule r { when zscore(m.v, 5m, 1h) < 0 group by host }",
     [ago(10, v=0.0, host="a"), ago(400, v=1.0, host="a"), ago(500, v=3.0, host="a"),
      ago(10, v=0.0, host="b"), ago(400, v=1.0, host="b"),
      ago(400, v=1.0, host="c"), ago(500, v=3.0, host="c")],
     {("a",): -2 / 2 ** 0.5, ("b",): None}),  # c: baseline only, no series
]


@pytest.fixture(scope="module")
def runner():
    def run(text, points):
        compiled = compile_rule(text)
        data = {"m": points}
        source = source_for(data, TAGS, FLOATS, INTS)
        return compiled, run_sql(compiled, source, T), reference.evaluate(compiled.rule, data, T)
    return run


@pytest.mark.parametrize("text, points, expected", CASES)
def test_hand_computed_values(runner, text, points, expected):
    compiled, rows, series = runner(text, points)
    (term,) = compiled.terms
    by_reference = {tuple(s.labels.values()): s.values[term.column] for s in series}
    by_sql = {key: row[term.column] for key, row in rows.items()}
    for got in (by_reference, by_sql):
        assert set(got) == set(expected)
        for key, want in expected.items():
            if isinstance(want, float):
                assert got[key] == pytest.approx(want, rel=1e-12)
            else:
                assert got[key] == want and type(got[key]) is type(want)


def test_a_count_that_is_zero_makes_no_series_when_grouped(runner):
    compiled, rows, series = runner("rule r { when count(m.v) > 0 or count(m.w) == 0 group by host }",
                                    [ago(1, v=1.0, host="a")])
    v, w = compiled.terms
    assert [(s.labels, s.values[v.column], s.values[w.column]) for s in series] == [({"host": "a"}, 1, None)]
    assert rows[("a",)][w.column] is None
    assert series[0].decision.result is True


def test_terms_of_two_measurements_join_on_their_groups(runner):
    compiled = compile_rule("rule r { when last(m.v) > last(o.v) group by host }")
    data = {"m": [ago(1, v=5.0, host="a"), ago(1, v=1.0, host="b")],
            "o": [ago(1, v=2.0, host="a"), ago(1, v=2.0, host="c")]}
    rows = run_sql(compiled, source_for(data, TAGS, FLOATS, INTS), T)
    assert sorted(rows) == [("a",), ("b",), ("c",)]
    assert [compiled.decide(rows[k]).result for k in sorted(rows)] == [True, None, None]
    assert [s.decision.result for s in reference.evaluate(compiled.rule, data, T)] == [True, None, None]


def test_ratio_of_counts_example_from_the_contract(runner):
    text = 'count(http.requests{status=~"^5"}, 5m) / count(http.requests, 5m) > 5%'
    compiled = compile_rule(text)
    points = [ago(i, requests=1.0, status="500" if i % 10 == 0 else "200") for i in range(1, 41)]
    data = {"http": points}
    rows = run_sql(compiled, source_for(data, ["status"], ["requests"], []), T)
    assert compiled.decide(rows[()]).result is True  # 4 of 40 = 10%
    assert compiled.decide({t.column: 0 for t in compiled.terms}).result is None  # 0 / 0: no data


def test_evaluation_time_may_be_given_with_a_zone(runner):
    compiled = compile_rule("last(m.v) > 0")
    data = {"m": [ago(1, v=1.0)]}
    zoned = (T + timedelta(hours=2)).replace(tzinfo=__import__("datetime").timezone(timedelta(hours=2)))
    assert reference.evaluate(compiled.rule, data, zoned)[0].values == reference.evaluate(compiled.rule, data, T)[0].values


def test_a_grouped_absent_is_false_for_a_series_it_does_not_watch(runner):
    compiled = compile_rule("rule r { when absent(m.v) or last(m.w) > 5 group by host }")
    data = {"m": [ago(4000, v=1.0, host="a"), ago(10, w=1.0, host="b"), ago(10, w=9.0, host="c")]}
    rows = run_sql(compiled, source_for(data, TAGS, FLOATS, INTS), T)
    absent, last = compiled.terms
    expected = {("a",): (True, None, True), ("b",): (False, 1.0, False), ("c",): (False, 9.0, True)}
    assert {k: (r[absent.column], r[last.column], compiled.decide(r).result) for k, r in rows.items()} == expected
    assert {tuple(s.labels.values()): (s.values[absent.column], s.values[last.column], s.decision.result)
            for s in reference.evaluate(compiled.rule, data, T)} == expected
