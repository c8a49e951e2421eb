"""Random rules over a small fixed schema, and random data for it.

The schema is small on purpose, so that generated rules and generated points
meet: two measurements (one with a space in its name), two tags (one with a
non-ASCII name), float fields and an integer field. Data is drawn to hit the
cases that break aggregates: points exactly on window edges and one
nanosecond either side, equal timestamps, empty windows, missing tags and
fields, several series, unicode and quote-bearing tag values, magnitudes from
1e-9 to 1e12.
"""

from __future__ import annotations

import random
from datetime import datetime
from functools import lru_cache
import random

from hypothesis import strategies as st

from monitors_dsl import ast as a

__all__ = ["AT", "AT_NS", "MEASUREMENTS", "TAGS", "FLOAT_FIELDS", "INT_FIELDS", "datasets", "make_dataset",
           "aggregates", "numeric", "conditions", "rules", "RandomRules", "seeds", "WINDOWS", "OFFSETS", "GROUP_BYS", "BASELINES",
           "baseline_choices"]

AT = datetime(2024, 3, 1, 12, 0, 0)
AT_NS = 1709294400 * 10**9
S = 10**9
MEASUREMENTS = ["cpu", "net io"]
TAGS = ["host", "régión"]
FLOAT_FIELDS = ["usage", "temp"]
INT_FIELDS = ["bytes"]
WINDOWS = [60, 300, 3600]
OFFSETS = [0, 60, 3600]
TAG_VALUES = ["a", "b", "web-1", "é☃東京", "it's", 'say "hi"', "back\\slash", "%_*"]
REGEXES = ["^a", "b|web", "^web-[0-9]+$", "é", "'", "^$", ".*", "1$", "(?i)A"]

# --- data -------------------------------------------------------------------------------

BASELINES = [7200, 86400]  # zscore baselines; each also window + 1s and twice the window
_EDGES = sorted({o * S for o in OFFSETS} | {(o + w) * S for o in OFFSETS for w in WINDOWS}
                | {(o + w + b) * S for o in OFFSETS for w in WINDOWS for b in BASELINES + [w, w + 1]})
_MAGNITUDES = [1e-9, 1e-3, 1.0, 1e3, 1e6, 1e12]
_magnitudes = st.sampled_from(_MAGNITUDES)
floats = st.one_of(
    st.builds(lambda m, x: m * x, _magnitudes, st.floats(-10, 10, allow_nan=False)),
    st.integers(-5, 5).map(float),
    st.just(0.0),
)


def _age(rng: random.Random) -> int:
    """How long before ``AT`` a point lies, in ns: on an edge, next to one, or anywhere in 26 hours."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(_EDGES)
    if kind == 1:
        return rng.choice(_EDGES) + rng.choice((-1, 1))
    if kind == 2:
        return rng.randrange(26 * 3600 * S)
    if kind == 3:
        return rng.randrange(0, 2 * 3600 * S, S)  # whole seconds
    return rng.randrange(2 * 3600 * S)


def _value(rng: random.Random, integer: bool):
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(-5, 6) if integer else float(rng.randrange(-5, 6))
    if integer:
        return rng.randrange(-10**12, 10**12) if kind == 1 else rng.randrange(-10**6, 10**6)
    if kind == 1:
        return 0.0
    return rng.choice(_MAGNITUDES) * rng.uniform(-10, 10)


def _point(rng: random.Random, times: list[int], series: list[dict]) -> dict:
    time = rng.choice(times) if times and rng.randrange(4) == 0 else AT_NS - _age(rng)  # equal timestamps
    times.append(time)
    point = {"time": time}
    for tag, value in rng.choice(series).items():
        if value is not None:
            point[tag] = value
    for name in FLOAT_FIELDS + INT_FIELDS:
        if rng.randrange(5):
            point[name] = _value(rng, name in INT_FIELDS)
    return point


def make_dataset(seed: int, max_points: int = 24) -> dict[str, list[dict]]:
    """Points for every measurement, from a seed: a few series (tag combinations, some tags missing)."""
    rng = random.Random(seed)
    data = {}
    for measurement in MEASUREMENTS:
        series = [{tag: rng.choice([None] + TAG_VALUES[:3] * 2 + TAG_VALUES) for tag in TAGS}
                  for _ in range(rng.randint(1, 4))]
        times: list[int] = []
        size = rng.choice([0, rng.randint(0, max_points), rng.randint(0, max_points)])
        data[measurement] = [_point(rng, times, series) for _ in range(size)]
    return data


def datasets(max_points: int = 24):
    """Random data drawn from a seed (fast to draw; shrinks by seed and size)."""
    return st.builds(make_dataset, st.integers(0, 2**32 - 1), st.just(max_points))


# --- rules -------------------------------------------------------------------------------


@st.composite
def filters(draw):
    op = draw(st.sampled_from(a.FILTER_OPS))
    tag = draw(st.sampled_from(TAGS))
    if op in ("in", "not in"):
        value = tuple(draw(st.lists(st.sampled_from(TAG_VALUES), min_size=1, max_size=3)))
    elif op in ("=~", "!~"):
        value = draw(st.sampled_from(REGEXES))
    else:
        value = draw(st.sampled_from(TAG_VALUES[:4]))
    return a.Filter(tag, op, value)


selectors = st.builds(
    a.Selector,
    st.sampled_from(MEASUREMENTS),
    st.sampled_from(FLOAT_FIELDS + INT_FIELDS),
    st.lists(filters(), max_size=2).map(tuple),
)
windows = st.one_of(st.sampled_from(WINDOWS), st.integers(1, 7200)).map(a.Duration)
offsets = st.sampled_from(OFFSETS).map(a.Duration)
percentiles = st.one_of(st.sampled_from([0.0, 25.0, 50.0, 90.0, 95.0, 99.9, 100.0]), st.floats(0, 100))


_functions = st.sampled_from(a.NUMERIC_AGGREGATES)


def baseline_choices(window: int) -> list[int]:
    """``zscore`` baselines for ``window``: just longer, twice as long, and the fixed ones longer than it."""
    return [window + 1, 2 * window] + [b for b in BASELINES if b > window]


@st.composite
def _aggregates(draw, function):
    function = function or draw(_functions)
    window = draw(windows)
    parameter = draw(percentiles) if function == "percentile" else None
    if function in a.DURATION_PARAMETER:
        parameter = float(draw(st.sampled_from(baseline_choices(window.seconds))))
    return a.Aggregate(function, draw(selectors), window, draw(offsets), parameter)


@lru_cache(maxsize=None)
def aggregates(function=None):
    """Aggregate calls (numeric ones unless ``function`` is given) over the schema."""
    return _aggregates(function)


thresholds = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5, 1e-9, 1e3, 1e12, -1e6]),
    floats,
).map(lambda v: a.Number(abs(v)))  # a literal is never negative; `-` is Negate


@lru_cache(maxsize=None)
def numeric(depth: int = 2):
    leaves = st.one_of(aggregates(), aggregates(), thresholds)
    if depth <= 0:
        return leaves
    inner = st.deferred(lambda: numeric(depth - 1))
    return st.one_of(
        leaves,
        leaves,
        st.builds(a.Abs, inner),
        st.builds(a.Negate, inner),
        st.builds(a.Arithmetic, st.sampled_from("+-*/"), inner, inner),
    )


@lru_cache(maxsize=None)
def conditions(depth: int = 2):
    comparison = st.builds(a.Comparison, st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
                           numeric(1), st.one_of(thresholds, numeric(1)))
    absent = aggregates("absent")
    if depth <= 1:
        return st.one_of(comparison, comparison, absent)
    inner = st.deferred(lambda: conditions(depth - 1))
    return st.one_of(
        comparison,
        absent,
        st.builds(a.Not, inner),
        st.builds(a.Logical, st.sampled_from(["and", "or"]), inner, inner),
    )


group_bys = st.sampled_from([(), ("host",), ("host", "régión"), ("régión",)])  # as GROUP_BYS


@st.composite
def rules(draw, group_by=group_bys, severities: bool | None = None):
    fields: dict = {"group_by": draw(group_by)}
    several = draw(st.booleans()) if severities is None else severities
    if several:
        chosen = draw(st.lists(st.sampled_from(a.SEVERITIES), min_size=1, max_size=3, unique=True))
        for severity in chosen:
            fields[f"{severity}_when"] = draw(conditions(2))
        if draw(st.booleans()):
            fields["resolve_when"] = draw(conditions(1))
    else:
        fields["when"] = draw(conditions(2))
        fields["severity"] = draw(st.sampled_from(a.SEVERITIES))
    return a.Rule(name="r", **fields)


# --- the same rules from a seed (fast to draw; the bulk of the differential cases) -------


class RandomRules:
    """Builds the rules the strategies above build, with ``random.Random`` instead of draws."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def filter(self) -> a.Filter:
        rng = self.rng
        op = rng.choice(a.FILTER_OPS)
        tag = rng.choice(TAGS)
        if op in ("in", "not in"):
            value = tuple(rng.choice(TAG_VALUES) for _ in range(rng.randint(1, 3)))
        elif op in ("=~", "!~"):
            value = rng.choice(REGEXES)
        else:
            value = rng.choice(TAG_VALUES[:4])
        return a.Filter(tag, op, value)

    def aggregate(self, function: str | None = None) -> a.Aggregate:
        rng = self.rng
        function = function or rng.choice(a.NUMERIC_AGGREGATES)
        selector = a.Selector(rng.choice(MEASUREMENTS), rng.choice(FLOAT_FIELDS + INT_FIELDS),
                              tuple(self.filter() for _ in range(rng.choice([0, 0, 1, 2]))))
        window = rng.choice(WINDOWS) if rng.randrange(3) else rng.randint(1, 7200)
        parameter = None
        if function == "percentile":
            parameter = rng.choice([0.0, 25.0, 50.0, 90.0, 95.0, 99.9, 100.0, rng.uniform(0, 100)])
        if function in a.DURATION_PARAMETER:
            parameter = float(rng.choice(baseline_choices(window)))
        return a.Aggregate(function, selector, a.Duration(window), a.Duration(rng.choice(OFFSETS)), parameter)

    def number(self) -> a.Number:
        rng = self.rng
        if rng.randrange(2):
            return a.Number(rng.choice([0.0, 1.0, 2.0, 0.5, 1e-9, 1e3, 1e12, 1e6]))
        return a.Number(abs(rng.choice(_MAGNITUDES) * rng.uniform(-10, 10)), percent=rng.randrange(8) == 0)

    def numeric(self, depth: int = 2):
        rng = self.rng
        kind = rng.randrange(8) if depth > 0 else rng.randrange(3)
        if kind in (0, 1):
            return self.aggregate()
        if kind == 2:
            return self.number()
        if kind in (3, 4):
            return self.aggregate() if kind == 3 else a.Negate(self.numeric(depth - 1))
        if kind == 5:
            return a.Abs(self.numeric(depth - 1))
        return a.Arithmetic(rng.choice("+-*/"), self.numeric(depth - 1), self.numeric(depth - 1))

    def condition(self, depth: int = 2):
        rng = self.rng
        kind = rng.randrange(6) if depth > 1 else rng.randrange(3)
        if kind in (0, 1):
            right = self.number() if rng.randrange(2) else self.numeric(1)
            return a.Comparison(rng.choice([">", ">=", "<", "<=", "==", "!="]), self.numeric(1), right)
        if kind == 2:
            return self.aggregate("absent")
        if kind == 3:
            return a.Not(self.condition(depth - 1))
        return a.Logical(rng.choice(["and", "or"]), self.condition(depth - 1), self.condition(depth - 1))

    def slo(self, group_by=None) -> a.Rule:
        """A rule written as an slo block, its windows within the data's reach, any sum/count terms."""
        from monitors_dsl.slo import slo_rule

        rng = self.rng

        def term():
            aggregate = self.aggregate(rng.choice(a.SLO_AGGREGATES))
            return a.Aggregate(aggregate.function, aggregate.selector)

        def alert():
            short = rng.choice(WINDOWS[:2] + [rng.randint(1, 1800)])
            long = rng.choice([w for w in WINDOWS if w > short] + [short + rng.randint(1, 7200)])
            return a.BurnAlert(rng.choice([14.4, 6.0, 1.0, 0.5, 2.0, rng.uniform(0.01, 20)]), a.Duration(long),
                               a.Duration(short))

        objective = a.Number(rng.choice([99.9, 99.0, 90.0, 50.0, rng.uniform(1, 99.99)]), percent=True)
        slo = a.Slo(term(), term(), objective, alert(), alert(), alert())
        return slo_rule("r", slo, group_by=rng.choice(GROUP_BYS) if group_by is None else group_by)

    def rule(self, group_by=None, severities: bool | None = None) -> a.Rule:
        rng = self.rng
        fields: dict = {"group_by": rng.choice(GROUP_BYS) if group_by is None else group_by}
        several = rng.randrange(2) if severities is None else severities
        if several:
            for severity in rng.sample(a.SEVERITIES, rng.randint(1, 3)):
                fields[f"{severity}_when"] = self.condition(2)
            if rng.randrange(2):
                fields["resolve_when"] = self.condition(1)
        else:
            fields["when"] = self.condition(2)
            fields["severity"] = rng.choice(a.SEVERITIES)
        return a.Rule(name="r", **fields)


GROUP_BYS = [(), ("host",), ("host", "régión"), ("régión",)]
seeds = st.integers(0, 2**32 - 1)
