"""Runs a compiled rule on DataFusion over given points and compares it with the reference evaluator.

Data is presented as InfluxDB 3 presents it: ``time`` a zone-less ``timestamp[ns]``,
tags ``dictionary<int32, string>``, fields ``float64`` / ``int64``; through the
engine's ``DataFusionSource`` (information_schema on, read-only).
"""

from __future__ import annotations

import math

import pyarrow as pa

from engine.sources import DataFusionSource
from monitors_dsl import ast as a
from monitors_dsl import reference
from monitors_dsl.compiler import CompiledRule
from monitors_dsl.sql import Term, sql_for_terms

TAG_TYPE = pa.dictionary(pa.int32(), pa.string())
INEXACT = {"avg", "sum", "stddev"}


def to_table(points: list[dict], tags: list[str], float_fields: list[str], int_fields: list[str]) -> pa.Table:
    """Points as an InfluxDB 3 table; a key a point lacks is NULL."""
    columns = {"time": pa.array([p["time"] for p in points], pa.timestamp("ns"))}
    for tag in tags:
        columns[tag] = pa.array([p.get(tag) for p in points], pa.string()).dictionary_encode().cast(TAG_TYPE)
    for name in float_fields:
        columns[name] = pa.array([p.get(name) for p in points], pa.float64())
    for name in int_fields:
        columns[name] = pa.array([p.get(name) for p in points], pa.int64())
    return pa.table(columns)


_SOURCE: list[DataFusionSource] = []


def source_for(data: dict[str, list[dict]], tags, float_fields, int_fields) -> DataFusionSource:
    """The process's one embedded source, holding exactly ``data``'s measurements."""
    if not _SOURCE:
        _SOURCE.append(DataFusionSource(name="generated data"))
    source = _SOURCE[0]
    for measurement in source.measurements:
        if measurement not in data:
            source.remove_table(measurement)
    for measurement, points in data.items():
        source.add_table(measurement, to_table(points, tags, float_fields, int_fields), tags=list(tags))
    return source


def run_sql(compiled: CompiledRule, source: DataFusionSource, at) -> dict[tuple, dict]:
    """The query's rows keyed by their group labels (a ``count_series`` told the source's tags, as the
    engine tells it)."""
    sql = compiled.sql(at)
    if any(term.function == "count_series" for term in compiled.terms):
        tags = {name: sorted(m.tags) for name, m in source.schema().measurements.items()}
        sql = sql_for_terms(compiled.terms, at, compiled.group_by, series_tags=tags)
    rows = source.query(sql).to_pylist()
    keyed = {}
    for row in rows:
        key = tuple(row[tag] for tag in compiled.group_by)
        assert key not in keyed, f"two rows for series {key}"
        keyed[key] = row
    return keyed


def _inputs(term: Term, data, at, labels: tuple) -> tuple[int, float]:
    """How many points a term reads for a series, and their largest magnitude (for tolerances)."""
    high = reference._ns(at) - term.offset * 10**9
    low = high - term.window * 10**9
    points = reference._points(term, data, low, high).get(labels, [])
    return len(points), max((abs(v) for _, v in points), default=0.0)


def close(term: Term, got, want, data, at, labels: tuple) -> bool:
    """Equal; for numbers within 1e-9 relative, plus the rounding error of a sum over the inputs."""
    if got is None or want is None:
        return got is None and want is None
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if got == want or abs(got - want) <= 1e-9 * max(abs(got), abs(want)):
        return True
    if term.function not in INEXACT:
        return False
    n, scale = _inputs(term, data, at, labels)
    slack = math.sqrt(n * 1e-15) if term.function == "stddev" else n * 1e-13
    return abs(got - want) <= slack * scale


def comparisons_flip(rule: a.Rule, first: dict, second: dict) -> bool:
    """Whether any comparison of the rule comes out differently on two sets of term values."""
    expressions = [c for _, c in rule.conditions] + ([rule.resolve_when] if rule.resolve_when else [])
    for expr in expressions:
        for node in a.walk(expr):
            if isinstance(node, a.Comparison):
                if (reference.condition_value(node, first, rule.group_by)
                        != reference.condition_value(node, second, rule.group_by)):
                    return True
    return False


def check_rule(compiled: CompiledRule, data, at, source: DataFusionSource) -> int:
    """Asserts SQL + predicate agree with the reference on every series; returns the number of series."""
    rule = compiled.rule
    expected = {tuple(s.labels[t] for t in rule.group_by): s for s in reference.evaluate(rule, data, at)}
    got = run_sql(compiled, source, at)
    assert set(got) == set(expected), f"series differ: sql {sorted(got)} vs reference {sorted(expected)}"
    for key, series in expected.items():
        row = got[key]
        for term in compiled.terms:
            assert close(term, row[term.column], series.values[term.column], data, at, key), (
                f"{term.text} for {key}: sql {row[term.column]!r} vs reference {series.values[term.column]!r}")
        # The predicate over the reference's own values must give exactly the reference decision.
        assert compiled.decide(series.values) == series.decision
        assert compiled.condition(series.values) == series.decision.result
        decision = compiled.decide(row)
        if decision != series.decision:
            assert comparisons_flip(rule, row, series.values), (
                f"decision for {key}: sql {decision} vs reference {series.decision}")
    return len(expected)
