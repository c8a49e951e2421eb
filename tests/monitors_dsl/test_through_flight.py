"""A sample of the generated cases through InfluxDB 3's own path: line protocol in, Arrow Flight out.

Data is written by the real ``influxdb3-python`` client to the test InfluxDB 3
endpoint and the compiled SQL is read back through ``InfluxDB3Source`` (the
client's Flight query); the rows must agree with the reference evaluator as on
the embedded source. InfluxDB keeps one point per series and time (a later
write's fields update it), so the reference sees the data merged the same way.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from influxdb_client_3 import Point, WritePrecision

from engine.sources import InfluxDB3Source
from monitors_dsl.compiler import compile_rule
from tests.support.influx_server import InfluxServer

from tests.support import compiler_strategies as s
from tests.support.compiler_harness import check_rule

TOKEN = "compiler-token"


@pytest.fixture(scope="module")
def influx():
    with InfluxServer(token=TOKEN) as server:
        yield server


def merged(data: dict) -> dict:
    """The points as InfluxDB stores them: one per (series, time), later fields updating earlier ones."""
    out = {}
    for measurement, points in data.items():
        rows: dict[tuple, dict] = {}
        for point in points:
            tags = tuple(sorted((k, v) for k, v in point.items() if isinstance(v, str)))
            row = rows.setdefault((tags, point["time"]), {"time": point["time"], **dict(tags)})
            row.update({k: v for k, v in point.items() if not isinstance(v, str)})
        out[measurement] = [row for row in rows.values() if any(k in row for k in s.FLOAT_FIELDS + s.INT_FIELDS)]
    return out


def write(influx: InfluxServer, database: str, data: dict) -> None:
    points = []
    for measurement, rows in data.items():
        for row in rows:
            point = Point(measurement)
            for key, value in row.items():
                if key == "time":
                    continue
                point = point.tag(key, value) if isinstance(value, str) else point.field(key, value)
            points.append(point.time(row["time"], WritePrecision.NS))
    if points:
        client = influx.client(database)
        try:
            client.write(points)
        finally:
            client.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=s.seeds)
def test_generated_cases_agree_through_the_real_client(influx, seed):
    rule = s.RandomRules(seed).rule()
    data = s.make_dataset(seed)
    for measurement in s.MEASUREMENTS:  # one old point giving every table all its columns (seen by no term)
        data[measurement].append({"time": s.AT_NS - 30 * 3600 * 10**9, **{t: "a" for t in s.TAGS},
                                  **{f: 1.0 for f in s.FLOAT_FIELDS}, **{f: 1 for f in s.INT_FIELDS}})
    data = merged(data)
    database = f"db{seed}"
    write(influx, database, data)
    written = {m for m, rows in data.items() if rows}
    compiled = compile_rule(rule)
    columns = {m: {k for row in rows for k in row} for m, rows in data.items()}
    needed = {t.measurement: set(t.group_by) | {f.tag for f in t.filters} | {t.field_name} for t in compiled.terms}
    if any(not wanted <= columns.get(m, set()) for m, wanted in needed.items()):
        event("skipped: a table or column InfluxDB 3 never saw written")
        return  # InfluxDB 3 knows no table or column that was never written: the query fails, as it should
    event("compared")
    with InfluxDB3Source(influx.flight_url, database, TOKEN) as source:
        check_rule(compiled, data, s.AT, source)
