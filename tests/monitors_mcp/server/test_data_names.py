"""Names from the data: describe_data, and rule names checked against the source at create/update.

Through the SDK's client in memory and over stdio, against the embedded source (a data
directory) and the test InfluxDB 3 endpoint (Arrow Flight, the real influxdb3-python client).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from monitors_mcp.service import data_schema, engine_link
from monitors_mcp.store import Database
from tests.support.influx_server import InfluxServer

from tests.support.mcp_client import connect

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
SOURCE_ENV = ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE", "INFLUXDB3_AUTH_TOKEN")

CRYPTO = """time,symbol,price,volume
2025-01-01T00:00:00Z,BTC,69000.5,1
2025-01-01T00:01:00Z,BTC,69500,2
2025-01-01T00:02:00Z,BTC,70100,3
2025-01-01T00:00:00Z,ETH,3000,1
2025-01-01T00:01:00Z,ETH,3010,1
"""
CPU = """time,host,usage_user
2025-01-01T00:00:00Z,web-1,50.5
2025-01-01T00:05:00Z,web-2,60
"""
LINES = [
    "crypto,symbol=BTC price=69000,volume=1i 1735689600000000000",
    "crypto,symbol=BTC price=69500,volume=2i 1735689660000000000",
    "crypto,symbol=BTC price=70100,volume=3i 1735689720000000000",
    "crypto,symbol=ETH price=3000,volume=1i 1735689600000000000",
    "crypto,symbol=ETH price=3010,volume=1i 1735689660000000000",
    "cpu,host=web-1 usage_user=50 1735689600000000000",
    "cpu,host=web-2 usage_user=60 1735689900000000000",
]


@pytest.fixture
def no_source(monkeypatch):
    for name in SOURCE_ENV:
        monkeypatch.delenv(name, raising=False)
    data_schema.forget()
    yield
    data_schema.forget()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch, no_source) -> Path:
    (tmp_path / "crypto.csv").write_text(CRYPTO)
    (tmp_path / "cpu.csv").write_text(CPU)
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def influx(monkeypatch, no_source):
    with InfluxServer(token="names-token") as server:
        client = server.client("metrics")
        client.write(record="\n".join(LINES))
        client.close()
        monkeypatch.setenv("INFLUXDB3_HOST", server.flight_url)
        monkeypatch.setenv("INFLUXDB3_DATABASE", "metrics")
        monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", "names-token")
        yield server


@pytest.fixture(params=["embedded", "influxdb3"])
def source(request):
    """The same data on the embedded source and on the test InfluxDB 3 endpoint."""
    return request.getfixturevalue("data_dir" if request.param == "embedded" else "influx")


def _diagnostics(result) -> dict[str, dict]:
    return {d["code"]: d for d in result.structured_content.get("diagnostics", [])}


async def test_describe_data_lists_measurements_then_one_in_full(db: Database, secrets, alice: int, source) -> None:
    async with connect(db, secrets, alice) as client:
        listed = await client.call_tool("describe_data", {})
        assert not listed.is_error, listed.content
        assert listed.structured_content["measurements"] == ["cpu", "crypto"]
        assert "127.0.0.1" not in listed.structured_content["source"]  # the kind of source, not where it is
        one = await client.call_tool("describe_data", {"measurement": "crypto"})
    facts = one.structured_content["measurement"]
    assert facts["fields"] == {"price": "float", "volume": "integer"}
    (symbol,) = facts["tags"]
    assert symbol == {"name": "symbol", "values": ["BTC", "ETH"], "more_values": False}  # most frequent first
    assert facts["last_written_at"].startswith("2025-01-01T00:02:00")


async def test_describe_data_unknown_measurement_names_the_closest(db: Database, secrets, alice: int,
                                                                   data_dir) -> None:
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("describe_data", {"measurement": "cryptos"})
    assert result.is_error
    assert result.structured_content["code"] == "unknown_measurement"
    assert "'crypto'" in result.structured_content["error"]


async def test_tag_values_are_bounded_and_say_there_are_more(db: Database, secrets, alice: int, tmp_path: Path,
                                                             monkeypatch, no_source) -> None:
    rows = ["time,host,load"] + [f"2025-01-01T00:{i % 60:02d}:00Z,h{i:03d},1" for i in range(60)]
    rows += ["2025-01-01T01:00:00Z,h059,2", "2025-01-01T01:01:00Z,h059,3"]
    (tmp_path / "sys.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(tmp_path))
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("describe_data", {"measurement": "sys"})
    (host,) = result.structured_content["measurement"]["tags"]
    assert len(host["values"]) == 50 and host["more_values"] is True
    assert host["values"][0] == "h059"  # the most frequent value first


async def test_unknown_names_are_errors_at_create_and_update_unless_data_arrives_later(
        db: Database, secrets, alice: int, source) -> None:
    async with connect(db, secrets, alice) as client:
        bad = await client.call_tool("create_alert_rule", {"rule": "last(cryptos.price) > 1", "name": "a"})
        assert bad.is_error and bad.structured_content["code"] == "invalid_rule"
        found = _diagnostics(bad)["unknown-measurement"]
        assert found["severity"] == "error" and found["column"] == 6
        assert "`crypto`" in found["hint"] and "data_arrives_later" in found["hint"]
        field = await client.call_tool("create_alert_rule", {"rule": "last(crypto.prize) > 1", "name": "a"})
        assert _diagnostics(field)["unknown-field"]["severity"] == "error"
        assert "`price`" in _diagnostics(field)["unknown-field"]["hint"]
        later = await client.call_tool("create_alert_rule", {"rule": "last(cryptos.price) > 1", "name": "a",
                                                             "data_arrives_later": True})
        assert not later.is_error, later.content
        assert any("cryptos" in w for w in later.structured_content["warnings"])
        good = await client.call_tool("create_alert_rule", {"rule": "last(crypto.price) > 1", "name": "b"})
        assert not good.is_error
        update = await client.call_tool("update_alert_rule", {"rule": "b", "text": "last(crypto.volumes) > 1"})
        assert update.is_error and _diagnostics(update)["unknown-field"]["severity"] == "error"
        kept = await client.call_tool("get_alert_rule", {"rule": "b"})
        assert kept.structured_content["text"] == "last(crypto.price) > 1"
        update = await client.call_tool("update_alert_rule", {"rule": "b", "text": "last(crypto.volumes) > 1",
                                                              "data_arrives_later": True})
        assert not update.is_error


async def test_unknown_tag_value_is_a_warning_with_the_closest_value(db: Database, secrets, alice: int,
                                                                    source) -> None:
    rule = 'last(crypto.price{symbol="BTCUSD"}) > 70000'
    async with connect(db, secrets, alice) as client:
        checked = await client.call_tool("validate_alert_rule", {"rule": rule})
        assert checked.structured_content["valid"] is True
        found = _diagnostics(checked)["unknown-tag-value"]
        assert found["severity"] == "warning" and (found["line"], found["column"]) == (1, 26)
        assert 'did you mean "BTC"?' in found["hint"]
        stored = await client.call_tool("create_alert_rule", {"rule": rule, "name": "btc"})
        assert not stored.is_error
        assert any("BTCUSD" in w and '"BTC"' in w for w in stored.structured_content["warnings"])
        known = await client.call_tool("validate_alert_rule",
                                       {"rule": 'last(crypto.price{symbol in ("BTC", "ETH")}) > 1'})
        assert "unknown-tag-value" not in _diagnostics(known)


async def test_without_a_source_names_are_not_checked_and_the_result_says_why(
        db: Database, secrets, alice: int, no_source) -> None:
    async with connect(db, secrets, alice) as client:
        checked = await client.call_tool("validate_alert_rule", {"rule": "last(nothing.here) > 1"})
        assert checked.structured_content["valid"] is True
        assert any("not checked" in n and "MONITORS_ENGINE_DATA_DIR" in n for n in checked.structured_content["notes"])
        described = await client.call_tool("describe_data", {})
    assert described.is_error and described.structured_content["code"] == "no_source"
    assert "MONITORS_ENGINE_DATA_DIR" in described.structured_content["hint"]


async def test_without_the_engine_the_tools_say_what_to_install(db: Database, secrets, alice: int, data_dir,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(engine_link, "_loaded", [None])
    async with connect(db, secrets, alice) as client:
        described = await client.call_tool("describe_data", {})
        checked = await client.call_tool("validate_alert_rule", {"rule": "last(nothing.here) > 1"})
        preview = await client.call_tool("preview_alert_rule", {"rule": "last(nothing.here) > 1", "since": "1h"})
    for result in (described, preview):
        assert result.is_error and result.structured_content["code"] == "engine_not_installed"
        assert 'pip install "monitors-mcp[engine]"' in result.structured_content["hint"]
    assert any("not checked" in n and "monitors-mcp[engine]" in n for n in checked.structured_content["notes"])


async def test_over_stdio_names_are_looked_up_and_checked(db: Database, tmp_path: Path, data_dir) -> None:
    from cryptography.fernet import Fernet

    env = {"MONITORS_DATABASE_URL": db.url, "MONITORS_SECRET_KEY": Fernet.generate_key().decode(),
           "MONITORS_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "MONITORS_ENGINE_DATA_DIR": str(data_dir),
           "MONITORS_USER": f"local-{uuid.uuid4().hex[:8]}"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "monitors_mcp"], env=env, cwd=str(ROOT))
    with (tmp_path / "stderr.log").open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            described = await client.call_tool("describe_data", {"measurement": "cpu"})
            assert [t["values"] for t in described.structured_content["measurement"]["tags"]] == [["web-1", "web-2"]]
            bad = await client.call_tool("create_alert_rule", {"rule": "avg(cpu.usage, 5m) > 90", "name": "cpu"})
            assert bad.is_error and "`usage_user`" in _diagnostics(bad)["unknown-field"]["hint"]


def test_help_shows_the_data_source_settings() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "monitors_mcp", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0
    for setting in ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE", "INFLUXDB3_AUTH_TOKEN",
                    'pip install "monitors-mcp[engine]"'):
        assert setting in done.stdout


def test_the_server_reaches_the_engine_only_through_its_entry_point() -> None:
    import ast
    from importlib import metadata

    (entry,) = [e for e in metadata.entry_points(group=engine_link.ENTRY_POINT_GROUP) if e.name == "features"]
    assert entry.value == "engine.features:features"
    offenders = []
    for path in sorted((ROOT / "monitors_mcp").rglob("*.py")):
        if path.name == "demo.py":  # the `monitors demo` command: an entry point, which may import the engine
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "engine" or n.startswith("engine.")]
    assert offenders == []


async def test_instructions_prompt_and_tools_say_to_look_names_up(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        instructions = client.initialize_result.instructions if hasattr(client, "initialize_result") else None
        prompt = await client.get_prompt("write_alert_rule", {"request": "alert me if BTC goes above 70k"})
        tools = {t.name: t.description for t in (await client.list_tools()).tools}
    from monitors_mcp.server import INSTRUCTIONS

    assert "describe_data" in INSTRUCTIONS and (instructions is None or "describe_data" in instructions)
    text = prompt.messages[0].content.text
    assert text.index("describe_data") < text.index("validate_alert_rule")
    for tool in ("validate_alert_rule", "create_alert_rule"):
        assert "describe_data" in tools[tool]
