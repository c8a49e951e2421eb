"""The examples of docs/examples.md written from looked-up names hold against the data they were looked up in.

Through the SDK client, with the embedded source pointed at docs/examples/data: describe_data shows
every measurement, field and tag value the rule uses, and validate_alert_rule checks the names against
the data and reports nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import monitors_dsl
from monitors_mcp.service import data_schema
from monitors_mcp.store import Database
from tests.support.examples import PAIRS

from tests.support.mcp_client import connect

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data"
DISCOVERY = [(words, rule) for words, rule in PAIRS if "describe_data" in words]


@pytest.fixture
def example_data(monkeypatch):
    for name in ("INFLUXDB3_HOST", "INFLUXDB3_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(DATA))
    data_schema.forget()
    yield DATA
    data_schema.forget()


async def test_discovery_examples_hold_against_their_data(db: Database, secrets, alice: int, example_data) -> None:
    assert len(DISCOVERY) >= 5
    async with connect(db, secrets, alice) as client:
        listed = (await client.call_tool("describe_data", {})).structured_content["measurements"]
        described = {}
        for name in listed:
            result = await client.call_tool("describe_data", {"measurement": name})
            described[name] = result.structured_content["measurement"]
        for words, text in DISCOVERY:
            checked = (await client.call_tool("validate_alert_rule", {"rule": text})).structured_content
            assert checked["valid"] and checked["diagnostics"] == [], (words, checked["diagnostics"])
            assert not any("not checked" in note for note in checked["notes"]), words
            for rule in monitors_dsl.parse(text):
                for _, cond in rule.conditions:
                    for agg in monitors_dsl.ast.aggregates(cond):
                        facts = described[agg.selector.measurement]
                        assert agg.selector.field in facts["fields"], words
                        values = {t["name"]: t["values"] for t in facts["tags"]}
                        for flt in agg.selector.filters:
                            assert flt.value in values[flt.tag], (words, flt)
