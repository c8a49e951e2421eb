"""Hostile callers of the MCP server: session floods, preview bombs, internal channel targets, malformed
values, quotas — each refused with a clear error while other users' calls go on as usual."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx2
import pytest

from monitors_mcp.server.sessions import SessionLimits
from monitors_mcp.service import UserService
from monitors_mcp.store import Database
from tests.support.mcp_http import McpHttpServer

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CAP = 4


def _token(db: Database, prefix: str) -> str:
    users = UserService(db)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    users.add_user(name)
    return users.create_token(name).token


@pytest.fixture(scope="module")
def server(db: Database, secrets):  # noqa: ANN001, ANN201
    with McpHttpServer(db, secrets, sessions=SessionLimits(per_user=CAP, idle_seconds=300, max_sessions=200)) as up:
        yield up


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):  # noqa: ANN001, ANN201
    """A SQLite store of its own, for what does not depend on the store's database (previews, latency)."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'monitors.db'}")
    database.migrate()
    yield database
    database.dispose()


def _someone(db: Database) -> int:
    return UserService(db).add_user(f"u-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="module")
def quickly_idle_server(db: Database, secrets):  # noqa: ANN001, ANN201
    with McpHttpServer(db, secrets, sessions=SessionLimits(per_user=CAP, idle_seconds=1.5, max_sessions=200)) as up:
        yield up


async def _open(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    return await http.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})


async def test_a_session_flood_from_one_user_leaves_others_able_to_open_sessions(db: Database, server) -> None:  # noqa: ANN001
    flooder, other = _token(db, "flood"), _token(db, "other")
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = [await _open(http, server.url, flooder) for _ in range(CAP)]
        assert [r.status_code for r in opened] == [200] * CAP
        assert all(r.headers.get("mcp-session-id") for r in opened)
        flood = await asyncio.gather(*(_open(http, server.url, flooder) for _ in range(60)))
        assert {r.status_code for r in flood} == {429}
        message = flood[0].json()["error"]["message"]
        assert f"{CAP} sessions open" in message and "DELETE" in message and "idle" in message
        assert (await _open(http, server.url, other)).status_code == 200
        # closing one frees its place
        closing = opened[0].headers["mcp-session-id"]
        closed = await http.delete(server.url, headers={**HEADERS, "Authorization": f"Bearer {flooder}",
                                                        "mcp-session-id": closing, "mcp-protocol-version": "2025-06-18"})
        assert closed.status_code < 300
        assert (await _open(http, server.url, flooder)).status_code == 200


async def test_idle_sessions_close_and_free_their_places(db: Database, quickly_idle_server) -> None:  # noqa: ANN001
    server = quickly_idle_server
    user = _token(db, "idle")
    async with httpx2.AsyncClient(timeout=30) as http:
        assert [(await _open(http, server.url, user)).status_code for _ in range(CAP + 1)] == [200] * CAP + [429]
        deadline = time.monotonic() + 20
        while (status := (await _open(http, server.url, user)).status_code) == 429 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert status == 200


# --- previews: bounded by evaluations (refused up front) and wall time (stopped with a note) ----------

from datetime import datetime, timedelta, timezone  # noqa: E402

from tests.support.mcp_client import BTC, connect, snapshot  # noqa: E402

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    lines = ["time,symbol,price"] + [
        f"{(NOW - timedelta(minutes=180 - m)).isoformat().replace('+00:00', 'Z')},BTC,{69_000 + 10 * m}"
        for m in range(180)]
    (tmp_path / "crypto.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MONITORS_ENGINE_DATA_DIR", str(tmp_path))
    return tmp_path


def _every(seconds: str) -> str:
    return f'rule bomb {{\n  when last(crypto.price{{symbol="BTC"}}, 1m) > 70000\n  every {seconds}\n}}'


PREVIEW_BOMBS = [
    # (rule, since, the longest span the refusal offers)
    (_every("30s"), "31d", "3d12h"),
    (_every("1s"), "1d", "2h48m"),
    (_every("1s"), "2024-05-01T00:00:00Z", "2h48m"),
    (BTC, "8d", "7d"),
]


@pytest.mark.parametrize(("rule", "since", "longest"), PREVIEW_BOMBS)
async def test_previews_over_the_evaluation_budget_are_refused_before_any_work(
        one_store: Database, secrets, data_dir, monkeypatch, rule, since, longest) -> None:  # noqa: ANN001
    import monitors_mcp.server.preview_tools as preview_tools

    opened = []
    monkeypatch.setattr(preview_tools, "open_source", lambda *a, **k: opened.append(1) or pytest.fail("ran"))
    async with connect(one_store, secrets, _someone(one_store)) as client:
        result = await client.call_tool("preview_alert_rule", {"rule": rule, "since": since})
    assert result.is_error
    out = result.structured_content
    assert out["code"] == "preview_too_long"
    assert f"at most {longest}" in out["error"] and "10,080" in out["error"]
    assert opened == []  # refused up front: the source was never opened (this bomb ran for minutes)


async def test_a_preview_stops_at_its_deadline_with_what_it_computed(one_store: Database, secrets, data_dir,
                                                                     monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MONITORS_PREVIEW_SECONDS", "1")
    async with connect(one_store, secrets, _someone(one_store)) as client:
        result = await client.call_tool("preview_alert_rule", {"rule": _every("1s"), "since": "1h"})
    assert not result.is_error, result.content[0].text
    out = result.structured_content
    assert out["note"] and "stopped at" in out["note"] and "1 s" in out["note"]
    assert 0 < out["evaluations"] < 3600


# --- malformed values: invalid_input with the allowed range, never a generic error --------------------

import base64 as _b64  # noqa: E402
import json as _json  # noqa: E402


def _cursor(value) -> str:  # noqa: ANN001
    return _b64.urlsafe_b64encode(_json.dumps(value).encode()).decode().rstrip("=")


_DEEP = _b64.urlsafe_b64encode(("[" * 100_000 + "]" * 100_000).encode()).decode()
MALFORMED = [
    # (tool, arguments, words the message must hold)
    ("silence_alert_rule", {"rule": "btc", "duration": "99999999999w"}, "36500d"),
    ("silence_alert_rule", {"rule": "btc", "duration": "1" * 5000 + "s"}, "36500d"),
    ("silence_alert_rule", {"rule": "btc", "duration": "²s"}, "not a duration"),
    ("silence_alert_rule", {"rule": "btc", "until": "9999-12-31T23:59:59-14:00"}, "9999-12-30"),
    ("silence_alert_rule", {"rule": "btc", "until": "0001-01-01T00:00:00+01:00"}, "1970-01-01"),
    ("silence_alert_rule", {"rule": "btc", "duration": "1h", "comment": "\ud800"}, "surrogate"),
    ("list_alerts", {"since": "9999-12-31T23:59:59-14:00"}, "9999-12-30"),
    ("list_alerts", {"since": "0001-01-01T00:00:00+01:00"}, "1970-01-01"),
    ("list_alerts", {"since": "99999999999w"}, "36500d"),
    ("list_alerts", {"since": "1" * 5000 + "s"}, "36500d"),
    ("list_alerts", {"rule": "²"}, "No rule"),
    ("get_alert_rule", {"rule": "²"}, "No rule"),
    ("get_alert_rule", {"rule": "١٢"}, "No rule"),
    ("update_alert_rule", {"rule": "²", "enabled": False}, "No rule"),
    ("get_alert_rule", {"rule": "   "}, "empty"),
    ("list_alert_rules", {"cursor": _cursor(["rules", [1], [2]])}, "cursor is not one"),
    ("list_alert_rules", {"cursor": _cursor(["rules", None, None])}, "cursor is not one"),
    ("list_alert_rules", {"cursor": _cursor(["rules", "a", 2**80])}, "cursor is not one"),
    ("list_alert_rules", {"cursor": _cursor(["rules", {"a": 1}, 1])}, "cursor is not one"),
    ("list_alert_rules", {"cursor": _DEEP}, "cursor is not one"),
    ("list_alerts", {"cursor": _cursor(["alerts", "2024-01-01", [1]])}, "cursor is not one"),
    ("list_alerts", {"cursor": _cursor(["alerts", None, None])}, "cursor is not one"),
    ("list_alerts", {"cursor": _cursor(["alerts", "9999-12-31T23:59:59-14:00", 1])}, "cursor is not one"),
    ("list_alerts", {"cursor": _cursor(["alerts", "2024-01-01T00:00:00", 2**80])}, "cursor is not one"),
    ("list_alerts", {"cursor": _DEEP}, "cursor is not one"),
    ("list_alert_rules", {"query": "\ud800"}, "surrogate"),
    ("delete_notification_channel", {"name": "\ud800"}, "surrogate"),
    ("create_alert_rule", {"rule": BTC, "name": "\ud800"}, "surrogate"),
    ("preview_alert_rule", {"rule": BTC, "since": "99999999999w"}, "36500d"),
    ("preview_alert_rule", {"rule": BTC, "since": "9999-12-31T23:59:59-14:00"}, "9999-12-30"),
    ("preview_alert_rule", {"rule": BTC, "since": "0001-01-01T00:00:00+01:00"}, "1970-01-01"),
]


async def test_malformed_values_are_invalid_input_saying_the_allowed_range(db: Database, secrets, new_user) -> None:  # noqa: ANN001
    wrong = []
    async with connect(db, secrets, new_user()) as client:
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).is_error
        before = snapshot(db)
        for tool, arguments, words in MALFORMED:
            result = await client.call_tool(tool, arguments)
            out = result.structured_content or {}
            ranged = any(w in words for w in ("36500d", "1970", "9999"))
            if not (result.is_error and out.get("code") in ("invalid_input", "not_found")
                    and words in out.get("error", "") and (out.get("allowed") or not ranged)):
                wrong.append((tool, str(arguments)[:60], out))
    assert wrong == []
    assert snapshot(db) == before  # nothing stored or changed by any of them


# --- channels: no internal targets, POST only, no secret shown as a host -------------------------------

INTERNAL_URLS = [
    "json://127.0.0.1:8181/hook", "json://169.254.169.254/latest", "jsons://localhost/hook",
    "json://10.0.0.5/x", "json://192.168.1.1/x", "json://172.16.0.1/x", "json://100.64.0.1/x",
    "json://0.0.0.0/x", "json://[::1]/x", "json://[fe80::1]/x", "json://[fd00::1]/x",
    "json://[::ffff:127.0.0.1]/x", "json://2130706433/x", "xml://127.0.0.1/x", "form://127.0.0.1/x",
    "ntfy://127.0.0.1/topic", "gotify://10.0.0.1/token", "mmost://192.168.0.2/token",
    "matrixs://user:pass@10.1.1.1/#room", "rocket://user:pass@127.0.0.1/room", "apprise://169.254.169.254/token",
    "signal://10.0.0.1/+12345678901", "zulip://bot@127.0.0.1/abcdefghijklmnopqrstuvwxyzABCDEF",
    "mailtos://user:pass@example.com?smtp=127.0.0.1", "mailto://user:pw@localhost",
]
NOT_POST = ["json://127.0.0.1:8181/hook?method=PUT&+X-Api-Key=K", "json://hooks.example.com/x?method=GET",
            "xmls://hooks.example.com/x?method=DELETE", "forms://hooks.example.com/x?method=PATCH"]


@pytest.fixture
def no_allow_list(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.delenv("MONITORS_CHANNEL_ALLOW_HOSTS", raising=False)


async def test_channels_to_internal_addresses_are_refused(db: Database, secrets, new_user, no_allow_list) -> None:  # noqa: ANN001
    wrong = []
    async with connect(db, secrets, new_user()) as client:
        before = snapshot(db)
        for url in INTERNAL_URLS:
            result = await client.call_tool("add_notification_channel", {"name": "inside", "apprise_url": url})
            out = result.structured_content or {}
            message = out.get("error", "")
            if not (result.is_error and out.get("code") == "invalid_input" and "internal address" in message
                    and "MONITORS_CHANNEL_ALLOW_HOSTS" in message):
                wrong.append((url, out))
            if "pass" in message or "abcdefghij" in message:  # no secret repeated
                wrong.append((url, "secret in the message"))
    assert wrong == []
    assert snapshot(db) == before


@pytest.mark.parametrize("url", NOT_POST)
async def test_webhooks_send_with_post_only(db: Database, secrets, new_user, url) -> None:  # noqa: ANN001
    async with connect(db, secrets, new_user()) as client:
        result = await client.call_tool("add_notification_channel", {"name": "put", "apprise_url": url})
    assert result.is_error and "POST only" in result.structured_content["error"]


async def test_the_operator_allow_list_opens_exactly_what_it_names(db: Database, secrets, new_user,
                                                                   monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MONITORS_CHANNEL_ALLOW_HOSTS", "10.0.0.0/8, hooks.internal, *.corp.example")
    async with connect(db, secrets, new_user()) as client:
        for name, url in [("a", "json://10.1.2.3/x"), ("b", "json://hooks.internal/x"),
                          ("c", "jsons://alerts.corp.example/x"), ("d", "json://hooks.example.com/x?method=POST")]:
            result = await client.call_tool("add_notification_channel", {"name": name, "apprise_url": url})
            assert not result.is_error, (url, result.content[0].text)
        refused = await client.call_tool("add_notification_channel",
                                         {"name": "e", "apprise_url": "json://192.168.1.1/x"})
        assert refused.is_error and "internal address" in refused.structured_content["error"]


async def test_hosts_that_are_secrets_are_not_listed(db: Database, secrets, new_user) -> None:  # noqa: ANN001
    topic = "alerts-0f9e8d7c6b5a"
    async with connect(db, secrets, new_user()) as client:
        for name, url in [("topic", f"ntfy://{topic}"), ("tls_topic", f"ntfys://{topic}"),
                          ("hosted", "ntfys://ntfy.example.com/topic"), ("hook", "jsons://hooks.example.com/x")]:
            assert not (await client.call_tool("add_notification_channel", {"name": name, "apprise_url": url})).is_error
        listed = await client.call_tool("list_notification_channels", {})
    hosts = {c["name"]: c["host"] for c in listed.structured_content["channels"]}
    assert hosts == {"topic": None, "tls_topic": None, "hosted": "ntfy.example.com", "hook": "hooks.example.com"}
    assert topic not in str(listed.content)
    assert topic not in str(snapshot(db))  # nor in plain text at rest


# --- quotas per user ----------------------------------------------------------------------------------

QUOTAS = [
    # (setting, tool, arguments for the i-th call)
    ("MONITORS_MAX_RULES_PER_USER", "create_alert_rule", lambda i: {"rule": BTC, "name": f"r{i}"}),
    ("MONITORS_MAX_CHANNELS_PER_USER", "add_notification_channel",
     lambda i: {"name": f"c{i}", "apprise_url": f"jsons://hooks.example.com/{i}"}),
    ("MONITORS_MAX_SILENCES_PER_USER", "silence_alert_rule", lambda i: {"rule": f"s{i}", "duration": "1h"}),
]


@pytest.mark.parametrize(("setting", "tool", "arguments"), QUOTAS, ids=[q[0] for q in QUOTAS])
async def test_quotas_per_user_are_clear_errors_and_leave_others_alone(db: Database, secrets, new_user, monkeypatch,
                                                                       setting, tool, arguments) -> None:  # noqa: ANN001
    alice, bob = new_user(), new_user()
    for user in (alice, bob):  # rules to silence
        async with connect(db, secrets, user) as client:
            for i in range(3):
                assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": f"s{i}"})).is_error
    rules = "RULES" in setting
    limit, start = (5, 3) if rules else (2, 0)  # three rules exist already, to silence
    monkeypatch.setenv(setting, str(limit))
    async with connect(db, secrets, alice) as client:
        for i in range(start, limit):
            result = await client.call_tool(tool, arguments(i))
            assert not result.is_error, result.content[0].text
        before = snapshot(db)
        over = await client.call_tool(tool, arguments(limit))
    assert over.is_error
    out = over.structured_content
    assert out["code"] == "quota_reached" and out["quota"] == limit
    assert f"the most one user may keep ({limit})" in out["error"]
    assert snapshot(db) == before
    async with connect(db, secrets, bob) as client:  # another user is not held by alice's quota
        assert not (await client.call_tool(tool, arguments(start))).is_error


async def test_deleting_frees_a_place_under_the_rule_quota(db: Database, secrets, new_user, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MONITORS_MAX_RULES_PER_USER", "1")
    async with connect(db, secrets, new_user()) as client:
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "one"})).is_error
        assert (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "two"})).is_error
        assert not (await client.call_tool("delete_alert_rule", {"rule": "one"})).is_error
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "two"})).is_error


# --- the monitors-mcp command line ----------------------------------------------------------------------

from monitors_mcp.cli import main as monitors_mcp  # noqa: E402


@pytest.mark.parametrize(("arguments", "words"), [
    (["serve", "--http", "--port", "99999"], "from 1 to 65,535"),
    (["serve", "--http", "--port", "-1"], "from 1 to 65,535"),
    (["token", "revoke", "99999999999999999999999"], "whole number from 1"),
    (["token", "revoke", "²"], "whole number from 1"),
    (["token", "create", "someone", "--expires", "99999999999w"], "36500d"),
    (["token", "create", "someone", "--expires", "1" * 5000 + "s"], "36500d"),
])
def test_bad_command_line_values_exit_2(tmp_path, capsys, arguments, words):  # noqa: ANN001
    try:
        code = monitors_mcp(["--database-url", f"sqlite:///{tmp_path / 'm.db'}", *arguments])
    except SystemExit as exit_:  # argparse refuses a bad flag value itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and "unexpected" not in err


# --- a flood from one user leaves another user's calls at their usual latency ---------------------------

import statistics  # noqa: E402

from tests.support.mcp_http import mcp_client  # noqa: E402

HEAVY = "rule heavy {\n  when " + " or ".join(f'last(crypto.price{{symbol="S{i}"}}) > {i}' for i in range(60)) + "\n}"

# The flood comes from another process, as it would from another machine: its client's own work is not
# counted against the server it floods.
FLOOD = """
import asyncio, json, os, sys
import httpx2
from tests.support.mcp_http import mcp_client

async def main(url, token, heavy, rule):
    os.nice(19)  # the flooder's own work stands for another machine's: it must not take this one's CPU
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": f"Bearer {token}"}
    async with mcp_client(url, token) as loud:
        calls = [loud.call_tool("validate_alert_rule", {"rule": heavy}) for _ in range(30)]
        calls += [loud.call_tool("preview_alert_rule", {"rule": rule, "since": "30d"}) for _ in range(10)]
        calls += [loud.call_tool("list_alerts", {"since": "7d"}) for _ in range(20)]
        async with httpx2.AsyncClient(timeout=60) as http:
            opens = [http.post(url, json=init, headers=headers) for _ in range(20)]
            print("flooding", flush=True)
            answers = await asyncio.gather(*calls, *opens, return_exceptions=True)
    refused = sum(1 for a in answers if getattr(a, "is_error", False) or getattr(a, "status_code", 200) == 429)
    print(json.dumps({"calls": len(answers), "refused": refused}))

asyncio.run(main(*sys.argv[1:]))
"""


async def _latencies(client, calls: int) -> list[float]:  # noqa: ANN001
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        result = await client.call_tool("list_alert_rules", {})
        times.append(time.perf_counter() - started)
        assert not result.is_error
    return times


async def test_a_flood_from_one_user_leaves_another_users_calls_at_their_usual_latency(one_store: Database,
                                                                                       secrets) -> None:  # noqa: ANN001
    """One user sends a burst of calls at once (heavy validations, previews of a long span, alert listings,
    new sessions); another user's calls are timed with and without the flood. The flooder is held to its own
    share (calls in flight, rule checks, previews, sessions), so the other's median stays within a generous
    ratio of its usual one. (The store's database takes no part in this: one SQLite store serves it.)"""
    flooder, other = _token(one_store, "flooder"), _token(one_store, "calm")
    with McpHttpServer(one_store, secrets, sessions=SessionLimits(per_user=CAP, idle_seconds=300)) as server:
        report, usual, during, still_flooding = await _flood_and_time(server, flooder, other)
    assert report["refused"] > 0 and still_flooding  # the flood met its limits, and lasted the measurement
    print(f"other user's median latency: usual {usual * 1000:.1f} ms, during the flood {during * 1000:.1f} ms "
          f"(ratio {during / usual:.1f}); the flood: {report}")
    assert during < usual * 10 + 0.1


async def _flood_and_time(server, flooder: str, other: str):  # noqa: ANN001, ANN202
    import json
    import sys

    async with mcp_client(server.url, other) as calm:
        await _latencies(calm, 5)  # warm up
        usual = statistics.median(await _latencies(calm, 20))
        flood = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOD, server.url, flooder, HEAVY, BTC,
                                                     stdout=asyncio.subprocess.PIPE)
        assert (await asyncio.wait_for(flood.stdout.readline(), timeout=60)).strip() == b"flooding"
        during = statistics.median(await _latencies(calm, 20))
        still_flooding = flood.returncode is None
        out, _ = await asyncio.wait_for(flood.communicate(), timeout=120)
    return json.loads(out.decode().strip().splitlines()[-1]), usual, during, still_flooding


async def test_rule_checks_share_one_small_limit_per_user() -> None:
    from monitors_mcp.concurrency import CallLimits, LimitReached, LocalLimiter

    limits = CallLimits(LocalLimiter(), per_user=8, per_group={"rule_checks": 2})
    async with limits.hold(1, "validate_alert_rule"), limits.hold(1, "create_alert_rule"):
        with pytest.raises(LimitReached, match="2 create_alert_rule/update_alert_rule/validate_alert_rule calls"):
            async with limits.hold(1, "update_alert_rule"):
                pass
        async with limits.hold(2, "validate_alert_rule"), limits.hold(1, "list_alerts"):
            pass  # another user, and other tools, are not held by it


# --- rule text: bombs, surrogates and regexes refused by the tools with positions ------------------------

RULE_TEXT_BOMBS = [
    ('rule t {\n  when last(crypto.price{symbol="BTC"}) > 1\n  message "{{ 9 ** 10000000 }}"\n}', "template-too-large", 3),
    ('rule t {\n  when last(crypto.price{symbol="BTC"}) > 1\n  title "{{ \'x\' * 500000000 }}"\n}', "template-too-large", 3),
    ('last(crypto.price{symbol="\\uD800"}) > 1', "unsendable-character", 1),
    ('last(crypto.price{symbol="\ud800"}) > 1', "unsendable-character", 1),
    ('last(cpu.usage{host=~"\\\\w{5000}"}) > 1', "invalid-regex", 1),
    ('last(cpu.usage{host=~"(?:a{1000}){1000}"}) > 1', "invalid-regex", 1),
    ('last(cpu.usage{host=~"[\\\\s\\\\S]{60000}"}) > 1', "invalid-regex", 1),
]


@pytest.mark.parametrize(("text", "code", "line"), RULE_TEXT_BOMBS, ids=[c for _, c, _ in RULE_TEXT_BOMBS])
async def test_rule_text_the_source_or_the_renderer_cannot_take_is_refused_with_its_position(
        db: Database, secrets, new_user, text, code, line) -> None:  # noqa: ANN001
    async with connect(db, secrets, new_user()) as client:
        before = snapshot(db)
        checked = await client.call_tool("validate_alert_rule", {"rule": text})
        created = await client.call_tool("create_alert_rule", {"rule": text, "name": "bomb"})
    assert not checked.structured_content["valid"]
    (found,) = [d for d in checked.structured_content["diagnostics"] if d["code"] == code]
    assert found["line"] == line and found["column"] >= 1 and found["hint"]
    assert created.is_error and created.structured_content["code"] == "invalid_rule"
    assert snapshot(db) == before


async def test_deleting_a_channel_finds_its_rules_without_parsing_any(db: Database, secrets, new_user,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    import monitors_dsl

    async with connect(db, secrets, new_user()) as client:
        await client.call_tool("add_notification_channel", {"name": "desk", "apprise_url": "jsons://h.example.com/x"})
        for name, notify in (("one", "desk"), ("two", "desk, other"), ("three", "other"), ("four", "desk"),
                             ("five", "other")):
            text = f'rule {name} {{\n  when last(crypto.price{{symbol="BTC"}}) > 1\n  notify {notify}\n}}'
            assert not (await client.call_tool("create_alert_rule", {"rule": text})).is_error
        moved = 'rule five {\n  when last(crypto.price{symbol="BTC"}) > 1\n  notify desk\n}'
        assert not (await client.call_tool("update_alert_rule", {"rule": "five", "text": moved})).is_error
        assert not (await client.call_tool("delete_alert_rule", {"rule": "four"})).is_error
        monkeypatch.setattr(monitors_dsl, "parse", lambda *a, **k: pytest.fail("a rule was parsed again"))
        monkeypatch.setattr(monitors_dsl, "validate", lambda *a, **k: pytest.fail("a rule was checked again"))
        deleted = await client.call_tool("delete_notification_channel", {"name": "desk"})
    assert not deleted.is_error, deleted.content[0].text
    assert deleted.structured_content["rules_still_notifying"] == ["five", "one", "two"]
