"""The everyday operations through the SDK client: silences, rename only when asked, preview of a stored
rule, each alert's notifications, list_alerts(since), flapping series, the common error shape."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from monitors_mcp.service import UserService, data_schema
from monitors_mcp.store import Alert, Database, NotificationChannel, NotificationOutbox, RuleState
from monitors_mcp.store.types import utcnow

from tests.support.mcp_client import BTC, add_alerts, connect, series_key, snapshot

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def no_source(monkeypatch):
    for name in ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    data_schema.forget()


async def test_silence_later_extend_list_and_end_early(db: Database, secrets, alice: int) -> None:
    now = utcnow()
    saturday, monday = now + timedelta(days=3), now + timedelta(days=5)
    async with connect(db, secrets, alice) as client:
        await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
        weekend = await client.call_tool("silence_alert_rule", {
            "rule": "btc", "start": _iso(saturday), "until": _iso(monday), "comment": "the weekend"})
        assert not weekend.is_error, weekend.content
        out = weekend.structured_content
        assert out["active"] is False and out["extended"] is False
        assert abs((_at(out["starts_at"]) - saturday).total_seconds()) < 1
        # an overlapping span extends the silence instead of adding a second one
        longer = await client.call_tool("silence_alert_rule", {
            "rule": "btc", "start": _iso(monday - timedelta(hours=1)), "duration": "1d"})
        assert longer.structured_content["extended"] is True
        assert longer.structured_content["id"] == out["id"]
        assert abs((_at(longer.structured_content["ends_at"]) - (monday + timedelta(hours=23))).total_seconds()) < 1
        assert longer.structured_content["comment"] == "the weekend"
        # one that merely touches it is merged too; a separate one is its own
        now_silence = await client.call_tool("silence_alert_rule", {"rule": "btc", "duration": "2h"})
        assert now_silence.structured_content["active"] is True and now_silence.structured_content["extended"] is False
        listed = (await client.call_tool("list_silences", {"rule": "btc"})).structured_content["silences"]
        assert [s["id"] for s in listed] == [now_silence.structured_content["id"], out["id"]]
        got = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content
        assert got["silenced_until"] is not None
        # ending early: the active one ends now, the one to come is cancelled
        ended = await client.call_tool("end_silence", {"silence": now_silence.structured_content["id"]})
        assert ended.structured_content["active"] is False
        cancelled = await client.call_tool("end_silence", {"silence": out["id"]})
        assert cancelled.structured_content["starts_at"] == cancelled.structured_content["ends_at"]
        assert (await client.call_tool("list_silences", {})).structured_content["silences"] == []
        got = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content
        assert got["silenced_until"] is None
        again = await client.call_tool("end_silence", {"silence": out["id"]})
        assert not again.is_error  # ending twice changes nothing


async def test_silences_are_private(db: Database, secrets, alice: int, bob: int) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
        silence = (await client.call_tool("silence_alert_rule", {"rule": "btc", "duration": "1h"})).structured_content
    async with connect(db, secrets, bob) as client:
        assert (await client.call_tool("list_silences", {})).structured_content["silences"] == []
        stolen = await client.call_tool("end_silence", {"silence": silence["id"]})
        assert stolen.is_error and stolen.structured_content["code"] == "not_found"


async def test_update_renames_only_when_asked(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("create_alert_rule", {"rule": "rule btc { when last(crypto.price) > 1 }"})
        before = snapshot(db)
        refused = await client.call_tool("update_alert_rule", {
            "rule": "btc", "text": "rule bitcoin { when last(crypto.price) > 2 }"})
        assert refused.is_error
        body = refused.structured_content
        assert body["code"] == "rename_not_requested" and "rename=true" in body["hint"]
        assert "rule btc {" in body["hint"]
        assert snapshot(db) == before
        renamed = await client.call_tool("update_alert_rule", {
            "rule": "btc", "text": "rule bitcoin { when last(crypto.price) > 2 }", "rename": True})
        assert renamed.structured_content["name"] == "bitcoin"
        same = await client.call_tool("update_alert_rule", {"rule": "bitcoin", "text": "last(crypto.price) > 3"})
        assert same.structured_content["name"] == "bitcoin"  # a bare condition keeps the name


async def test_preview_by_stored_id_or_name(db: Database, secrets, alice: int, tmp_path, monkeypatch) -> None:
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    lines = ["time,symbol,price"] + [
        f"{_iso(now - timedelta(minutes=60 - m))},BTC,{71_000 if 20 <= m < 40 else 69_000}" for m in range(60)]
    (tmp_path / "crypto.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(tmp_path))
    data_schema.forget()
    async with connect(db, secrets, alice) as client:
        created = await client.call_tool("create_alert_rule", {
            "rule": 'last(crypto.price{symbol="BTC"}, 1m) > 70000', "name": "btc"})
        by_name = await client.call_tool("preview_alert_rule", {"rule": "btc", "since": "1h"})
        by_id = await client.call_tool("preview_alert_rule", {"rule": created.structured_content["id"], "since": "1h"})
        missing = await client.call_tool("preview_alert_rule", {"rule": "nope", "since": "1h"})
    assert not by_name.is_error, by_name.content
    assert [n["kind"] for n in by_name.structured_content["notifications"]] == ["firing", "resolved"]
    assert by_id.structured_content["transitions"] == by_name.structured_content["transitions"]
    assert missing.is_error and missing.structured_content["code"] == "not_found"
    data_schema.forget()


async def test_preview_errors_have_the_common_shape(db: Database, secrets, alice: int, no_source) -> None:
    async with connect(db, secrets, alice) as client:
        too_long = await client.call_tool("preview_alert_rule", {"rule": BTC, "since": "60d"})
        no_source = await client.call_tool("preview_alert_rule", {"rule": BTC, "since": "1h"})
        unknown = await client.call_tool("no_such_tool", {})
    assert too_long.structured_content["code"] == "preview_too_long" and too_long.structured_content["hint"]
    assert no_source.structured_content["code"] == "no_source"
    assert "MONITORS_ENGINE_DATA_DIR" in no_source.structured_content["hint"]
    assert unknown.is_error and unknown.structured_content["code"] == "unknown_tool"


def _outbox(db: Database, owner: int, rule_id: int, alert_id: int, channel_id: int | None, **row) -> None:
    with db.session() as session:
        session.add(NotificationOutbox(idempotency_key=uuid.uuid4().hex, owner_id=owner, rule_id=rule_id,
                                       alert_id=alert_id, channel_id=channel_id, created_at=utcnow(), **row))


async def test_alerts_show_each_notification_with_its_status(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("add_notification_channel", {"name": "desk", "apprise_url": "jsons://example.com/x"})
        rule = (await client.call_tool("create_alert_rule", {
            "rule": "rule btc { when last(crypto.price) > 1 notify desk }"})).structured_content
        (alert_id,) = add_alerts(db, rule["id"], alice, 1)
        with db.session() as session:
            channel_id = session.query(NotificationChannel.id).filter_by(owner_id=alice, name="desk").scalar()
        later = utcnow() + timedelta(minutes=5)
        _outbox(db, alice, rule["id"], alert_id, channel_id, kind="firing", status="sent", sent_at=utcnow(),
                payload={"channel": "desk"})
        _outbox(db, alice, rule["id"], alert_id, channel_id, kind="repeat", status="pending", next_attempt_at=later,
                last_error="HTTP 503 from the receiver", payload={"channel": "desk"})
        _outbox(db, alice, rule["id"], alert_id, None, kind="firing", status="failed",
                last_error="no notification channel named 'pager'", payload={"channel": "pager"})
        _outbox(db, alice, rule["id"], alert_id, channel_id, kind="repeat", status="silenced",
                payload={"channel": "desk"})
        listed = (await client.call_tool("list_alerts", {})).structured_content["alerts"]
        acked = (await client.call_tool("acknowledge_alert", {"alert": alert_id})).structured_content
    (alert,) = listed
    by_status = {n["status"]: n for n in alert["notifications"]}
    assert set(by_status) == {"sent", "pending", "failed", "silenced"}
    assert by_status["sent"]["channel"] == "desk" and by_status["sent"]["reason"] is None
    assert by_status["pending"]["reason"] == "HTTP 503 from the receiver"
    assert abs((_at(by_status["pending"]["next_attempt_at"]) - later).total_seconds()) < 1
    assert by_status["failed"]["channel"] == "pager" and "pager" in by_status["failed"]["reason"]
    assert by_status["silenced"]["reason"] == "the rule was silenced"
    assert len(acked["notifications"]) == 4


async def test_get_alert_rule_shows_flapping_series_and_open_alert_notifications(db: Database, secrets,
                                                                                alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        rule = (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).structured_content
        (alert_id,) = add_alerts(db, rule["id"], alice, 1)
        since = utcnow() - timedelta(minutes=7)
        with db.session() as session:
            for labels, flapping in (({"symbol": "BTC"}, True), ({"symbol": "ETH"}, False)):
                session.add(RuleState(rule_id=rule["id"], series_key=series_key(labels), labels=labels,
                                      state="firing", severity="critical", since=since,
                                      alert_id=alert_id if flapping else None,
                                      machine={"flapping": flapping, "flapping_since": _iso(since) if flapping
                                               else None, "changes": []}))
        _outbox(db, alice, rule["id"], alert_id, None, kind="firing", status="suppressed", payload={"channel": "x"})
        got = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content
    series = {s["labels"]["symbol"]: s for s in got["series"]}
    assert abs((_at(series["BTC"]["flapping_since"]) - since).total_seconds()) < 1
    assert series["ETH"]["flapping_since"] is None
    assert [n["status"] for n in series["BTC"]["notifications"]] == ["suppressed"]


async def test_list_alerts_since_means_firing_at_any_time_since(db: Database, secrets, alice: int) -> None:
    now = utcnow()
    async with connect(db, secrets, alice) as client:
        rule = (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).structured_content
        with db.session() as session:
            def alert(name: str, started: timedelta, resolved: timedelta | None) -> Alert:
                labels = {"case": name}
                return Alert(rule_id=rule["id"], owner_id=alice, series_key=series_key(labels), labels=labels,
                             severity="warning", state="resolved" if resolved is not None else "firing",
                             started_at=now - started, resolved_at=None if resolved is None else now - resolved)
            session.add_all([
                alert("old, still firing", timedelta(days=3), None),
                alert("old, resolved an hour ago", timedelta(days=2), timedelta(hours=1)),
                alert("old, resolved two days ago", timedelta(days=3), timedelta(days=2)),
                alert("started an hour ago", timedelta(hours=1), None),
            ])
        recent = (await client.call_tool("list_alerts", {"since": "24h"})).structured_content["alerts"]
        firing = (await client.call_tool("list_alerts", {"since": "24h", "state": "firing"})).structured_content
    assert sorted(a["labels"]["case"] for a in recent) == [
        "old, resolved an hour ago", "old, still firing", "started an hour ago"]
    assert sorted(a["labels"]["case"] for a in firing["alerts"]) == ["old, still firing", "started an hour ago"]


async def test_validate_and_create_say_who_is_told(db: Database, secrets, alice: int, no_source) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("add_notification_channel", {"name": "trading_slack",
                                                            "apprise_url": "jsons://example.com/x"})
        checked = await client.call_tool("validate_alert_rule", {
            "rule": "rule btc {\n  when last(crypto.price) > 1\n  notify trading_slak\n}"})
        (found,) = checked.structured_content["diagnostics"]
        assert (found["code"], found["line"], found["column"]) == ("unknown-channel", 3, 10)
        assert "did you mean `trading_slack`?" in found["hint"]
        quiet = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "quiet"})
        assert any("nobody is told" in note for note in quiet.structured_content["notes"])
        told = await client.call_tool("create_alert_rule", {
            "rule": "rule told { when last(crypto.price) > 1 notify trading_slack }"})
        assert not any("nobody is told" in note for note in told.structured_content["notes"])


async def test_operations_over_stdio(db: Database, tmp_path: Path, no_source) -> None:
    from cryptography.fernet import Fernet

    env = {"MONITORS_DATABASE_URL": db.url, "MONITORS_SECRET_KEY": Fernet.generate_key().decode(),
           "MONITORS_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
           "MONITORS_USER": f"local-{uuid.uuid4().hex[:8]}"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "monitors_mcp"], env=env, cwd=str(ROOT))
    start = _iso(utcnow() + timedelta(days=1))
    with (tmp_path / "stderr.log").open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            await client.call_tool("create_alert_rule", {"rule": "rule btc { when last(crypto.price) > 1 }"})
            first = await client.call_tool("silence_alert_rule", {"rule": "btc", "start": start, "duration": "2d"})
            second = await client.call_tool("silence_alert_rule", {"rule": "btc", "start": start, "duration": "3d"})
            assert second.structured_content["extended"] is True
            assert second.structured_content["id"] == first.structured_content["id"]
            listed = await client.call_tool("list_silences", {})
            assert len(listed.structured_content["silences"]) == 1
            ended = await client.call_tool("end_silence", {"silence": first.structured_content["id"]})
            assert not ended.is_error
            rename = await client.call_tool("update_alert_rule", {"rule": "btc", "text": "rule eth { when last(a.b) > 1 }"})
            assert rename.structured_content["code"] == "rename_not_requested"
            alerts = await client.call_tool("list_alerts", {"since": "1h"})
            assert alerts.structured_content["alerts"] == []
            preview = await client.call_tool("preview_alert_rule", {"rule": "btc", "since": "1h"})
            assert preview.structured_content["code"] == "no_source"
            # what the engine wrote, read over stdio: an old alert still firing, its notification, flapping
            rule_id = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content["id"]
            user_id = UserService(db).user_id(env["MONITORS_USER"])
            (alert_id,) = add_alerts(db, rule_id, user_id, 1, start=utcnow() - timedelta(days=2))
            _outbox(db, user_id, rule_id, alert_id, None, kind="firing", status="failed",
                    last_error="HTTP 410 from the receiver", payload={"channel": "gone"})
            with db.session() as session:
                session.add(RuleState(rule_id=rule_id, series_key="k", labels={}, state="firing", alert_id=alert_id,
                                      machine={"flapping": True, "flapping_since": start}))
            (alert,) = (await client.call_tool("list_alerts", {"since": "1h"})).structured_content["alerts"]
            assert [(n["channel"], n["status"], n["reason"]) for n in alert["notifications"]] == [
                ("gone", "failed", "HTTP 410 from the receiver")]
            (series,) = (await client.call_tool("get_alert_rule", {"rule": "btc"})).structured_content["series"]
            assert _at(series["flapping_since"]) == _at(start)
            assert series["notifications"][0]["status"] == "failed"
