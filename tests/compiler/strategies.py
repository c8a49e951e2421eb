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

__all__ = ["AT", "AT_NS", "MEASUREMENTS", "TAGS", "FLOAT_FIELDS", "INT_FIELDS", "datasets", "aggregates",
           "numeric", "conditions", "rules", "WINDOWS", "OFFSETS"]

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

_EDGES = sorted({o * S for o in OFFSETS} | {(o + w) * S for o in OFFSETS for w in WINDOWS})
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


@lru_cache(maxsize=None)
def aggregates(function=None):
    functions = st.just(function) if function else st.sampled_from(a.NUMERIC_AGGREGATES)
    return functions.flatmap(lambda fn: st.builds(
        a.Aggregate, st.just(fn), selectors, windows, offsets,
        percentiles if fn == "percentile" else st.none()))


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


group_bys = st.sampled_from([(), ("host",), ("host", "régión"), ("régión",)])


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
