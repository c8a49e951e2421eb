"""The reference evaluator: a rule over raw points, straight from the language's definitions.

It is the oracle the compiled SQL and predicate are tested against, so it is
written to be read, not to be fast: plain lists, sorting, ``statistics`` and
explicit loops, one branch per function of the contract's table.

Points are given per measurement::

    {"cpu": [{"time": datetime | int (ns since the epoch), "host": "a", "usage": 12.5}, …]}

``time`` is the timestamp (a naive datetime is UTC); text values are tags;
numbers are fields (a point without a field, or with ``None``, is no point of
that field). A tag a point lacks reads as ``""``. Regular expressions are
matched with Python's ``re.search``, which agrees with InfluxDB 3's Rust regex
on the syntax both accept.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping

from . import ast as a
from .predicate import Decision
from .sql import Term, terms_of

__all__ = ["Series", "evaluate", "term_values", "aggregate", "zscore", "condition_value", "decision", "LOOKBACK_SECONDS"]

#: a grouped ``absent`` watches groups with points in this many seconds before its window
LOOKBACK_SECONDS = 24 * 3600
_NS = 10**9


@dataclass(frozen=True)
class Series:
    """One series of a rule at one time: its group tags, every term's value, and the decision."""

    labels: dict
    values: dict
    decision: Decision


def _ns(moment) -> int:
    if isinstance(moment, int) and not isinstance(moment, bool):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * _NS + moment.microsecond * 1000


def _tag(point: Mapping, tag: str) -> str:
    value = point.get(tag)
    return value if isinstance(value, str) else ""


def _field(point: Mapping, name: str) -> float | None:
    value = point.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _matches(point: Mapping, flt: a.Filter) -> bool:
    value = _tag(point, flt.tag)
    if flt.op == "=":
        return value == flt.value
    if flt.op == "!=":
        return value != flt.value
    if flt.op == "=~":
        return re.search(flt.value, value) is not None
    if flt.op == "!~":
        return re.search(flt.value, value) is None
    if flt.op == "in":
        return value in flt.value
    if flt.op == "not in":
        return value not in flt.value
    raise ValueError(f"unknown filter operator {flt.op!r}")


def _points(term: Term, points: Mapping, low: int, high: int) -> dict[tuple, list[tuple[int, float]]]:
    """The term's (time, value) points with ``low < time <= high``, per group, sorted by time then value."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for point in points.get(term.measurement, []):
        time = _ns(point["time"])
        value = _field(point, term.field_name)
        if value is None or not (low < time <= high):
            continue
        if all(_matches(point, flt) for flt in term.filters):
            key = tuple(_tag(point, tag) for tag in term.group_by)
            groups.setdefault(key, []).append((time, value))
    for series in groups.values():
        series.sort()
    return groups


def aggregate(function: str, points: list[tuple[int, float]], parameter: float | None = None):
    """The value of ``function`` over points sorted by (time, value); ``None`` is no data."""
    n = len(points)
    values = [v for _, v in points]
    if function == "count":
        return n
    if function == "absent":
        return n == 0
    if n == 0:
        return None
    first_time, first = points[0]
    last_time, last = points[-1]
    if function == "last":
        return last
    if function == "first":
        return first
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "avg":
        return statistics.fmean(values)
    if function == "sum":
        return math.fsum(values)
    if function == "median":
        return statistics.median(values)
    if function == "stddev":
        return statistics.stdev(values) if n >= 2 else None
    if function == "spread":
        return max(values) - min(values)
    if function == "percentile":
        ranked = sorted(values)
        h = (n - 1) * (parameter / 100.0)
        low, high = math.floor(h), math.ceil(h)
        return ranked[low] + (ranked[high] - ranked[low]) * (h - low)
    if function == "delta":
        return last - first if n >= 2 else None
    if function == "rate":
        if n < 2 or last_time == first_time:
            return None
        return (last - first) / ((last_time - first_time) / 1e9)
    if function == "pct_change":
        if n < 2 or first == 0:
            return None
        return (last - first) / abs(first)
    if function == "zscore":
        raise ValueError("zscore needs its baseline: use zscore()")
    if function == "count_series":
        raise ValueError("count_series needs the points' tags: use term_values()")
    raise ValueError(f"unknown function {function!r}")


def zscore(window: list[tuple[int, float]], baseline: list[tuple[int, float]]) -> float | None:
    """``(avg(window) - avg(baseline)) / stddev(baseline)``; ``None`` without window points, with fewer
    than 2 baseline points, or a baseline standard deviation of 0."""
    if not window or len(baseline) < 2:
        return None
    before = [v for _, v in baseline]
    spread = statistics.stdev(before)
    if spread == 0:
        return None
    return (statistics.fmean(v for _, v in window) - statistics.fmean(before)) / spread


def _zscores(term: Term, points: Mapping, low: int, high: int) -> dict[tuple, object]:
    """A ``zscore`` per group seen in its window; its baseline is ``(low - baseline, low]``."""
    window = _points(term, points, low, high)
    baseline = _points(term, points, low - int(term.parameter) * _NS, low)
    if not term.group_by:
        return {(): zscore(window.get((), []), baseline.get((), []))}
    return {key: zscore(series, baseline.get(key, [])) for key, series in window.items()}


def _count_series(term: Term, points: Mapping, low: int, high: int) -> dict[tuple, object]:
    """How many series (combinations of every tag of the measurement, ``""`` when a point lacks one)
    have a point of the field in the window, per group; 0 without group by and without points."""
    measured = points.get(term.measurement, [])
    tags = sorted({name for point in measured for name, value in point.items()
                   if name != "time" and isinstance(value, str)})
    seen: dict[tuple, set] = {}
    for point in measured:
        value = _field(point, term.field_name)
        if value is None or not (low < _ns(point["time"]) <= high):
            continue
        if all(_matches(point, flt) for flt in term.filters):
            group = tuple(_tag(point, tag) for tag in term.group_by)
            seen.setdefault(group, set()).add(tuple(_tag(point, tag) for tag in tags))
    if not term.group_by:
        return {(): len(seen.get((), ()))}
    return {group: len(series) for group, series in seen.items()}


def term_values(term: Term, points: Mapping, at) -> dict[tuple, object]:
    """The term's value for every group it sees at time ``at`` (the key ``()`` without group by)."""
    high = _ns(at) - term.offset * _NS
    low = high - term.window * _NS
    grouped = bool(term.group_by)
    if term.function == "zscore":
        return _zscores(term, points, low, high)
    if term.function == "count_series":
        return _count_series(term, points, low, high)
    if not grouped:
        inside = _points(term, points, low, high).get((), [])
        return {(): aggregate(term.function, inside, term.parameter)}
    if term.function == "absent":  # true for a watched group without points in the window
        watched = _points(term, points, low - LOOKBACK_SECONDS * _NS, high)
        inside = _points(term, points, low, high)
        return {key: key not in inside for key in watched}
    result = {}
    for key, series in _points(term, points, low, high).items():
        value = aggregate(term.function, series, term.parameter)
        result[key] = None if term.function == "count" and value == 0 else value
    return result


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
            "==": operator.eq, "!=": operator.ne}
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class _Evaluator(a.Visitor):
    """An expression's value from its terms' values: one method per node, as the language defines it."""

    __slots__ = ("values", "group_by")
    pass_name = "the reference evaluator"

    def __init__(self, values: Mapping, group_by: tuple[str, ...]):
        self.values = values
        self.group_by = group_by

    def visit_Number(self, node: a.Number):
        return node.value

    def visit_Aggregate(self, node: a.Aggregate):
        return self.values[Term.from_aggregate(node, self.group_by).column]

    def visit_Negate(self, node: a.Negate):
        inner = self.visit(node.operand)
        return None if inner is None else -inner

    def visit_Abs(self, node: a.Abs):
        inner = self.visit(node.operand)
        return None if inner is None else abs(inner)

    def visit_Arithmetic(self, node: a.Arithmetic):
        left = self.visit(node.left)
        right = self.visit(node.right)
        if left is None or right is None or (node.op == "/" and right == 0):
            return None
        return _ARITHMETIC[node.op](left, right)

    def visit_Comparison(self, node: a.Comparison):
        left = self.visit(node.left)
        right = self.visit(node.right)
        if left is None or right is None:
            return None
        return _COMPARE[node.op](left, right)

    def visit_Not(self, node: a.Not):
        inner = self.visit(node.operand)
        return None if inner is None else not inner

    def visit_Logical(self, node: a.Logical):
        left = self.visit(node.left)
        right = self.visit(node.right)
        if node.op == "and":
            if left is False or right is False:
                return False
            return None if left is None or right is None else True
        if left is True or right is True:
            return True
        return None if left is None or right is None else False


def condition_value(node, values: Mapping, group_by: Iterable[str] = ()):
    """Value of an expression given each term's value by column: a number, True/False, or None."""
    return _Evaluator(values, tuple(group_by)).visit(node)


def decision(rule: a.Rule, values: Mapping) -> Decision:
    """The decision for one series, from its terms' values."""
    outcomes = [(level, condition_value(cond, values, rule.group_by)) for level, cond in rule.conditions]
    severity = next((level for level, outcome in outcomes if outcome is True), None)
    if severity is not None:
        result = True
    elif any(outcome is None for _, outcome in outcomes):
        result = None
    else:
        result = False
    if rule.resolve_when is not None:
        resolve = condition_value(rule.resolve_when, values, rule.group_by)
    else:
        resolve = None if result is None else not result
    return Decision(result, severity, resolve)


def evaluate(rule: a.Rule, points: Mapping, at: datetime | int) -> list[Series]:
    """Every series of ``rule`` at time ``at``, sorted by labels: one series when there is no group by."""
    terms = terms_of(rule)
    per_term = {term.column: term_values(term, points, at) for term in terms}
    if rule.group_by:
        keys = sorted({key for by_group in per_term.values() for key in by_group})
    else:
        keys = [()]
    # A series a grouped `absent` does not watch has no point of it at all: absent is false there.
    missing = {t.column: (False if t.function == "absent" else None) for t in terms}
    series = []
    for key in keys:
        values = {column: by_group.get(key, missing[column]) for column, by_group in per_term.items()}
        labels = dict(zip(rule.group_by, key))
        series.append(Series(labels, values, decision(rule, values)))
    return series
