"""The real influxdb3-python client against the test endpoint: writes over HTTP, reads back through Flight."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
from influxdb_client_3 import Point, WritePrecision
from influxdb_client_3.exceptions import InfluxDB3ClientQueryError, InfluxDBError

from tests.support.influx_server import TOKEN

TAG = pa.dictionary(pa.int32(), pa.string())
T0 = 1714564800 * 1_000_000_000  # 2024-05-01T12:00:00Z


def rows(client, sql):
    return client.query(sql).to_pylist()


def test_points_of_every_type_round_trip(influx, write_client):
    write_client.write([
        Point("weather").tag("city", "Zürich").tag("station", "東京 1")
        .field("temp", 21.5).field("count", 7).field("ok", True).field("note", 'said "hi" \\ twice')
        .time(T0, WritePrecision.NS),
        Point("weather").tag("city", "São Paulo").field("temp", -3.25).field("count", -2)
        .time(T0 + 10**9, WritePrecision.NS),
    ])
    write_client.write("weather,city=Oslo big=18446744073709551615u %d" % (T0 + 2 * 10**9))
    table = write_client.query('SELECT * FROM "weather" ORDER BY time')
    types = {f.name: f.type for f in table.schema}
    assert types == {"city": TAG, "station": TAG, "temp": pa.float64(), "count": pa.int64(), "ok": pa.bool_(),
                     "note": pa.string(), "big": pa.uint64(), "time": pa.timestamp("ns")}
    got = table.to_pylist()
    assert [r["city"] for r in got] == ["Zürich", "São Paulo", "Oslo"]
    assert got[0]["station"] == "東京 1" and got[0]["note"] == 'said "hi" \\ twice'
    assert (got[0]["temp"], got[0]["count"], got[0]["ok"]) == (21.5, 7, True)
    assert (got[1]["temp"], got[1]["count"], got[1]["station"]) == (-3.25, -2, None)
    assert got[2]["big"] == 2**64 - 1
    assert table.column("time").cast(pa.int64()).to_pylist() == [T0, T0 + 10**9, T0 + 2 * 10**9]


def test_escapes_in_names_survive(write_client):
    point = (Point("disk usage,%").tag("mount point", "/var, /tmp").tag("k=v", "a=b")
             .field("used space", 0.5).time(T0))
    write_client.write(point)
    assert rows(write_client, 'SELECT "mount point", "k=v", "used space" FROM "disk usage,%"') == [
        {"mount point": "/var, /tmp", "k=v": "a=b", "used space": 0.5}]


def test_default_write_goes_to_v2_with_ns(influx, write_client):
    write_client.write("m v=1 %d" % T0)
    assert influx.requests[-1] == {"method": "POST", "path": "/api/v2/write",
                                   "params": {"org": "default", "bucket": "db", "precision": "ns"}}


def test_v3_write_lp_with_precision(influx):
    client = influx.client("db3", write_use_v2_api=False)
    client.write("m,host=a v=2i 1714564800", write_precision=WritePrecision.S)
    request = influx.requests[-1]
    assert request["path"] == "/api/v3/write_lp"
    assert request["params"]["db"] == "db3" and request["params"]["precision"] == "second"
    table = client.query("SELECT host, v, time FROM m")
    assert table.to_pylist() == [{"host": "a", "v": 2, "time": datetime(2024, 5, 1, 12, 0)}]
    client.close()


def test_dict_records_and_second_precision(write_client):
    write_client.write({"measurement": "crypto", "tags": {"symbol": "BTC"}, "fields": {"price": 70123.5},
                        "time": datetime(2024, 5, 1, 12, 0, 5, tzinfo=timezone.utc)},
                       write_precision=WritePrecision.S)
    assert rows(write_client, "SELECT symbol, price, CAST(time AS BIGINT) AS t FROM crypto") == [
        {"symbol": "BTC", "price": 70123.5, "t": T0 + 5 * 10**9}]


def test_same_series_and_time_merge(write_client):
    write_client.write("m,h=a x=1,y=2 %d" % T0)
    write_client.write("m,h=a y=3 %d\nm,h=b x=9 %d" % (T0, T0))
    assert rows(write_client, "SELECT h, x, y FROM m ORDER BY h") == [
        {"h": "a", "x": 1.0, "y": 3.0}, {"h": "b", "x": 9.0, "y": None}]


def test_bad_lines_are_a_partial_write_with_the_line(write_client):
    with pytest.raises(InfluxDBError) as caught:
        write_client.write("m v=1 %d\nm v=oops %d\nm v=3 %d" % (T0, T0 + 1, T0 + 2))
    message = str(caught.value)
    assert "partial write of line protocol occurred" in message
    assert "line 2" in message and "v=oops" in message
    assert rows(write_client, "SELECT v FROM m ORDER BY time") == [{"v": 1.0}, {"v": 3.0}]


def test_field_type_conflict_is_refused(write_client):
    write_client.write("m v=1.5 %d" % T0)
    with pytest.raises(InfluxDBError, match="expected Float, got Integer"):
        write_client.write("m v=2i %d" % (T0 + 1))


def test_wrong_token_on_write_and_query(influx):
    client = influx.client("db", token="not-" + TOKEN)
    with pytest.raises(InfluxDBError, match="not authenticated"):
        client.write("m v=1 1")
    with pytest.raises(InfluxDB3ClientQueryError, match="not authenticated"):
        client.query("SELECT 1")
    client.close()
    assert influx.store.names() == []


def test_flight_is_configured_as_influxdb3(write_client):
    write_client.write("cpu,host=a usage=1 %d" % T0)
    assert rows(write_client, 'SELECT count(*) AS n FROM public.iox."cpu"') == [{"n": 1}]
    columns = rows(write_client, "SELECT table_catalog, table_schema, column_name, data_type "
                                 "FROM information_schema.columns WHERE table_name = 'cpu' ORDER BY column_name")
    assert [(c["table_catalog"], c["table_schema"], c["column_name"]) for c in columns] == [
        ("public", "iox", "host"), ("public", "iox", "time"), ("public", "iox", "usage")]
    assert columns[0]["data_type"] == "Dictionary(Int32, Utf8)"
    for sql in ('DROP TABLE "cpu"', 'INSERT INTO "cpu" (time, usage) VALUES (now(), 2.0)', "CREATE TABLE x (a INT)"):
        with pytest.raises(InfluxDB3ClientQueryError, match="not supported"):
            write_client.query(sql)
    assert rows(write_client, 'SELECT count(*) AS n FROM "cpu"') == [{"n": 1}]


def test_query_parameters(write_client):
    write_client.write("cpu,host=a usage=1 %d\ncpu,host=b usage=2 %d" % (T0, T0))
    table = write_client.query('SELECT usage FROM "cpu" WHERE host = $host', query_parameters={"host": "b"})
    assert table.to_pylist() == [{"usage": 2.0}]


def test_ping(influx, write_client):
    assert write_client.get_server_version() == "3.0.0-test"
