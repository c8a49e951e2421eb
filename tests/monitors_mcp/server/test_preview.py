"""preview_alert_rule through the SDK client: summary, chart image, and clear errors."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from monitors_mcp.store import Database
from tests.support.mcp_client import connect, snapshot

pytestmark = pytest.mark.anyio

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    lines = ["time,symbol,price"]
    for minute in range(120):
        at = (NOW - timedelta(minutes=120 - minute)).isoformat().replace("+00:00", "Z")
        lines.append(f"{at},BTC,{69_000 + (2_000 if 30 <= minute < 60 else 0)}")
    (tmp_path / "crypto.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(tmp_path))
    return tmp_path


async def test_preview_summarises_and_draws(db: Database, secrets, alice: int, data_dir) -> None:  # noqa: F811
    before = snapshot(db)
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("preview_alert_rule", {
            "rule": 'last(crypto.price{symbol="BTC"}, 1m) > 70000', "since": "2h"})
    assert not result.is_error, result.content
    out = result.structured_content
    assert [(t["from"], t["to"]) for t in out["transitions"]] == [("inactive", "firing"), ("firing", "inactive")]
    assert [n["kind"] for n in out["notifications"]] == ["firing", "resolved"]
    assert out["evaluations"] in (120, 121)  # every minute in the last two hours
    (image,) = [c for c in result.content if c.type == "image"]
    assert image.mime_type == "image/png" and base64.b64decode(image.data)[:4] == b"\x89PNG"
    assert snapshot(db) == before  # a preview stores nothing


@pytest.mark.parametrize(("arguments", "message"), [
    ({"rule": "lats(crypto.price) > 1", "since": "1h"}, "unknown function"),
    ({"rule": "last(crypto.price) > 1", "since": "yesterday"}, "RFC 3339"),
    ({"rule": "last(crypto.price) > 1", "since": "1h", "until": "2h"}, "until must be after since"),
    ({"rule": "rule r {\n when last(crypto.price) > 1\n every 10m\n}", "since": "60d"}, "at most 31 days"),
    ({"rule": "last(crypto.price) > 1", "since": "60d"}, "at most 7d"),  # every minute: 10,080 evaluations
])
async def test_preview_bad_input_is_a_clear_error(db: Database, secrets, alice: int, data_dir, arguments,  # noqa: F811
                                                  message) -> None:
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("preview_alert_rule", arguments)
    assert result.is_error
    assert message in result.content[0].text


async def test_preview_without_a_source_says_how_to_configure_one(db: Database, secrets, alice: int,  # noqa: F811
                                                                   monkeypatch) -> None:
    for name in ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("preview_alert_rule", {"rule": "last(a.b) > 1", "since": "1h"})
    assert result.is_error and "MONITORS_ENGINE_DATA_DIR" in result.content[0].text


async def test_names_are_checked_against_the_configured_source(db: Database, secrets, alice: int,  # noqa: F811
                                                               data_dir) -> None:
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("validate_alert_rule", {"rule": 'last(crypto.prices{symbl="BTC"}) > 1'})
    found = {d["code"]: d for d in result.structured_content["diagnostics"]}
    assert found["unknown-field"]["hint"].startswith("did you mean `price`?")
    assert found["unknown-tag"]["hint"].startswith("did you mean `symbol`?")
