"""InfluxDB3Source against the test endpoint: answers, schema, and one clear SourceError per failure."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from engine.sources import InfluxDB3Source, Source, SourceError
from monitors_dsl import MeasurementSchema, validate

from tests.support.influx_server import TOKEN
from tests.support.ports import free_port  # noqa: F401

T0 = 1714564800 * 1_000_000_000


@pytest.fixture
def loaded(influx, write_client):
    write_client.write("\n".join([
        "cpu,host=web-1,region=eu usage=12.5,procs=3i %d" % T0,
        "cpu,host=web-2,region=us usage=80,procs=4i %d" % (T0 + 60 * 10**9),
        'crypto,symbol=BTC price=70000.5,volume=12u,halted=f,note="ok" %d' % T0,
    ]))
    return influx


def source_for(influx, **options):
    return InfluxDB3Source(influx.flight_url, "db", TOKEN, **options)


def test_query_and_types(loaded):
    with source_for(loaded) as source:
        assert isinstance(source, Source)
        source.ping()
        table = source.query('SELECT host, usage, procs, time FROM "cpu" ORDER BY time')
        assert table.schema.types == [pa.dictionary(pa.int32(), pa.string()), pa.float64(), pa.int64(),
                                      pa.timestamp("ns")]
        assert table.column("usage").to_pylist() == [12.5, 80.0]


def test_schema_discovery_feeds_validate(loaded):
    schema = source_for(loaded).schema()
    assert schema.measurements["cpu"] == MeasurementSchema({"procs": "integer", "usage": "float"},
                                                           frozenset({"host", "region"}))
    assert schema.measurements["crypto"] == MeasurementSchema(
        {"halted": "boolean", "note": "string", "price": "float", "volume": "unsigned"}, frozenset({"symbol"}))
    assert validate('avg(cpu.usage{host="web-1"}) > 50', schema=schema) == []
    assert validate('avg(cpu.usag{host="web-1"}) > 50', schema=schema) != []


def test_wrong_token(loaded):
    source = InfluxDB3Source(loaded.flight_url, "db", "wrong-token")
    with pytest.raises(SourceError) as caught:
        source.query("SELECT 1")
    error = caught.value
    assert error.kind == "unauthorized"
    assert error.source == f"influxdb3 {loaded.flight_url} database db"
    assert error.detail == "the request was not authenticated: invalid token"  # the server's words, nothing else
    assert "wrong-token" not in str(error)


def test_server_down_is_unreachable():
    source = InfluxDB3Source(f"http://127.0.0.1:{free_port()}", "db", TOKEN, timeout=5)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        source.ping()
    assert caught.value.kind == "unreachable"
    assert str(caught.value).startswith(f"influxdb3 http://127.0.0.1:")
    assert ": unreachable: " in str(caught.value)
    assert time.monotonic() - started < 5


def test_server_stopped_after_start(influx):
    source = source_for(influx)
    influx.stop()
    with pytest.raises(SourceError) as caught:
        source.query("SELECT 1")
    assert caught.value.kind == "unreachable"


def test_slow_server_times_out(loaded):
    loaded.delay = 5.0
    source = source_for(loaded, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        source.query('SELECT * FROM "cpu"')
    assert caught.value.kind == "timeout"
    assert "no answer within 0.3s" in str(caught.value)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("sql, name", [('SELECT * FROM "disk"', "disk"), ('SELECT "nope" FROM "cpu"', "nope")])
def test_unknown_table_or_column(loaded, sql, name):
    with pytest.raises(SourceError) as caught:
        source_for(loaded).query(sql)
    assert caught.value.kind == "not_found"
    assert caught.value.cause == "unknown database, table or column"
    assert name in caught.value.detail


def test_unknown_database(loaded):
    with pytest.raises(SourceError) as caught:
        InfluxDB3Source(loaded.flight_url, "nodb", TOKEN).ping()
    assert caught.value.kind == "not_found" and "nodb" in caught.value.detail


def test_writes_are_refused(loaded):
    with pytest.raises(SourceError) as caught:
        source_for(loaded).query('DROP TABLE "cpu"')
    assert caught.value.kind == "read_only"


def test_configuration_from_the_environment(loaded):
    env = {"INFLUXDB3_HOST": loaded.flight_url, "INFLUXDB3_DATABASE": "db", "INFLUXDB3_AUTH_TOKEN": TOKEN}
    source = InfluxDB3Source(env=env)
    assert source.query('SELECT count(*) AS n FROM "cpu"').to_pylist() == [{"n": 2}]
    assert source.name == f"influxdb3 {loaded.flight_url} database db"


def test_arguments_win_over_the_environment(loaded, monkeypatch):
    monkeypatch.setenv("INFLUXDB3_HOST", "http://127.0.0.1:1")
    monkeypatch.setenv("INFLUXDB3_DATABASE", "other")
    monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", "wrong")
    assert InfluxDB3Source(loaded.flight_url, "db", TOKEN).query("SELECT 1 AS one").to_pylist() == [{"one": 1}]


@pytest.mark.parametrize("kwargs, words", [
    ({"database": "db"}, "no host"),
    ({"host": "http://127.0.0.1:8181"}, "no database"),
    ({"host": "ftp://example", "database": "db"}, "bad host"),
    ({"host": "http://127.0.0.1:8181", "database": "db", "timeout": 0}, "timeout must be a positive number"),
    ({"host": "http://127.0.0.1:8181", "database": "db", "timeout": "soon"}, "got 'soon'"),
])
def test_bad_configuration(kwargs, words):
    with pytest.raises(SourceError) as caught:
        InfluxDB3Source(env={}, **kwargs)
    assert caught.value.kind == "config"
    assert words in str(caught.value)


def test_closed_source(loaded):
    source = source_for(loaded)
    source.close()
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.query("SELECT 1")
