"""The embedded source presents CSV, Parquet and in-memory tables exactly as InfluxDB 3 presents a measurement."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.sources import DataFusionSource, Source, SourceError
from monitors_dsl import MeasurementSchema, Schema, validate

TAG = pa.dictionary(pa.int32(), pa.string())
TIME = pa.timestamp("ns")
T0 = 1714564800 * 1_000_000_000  # 2024-05-01T12:00:00Z

CPU_CSV = """time,host,region,usage,count,up
2024-05-01T12:00:00Z,web-1,eu,12.5,3,true
2024-05-01T12:01:00Z,web-2,us,80,4,false
2024-05-01T14:02:00+02:00,web-1,,,5,true
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path):
    write(tmp_path / "cpu.csv", CPU_CSV)
    table = pa.table({
        "time": pa.array([T0 // 1000, (T0 + 60 * 10**9) // 1000], pa.timestamp("us", tz="Europe/Paris")),
        "symbol": ["BTC", "ETH"],
        "price": pa.array([70000.5, 3000.25], pa.float32()),
        "volume": pa.array([1, 2], pa.uint32()),
    })
    pq.write_table(table, tmp_path / "crypto.parquet")
    write(tmp_path / "README.txt", "not data")
    return tmp_path


def test_is_a_source(data_dir):
    with DataFusionSource(data_dir) as source:
        assert isinstance(source, Source)
        assert source.measurements == ["cpu", "crypto"]
        source.ping()


def test_csv_types_are_influxdb3_types(data_dir):
    source = DataFusionSource(data_dir)
    table = source.query('SELECT * FROM "cpu" ORDER BY time')
    assert table.schema.field("time").type == TIME
    assert table.schema.field("host").type == TAG
    assert table.schema.field("region").type == TAG
    assert table.schema.field("usage").type == pa.float64()
    assert table.schema.field("count").type == pa.int64()
    assert table.schema.field("up").type == pa.bool_()
    rows = table.to_pylist()
    assert [r["host"] for r in rows] == ["web-1", "web-2", "web-1"]
    # the +02:00 offset is applied: 14:02+02:00 is 12:02 UTC; empty cells are nulls
    assert rows[2]["time"] == datetime(2024, 5, 1, 12, 2)
    assert rows[2]["region"] is None and rows[2]["usage"] is None
    assert rows[1]["usage"] == 80.0


def test_parquet_zone_aware_time_becomes_utc_and_numbers_widen(data_dir):
    source = DataFusionSource(data_dir)
    table = source.query('SELECT time, symbol, price, volume FROM public.iox."crypto" ORDER BY time')
    assert table.schema.types == [TIME, TAG, pa.float64(), pa.uint64()]
    assert table.column("time").cast(pa.int64()).to_pylist() == [T0, T0 + 60 * 10**9]
    assert table.column("price").to_pylist() == [70000.5, 3000.25]


def test_in_memory_table_and_explicit_tags():
    source = DataFusionSource()
    held = source.add_table("events", pa.table({
        "time": ["2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z"],
        "service": ["api", "db"],
        "message": ["started", "stopped"],
        "code": pa.array([1, -2], pa.int8()),
    }), tags=["service"])
    assert held.schema.field("message").type == pa.string()
    assert held.schema.field("service").type == TAG
    table = source.query("SELECT service, message, code FROM events ORDER BY time")
    assert table.schema.types == [TAG, pa.string(), pa.int64()]
    assert table.to_pylist() == [{"service": "api", "message": "started", "code": 1},
                                 {"service": "db", "message": "stopped", "code": -2}]


def test_add_table_replaces():
    source = DataFusionSource()
    source.add_table("m", pa.table({"time": pa.array([1], TIME), "v": [1.0]}))
    source.add_table("m", pa.table({"time": pa.array([1, 2], TIME), "v": [2.0, 3.0]}))
    assert source.query("SELECT sum(v) AS s FROM m").to_pylist() == [{"s": 5.0}]
    source.remove_table("m")
    with pytest.raises(SourceError) as caught:
        source.query("SELECT * FROM m")
    assert caught.value.kind == "not_found"


def test_empty_table_keeps_its_columns():
    source = DataFusionSource()
    source.add_table("quiet", pa.table({"time": pa.array([], TIME), "host": pa.array([], pa.string()),
                                        "v": pa.array([], pa.float64())}))
    table = source.query("SELECT * FROM quiet")
    assert table.num_rows == 0 and table.schema.field("host").type == TAG


def test_schema_discovery_feeds_validate(data_dir):
    schema = DataFusionSource(data_dir).schema()
    assert schema == Schema({
        "cpu": MeasurementSchema({"count": "integer", "up": "boolean", "usage": "float"},
                                 frozenset({"host", "region"})),
        "crypto": MeasurementSchema({"price": "float", "volume": "unsigned"}, frozenset({"symbol"})),
    })
    assert validate('last(crypto.price{symbol="BTC"}) > 70000', schema=schema) == []
    problems = validate('last(crypto.prise{symbol="BTC"}) > 70000', schema=schema)
    assert problems and any("price" in (d.hint or "") + d.message for d in problems)


def test_information_schema_as_influxdb3(data_dir):
    rows = DataFusionSource(data_dir).query(
        "SELECT table_catalog, table_schema, column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'cpu' AND column_name IN ('host', 'time')  ORDER BY column_name").to_pylist()
    assert [(r["table_catalog"], r["table_schema"], r["column_name"]) for r in rows] == [
        ("public", "iox", "host"), ("public", "iox", "time")]
    assert rows[0]["data_type"] == "Dictionary(Int32, Utf8)"
    assert rows[1]["data_type"].startswith("Timestamp(")


@pytest.mark.parametrize("sql", [
    "CREATE TABLE t AS SELECT 1",
    'INSERT INTO "cpu" (time, usage) VALUES (now(), 1.0)',
    'DELETE FROM "cpu"',
    'DROP TABLE "cpu"',
    "CREATE VIEW v AS SELECT 1",
    "SET datafusion.execution.batch_size = 1",
])
def test_refuses_ddl_and_dml(data_dir, sql):
    source = DataFusionSource(data_dir)
    with pytest.raises(SourceError) as caught:
        source.query(sql)
    assert caught.value.kind in ("read_only", "query")
    assert str(caught.value).startswith(f"data directory {data_dir}: ")
    assert source.query('SELECT count(*) AS n FROM "cpu"').to_pylist() == [{"n": 3}]


def test_unknown_table_and_column(data_dir):
    source = DataFusionSource(data_dir)
    with pytest.raises(SourceError) as table:
        source.query('SELECT * FROM "disk"')
    with pytest.raises(SourceError) as column:
        source.query('SELECT "nope" FROM "cpu"')
    for caught, name in ((table, "disk"), (column, "nope")):
        assert caught.value.kind == "not_found"
        assert caught.value.source == f"data directory {data_dir}"
        assert name in caught.value.detail


def test_unquoted_names_fold_to_lower_case(data_dir):
    source = DataFusionSource(data_dir)
    source.add_table("Mixed", pa.table({"time": pa.array([1], TIME), "V": [1.0]}))
    assert source.query('SELECT "V" FROM "Mixed"').num_rows == 1
    with pytest.raises(SourceError):
        source.query("SELECT V FROM Mixed")


def test_single_file(data_dir):
    source = DataFusionSource(data_dir / "cpu.csv")
    assert source.name == f"data file {data_dir / 'cpu.csv'}"
    assert source.measurements == ["cpu"]


# ---- files that are not what they claim -----------------------------------------------------

@pytest.mark.parametrize("name, content, words", [
    ("cpu.csv", "host,usage\nweb-1,1\n", ["no `time` column", "host, usage"]),
    ("cpu.csv", "time,usage\n2024-05-01T12:00:00Z,1\nlast tuesday,2\n", ["line 3", "last tuesday", "RFC 3339"]),
    ("cpu.csv", "time,usage\n2024-05-01T12:00:00Z,1,9\n", ["not a valid CSV file", "Expected 2 columns"]),
    ("cpu.csv", "", ["not a valid CSV file"]),
    ("cpu.csv", "time,usage\n,1\n", ["empty value"]),
    ("cpu.parquet", "this is not parquet at all", ["not a valid Parquet file"]),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, words):
    path = write(tmp_path / name, content)
    with pytest.raises(SourceError) as caught:
        DataFusionSource(tmp_path)
    message = str(caught.value)
    assert caught.value.kind == "bad_data"
    assert str(path) in message
    for word in words:
        assert word in message


def test_parquet_without_time(tmp_path):
    pq.write_table(pa.table({"when": [1, 2], "v": [1.0, 2.0]}), tmp_path / "m.parquet")
    with pytest.raises(SourceError, match=r"m\.parquet: not valid data: no `time` column \(columns: when, v\)"):
        DataFusionSource(tmp_path)


def test_parquet_time_of_wrong_type(tmp_path):
    pq.write_table(pa.table({"time": [1.5], "v": [1.0]}), tmp_path / "m.parquet")
    with pytest.raises(SourceError, match="the `time` column has type double"):
        DataFusionSource(tmp_path)


def test_unsupported_column_type():
    source = DataFusionSource()
    with pytest.raises(SourceError, match="field column `xs` has type list<item: int64>"):
        source.add_table("m", pa.table({"time": pa.array([1], TIME), "xs": [[1, 2]]}))


def test_directory_problems(tmp_path):
    with pytest.raises(SourceError, match="no such directory"):
        DataFusionSource(tmp_path / "missing")
    with pytest.raises(SourceError, match="no data files"):
        DataFusionSource(tmp_path)
    write(tmp_path / "cpu.csv", CPU_CSV)
    pq.write_table(pa.table({"time": pa.array([1], TIME), "v": [1.0]}), tmp_path / "cpu.parquet")
    with pytest.raises(SourceError, match="measurement 'cpu' has two files"):
        DataFusionSource(tmp_path)


def test_closed_source_refuses_queries(data_dir):
    source = DataFusionSource(data_dir)
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.query("SELECT 1")


def test_source_error_pickles():
    import pickle

    error = SourceError("data file x.csv", "bad_data", "row 2: nope")
    again = pickle.loads(pickle.dumps(error))
    assert (again.source, again.kind, again.detail, str(again)) == (error.source, error.kind, error.detail,
                                                                    str(error))


def test_measurement_names_are_kept_exactly():
    source = DataFusionSource()
    for name in ("crypto.price", 'we"ird', "Ünïcode m"):
        source.add_table(name, pa.table({"time": pa.array([1], TIME), "v": [1.0]}))
    assert set(source.schema().measurements) == {"crypto.price", 'we"ird', "Ünïcode m"}
    assert source.query('SELECT v FROM "crypto.price"').num_rows == 1
    assert source.query('SELECT v FROM "we""ird"').num_rows == 1


def test_parquet_with_influxdb3_column_metadata_keeps_string_fields(tmp_path):
    def marked(name, kind, role):
        return pa.field(name, kind, metadata={"iox::column::type": role})

    schema = pa.schema([
        marked("time", pa.timestamp("ns"), "iox::column_type::timestamp"),
        marked("service", pa.string(), "iox::column_type::tag"),
        marked("message", pa.string(), "iox::column_type::field::string"),
    ])
    pq.write_table(pa.table({"time": pa.array([T0], pa.timestamp("ns")), "service": ["api"],
                             "message": ["started"]}, schema=schema), tmp_path / "logs.parquet")
    assert DataFusionSource(tmp_path).schema().measurements["logs"] == MeasurementSchema(
        {"message": "string"}, frozenset({"service"}))


def test_public_names():
    import engine.sources as sources

    assert sorted(sources.__all__) == sorted([
        "Source", "SourceError", "DataFusionSource", "InfluxDB3Source", "SCHEMA_SQL", "schema_from_columns",
        "parse_rfc3339", "parse_rfc3339_datetime", "format_rfc3339"])
    for name in sources.__all__:
        assert getattr(sources, name) is not None


def test_engine_sources_do_not_import_mcp():
    import subprocess
    import sys

    code = "import sys, engine.sources, engine.commands; sys.exit(1 if any(m == 'mcp' or m.startswith('mcp.') " \
           "for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_schema_from_influxdb3_type_names():
    from engine.sources import schema_from_columns

    rows = [("cpu", "host", "Dictionary(Int32, Utf8)"), ("cpu", "time", "Timestamp(Nanosecond, None)"),
            ("cpu", "usage", "Float64"), ("cpu", "n", "Int64"), ("cpu", "u", "UInt64"), ("cpu", "ok", "Boolean"),
            ("cpu", "s", "Utf8"), ("cpu", "odd", "List(Int64)")]
    schema = schema_from_columns({"table_name": t, "column_name": c, "data_type": d} for t, c, d in rows)
    assert schema.measurements["cpu"] == MeasurementSchema(
        {"n": "integer", "ok": "boolean", "s": "string", "u": "unsigned", "usage": "float"}, frozenset({"host"}))
