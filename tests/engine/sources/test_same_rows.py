"""The same SQL gives the same rows on the embedded source and, through the real client, on the test endpoint.

Data goes in twice, the way each source takes it: as an Arrow table into
``DataFusionSource``, and as line protocol written by ``influxdb3-python``
into the test InfluxDB 3 endpoint, then read through ``InfluxDB3Source``.
"""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest
from influxdb_client_3 import Point, WritePrecision

import monitors_dsl
from engine.sources import DataFusionSource, InfluxDB3Source

from tests.support.influx_server import TOKEN

T = 1714564800 * 1_000_000_000  # the evaluation time, 2024-05-01T12:00:00Z
S = 1_000_000_000
HOSTS = ["web-1", "web-2", "wéb 東京", 'db "primary", a=b']


def generate(seed: int = 7):
    """Irregular points over the last 2 hours, some exactly on window edges, magnitudes 1e-9 … 1e12."""
    rng = random.Random(seed)
    rows = []
    for host in HOSTS:
        times = sorted({T - rng.randrange(0, 7200) * S - rng.randrange(0, 1000) for _ in range(40)}
                       | {T, T - 300 * S, T - 3600 * S})
        for t in times:
            magnitude = 10 ** rng.randint(-9, 12)
            rows.append({"time": t, "host": host, "region": rng.choice(["eu", "us", None]),
                         "usage": round(rng.uniform(-1, 1) * magnitude, 12), "procs": rng.randint(-5, 500)})
    return rows


@pytest.fixture
def both(influx):
    rows = generate()
    embedded = DataFusionSource()
    embedded.add_table("cpu", pa.table({
        "time": pa.array([r["time"] for r in rows], pa.int64()).cast(pa.timestamp("ns")),
        "host": [r["host"] for r in rows],
        "region": [r["region"] for r in rows],
        "usage": pa.array([r["usage"] for r in rows], pa.float64()),
        "procs": pa.array([r["procs"] for r in rows], pa.int64()),
    }))
    client = influx.client("db")
    points = []
    for r in rows:
        point = Point("cpu").tag("host", r["host"]).field("usage", r["usage"]).field("procs", r["procs"])
        if r["region"] is not None:
            point = point.tag("region", r["region"])
        points.append(point.time(r["time"], WritePrecision.NS))
    client.write(points)
    client.close()
    remote = InfluxDB3Source(influx.flight_url, "db", TOKEN)
    yield embedded, remote
    remote.close()


def plain(table: pa.Table) -> list[dict]:
    """Rows, with times as nanoseconds (datetime cannot hold them)."""
    columns = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names).to_pylist()


def same(left: pa.Table, right: pa.Table) -> None:
    assert left.column_names == right.column_names
    assert left.schema.types == right.schema.types
    a, b = plain(left), plain(right)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in x:
            if isinstance(x[key], float) and isinstance(y[key], float):
                assert math.isclose(x[key], y[key], rel_tol=1e-12, abs_tol=1e-300), (key, x, y)
            else:
                assert x[key] == y[key], (key, x, y)


@pytest.mark.parametrize("sql", [
    'SELECT * FROM "cpu" ORDER BY host, time',
    'SELECT host, count(*) AS n, sum(usage) AS s, min(procs) AS lo FROM "cpu" GROUP BY host ORDER BY host',
    "SELECT host, region FROM cpu WHERE region IS NULL ORDER BY host, time",
    "SELECT host, usage FROM cpu WHERE host = 'wéb 東京' AND time > TIMESTAMP '2024-05-01T11:55:00' ORDER BY time",
    "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'iox' "
    "ORDER BY column_name",
])
def test_plain_sql(both, sql):
    embedded, remote = both
    same(embedded.query(sql), remote.query(sql))


def test_schemas_match(both):
    embedded, remote = both
    assert embedded.schema() == remote.schema()


RULES = [
    'last(cpu.usage{host="web-1"}) > 0',
    "rule a { when avg(cpu.usage, 10m) > 0 group by host }",
    "rule b { when max(cpu.usage, 1h) - min(cpu.usage, 1h) > 1 group by host, region }",
    'rule c { when sum(cpu.procs{host=~"^w"}, 30m) / count(cpu.procs{host=~"^w"}, 30m) > 100 group by host }',
    "rule d { when stddev(cpu.usage, 1h) > 1 and median(cpu.usage, 1h) < 0 group by host }",
    "rule e { when pct_change(cpu.usage, 1h) < -5% or delta(cpu.procs, 1h) > 10 group by host }",
    "rule f { when rate(cpu.procs, 2h) > 0 group by region }",
    'rule g { when percentile(cpu.usage{host!="web-2"}, 90, 1h) > 0 group by host }',
    "rule h { when avg(cpu.usage, 5m) < 0.5 * avg(cpu.usage, 5m) offset 1h group by host }",
    "rule i { when absent(cpu.usage, 5m) group by host }",
    'rule j { when first(cpu.usage{host in ("web-1", "wéb 東京")}, 1h) > spread(cpu.usage, 1h) group by host }',
    "rule k { when count(cpu.usage{region=\"nowhere\"}, 5m) > 0 }",
]


@pytest.mark.parametrize("text", RULES)
def test_compiled_rules_give_the_same_rows_and_decisions(both, text):
    embedded, remote = both
    rule = monitors_dsl.compile_rule(text)
    for at in (T, T - 137 * S, T - 3600 * S):
        sql = rule.sql(at)
        left, right = embedded.query(sql), remote.query(sql)
        same(left, right)
        assert [rule.decide(r) for r in left.to_pylist()] == [rule.decide(r) for r in right.to_pylist()]
