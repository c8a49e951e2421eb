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


async def test_preview_shows_held_and_late_notices_per_channel(db: Database, secrets, alice: int,  # noqa: F811
                                                               data_dir) -> None:
    """The stored rule a previewed rule depends on runs alongside (its firing holds the preview's notices,
    its resolution releases them late), and the caller's channels' mute windows hold as live."""
    from monitors_mcp.service import Workspace, data_schema

    lines = ["time,host,down"] + [f"{(NOW - timedelta(minutes=120 - m)).isoformat().replace('+00:00', 'Z')},a,"
                                  f"{1 if 20 <= m < 45 else 0}" for m in range(120)]
    (data_dir / "db.csv").write_text("\n".join(lines) + "\n")
    data_schema.forget()
    muted_from, muted_to = NOW - timedelta(minutes=80), NOW - timedelta(minutes=50)  # minutes 40 to 70
    ws = Workspace(db, alice, secrets)
    ws.channels.add("hook", "json://receiver.example/")
    ws.channels.add("pager", "json://receiver.example/",
                    {"mute_during": f"{muted_from:%H:%M}-{muted_to:%H:%M}"})
    ws.rules.create("rule db_down {\n    when last(db.down, 1m) > 0\n    notify hook\n}")
    async with connect(db, secrets, alice) as client:
        result = await client.call_tool("preview_alert_rule", {
            "rule": 'rule btc {\n    when last(crypto.price{symbol="BTC"}, 1m) > 70000\n    notify hook, pager\n'
                    '    depends on db_down\n}', "since": "2h"})
    data_schema.forget()
    assert not result.is_error, result.content
    seen = [(n["kind"], n["late"], [(d["channel"], d["status"], d["reason"]) for d in n["deliveries"]])
            for n in result.structured_content["notifications"]]
    # minute 30 BTC fires while db_down fires: held on both; minute 45 db_down resolves: hook told late,
    # pager still muted (until minute 70); minute 60 BTC resolves: hook told, pager's held firing stays held
    assert seen[0] == ("firing", False, [("hook", "suppressed", "suppressed by rule db_down"),
                                         ("pager", "suppressed", "suppressed by rule db_down")])
    assert ("firing", True, [("hook", "pending", None)]) in seen
    assert seen[-1][0] == "resolved" and ("hook", "pending", None) in seen[-1][2]
    assert ("pager", "muted", "muted by channel pager") in seen[-1][2]
