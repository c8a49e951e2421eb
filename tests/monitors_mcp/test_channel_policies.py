"""Channel policies through the tools and the command: set when a channel is added, changed by
update_notification_channel, shown by list_notification_channels, checked with clear errors, private to
their owner; the store's columns hold exactly what the engine reads (SQLite and MariaDB)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from monitors_mcp.cli import main
from monitors_mcp.service import UserService
from monitors_mcp.service.channel_policies import check_policies, duration_text
from monitors_mcp.service.errors import InvalidInput
from monitors_mcp.store import Database, NotificationChannel
from monitors_mcp.store.secrets import SECRET_KEY_ENV

from tests.support.mcp_client import connect, snapshot

pytestmark = pytest.mark.anyio

SLACK = "slack://TokenA/TokenB/TokenC"
DEFAULTS = {"group_by": [], "group_wait": "30s", "group_interval": "5m", "mute_during": None,
            "group_title": None, "group_message": None}


def stored(db: Database, owner: int, name: str) -> tuple:
    with db.session() as s:
        c = s.scalars(select(NotificationChannel).where(NotificationChannel.owner_id == owner,
                                                        NotificationChannel.name == name)).one()
        return c.group_by, c.group_wait_seconds, c.group_interval_seconds, c.mute_during, c.group_title, c.group_message


async def test_policies_are_set_on_add_changed_by_update_and_listed(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        plain = await client.call_tool("add_notification_channel", {"name": "plain", "apprise_url": SLACK})
        assert plain.structured_content["policies"] == DEFAULTS
        assert stored(db, alice, "plain") == (None,) * 6  # NULL columns: the defaults

        added = await client.call_tool("add_notification_channel", {
            "name": "ops", "apprise_url": SLACK,
            "policies": {"group_by": ["rule", "region"], "group_wait": "1m30s", "group_interval": "2H",
                         "mute_during": 'Sat-Sun in "Europe/Paris"', "group_title": "{{ alerts | length }} new"}})
        assert not added.is_error, added.content[0].text
        assert added.structured_content["policies"] == {
            "group_by": ["rule", "region"], "group_wait": "1m30s", "group_interval": "2h",
            "mute_during": 'sat-sun in "Europe/Paris"', "group_title": "{{ alerts | length }} new",
            "group_message": None}
        assert stored(db, alice, "ops") == (["rule", "region"], 90, 7200, 'sat-sun in "Europe/Paris"',
                                            "{{ alerts | length }} new", None)

        # a key left out keeps its value, null restores the default, "" clears the window
        updated = await client.call_tool("update_notification_channel", {
            "name": "ops", "policies": {"group_wait": None, "mute_during": "", "group_title": ""}})
        assert updated.structured_content["policies"] == {
            **DEFAULTS, "group_by": ["rule", "region"], "group_interval": "2h"}
        assert stored(db, alice, "ops") == (["rule", "region"], None, 7200, None, None, None)
        cleared = await client.call_tool("update_notification_channel", {"name": "ops",
                                                                         "policies": {"group_by": []}})
        assert cleared.structured_content["policies"]["group_by"] == []
        assert stored(db, alice, "ops")[0] is None  # SQL NULL: no grouping

        listed = (await client.call_tool("list_notification_channels", {})).structured_content["channels"]
        assert {c["name"]: c["policies"] for c in listed} == {
            "ops": {**DEFAULTS, "group_interval": "2h"}, "plain": DEFAULTS}


async def test_a_new_url_replaces_the_old_one_and_is_never_shown(db: Database, secrets, alice: int) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("add_notification_channel", {"name": "hook", "apprise_url": SLACK,
                                                            "policies": {"group_by": ["rule"]}})
        changed = await client.call_tool("update_notification_channel", {
            "name": "hook", "apprise_url": "jsons://user:Secret123@alerts.example.com/in"})
        out = changed.structured_content
        assert (out["scheme"], out["host"], out["service"]) == ("jsons", "alerts.example.com", "JSON")
        assert out["policies"]["group_by"] == ["rule"]  # the policies stay
        assert "Secret123" not in changed.content[0].text
    with db.session() as s:
        row = s.scalars(select(NotificationChannel).where(NotificationChannel.owner_id == alice)).one()
        assert secrets.decrypt(row.url_encrypted) == "jsons://user:Secret123@alerts.example.com/in"


@pytest.mark.parametrize(("policies", "message"), [
    ({"group_wait": "1h1s"}, "group_wait '1h1s' is out of range: give 0s to 1h"),
    ({"group_wait": "30 s"}, "is not a duration"),
    ({"group_interval": "9s"}, "give 10s to 1d"),
    ({"group_interval": "25h"}, "give 10s to 1d"),
    ({"group_wait": "10m"}, "group_interval (5m, the default) is shorter than group_wait (10m)"),
    ({"group_by": "rule,"}, "group_by item 2 is not a label name"),
    ({"group_by": [1]}, "group_by item 1 is not a label name"),
    ({"group_by": {"rule": 1}}, "group_by must be a list of label names"),
    ({"mute_during": "mon-fri 25:00-26:00"}, "mute_during 'mon-fri 25:00-26:00': at column 9: hour 25"),
    ({"mute_during": 'sat in "Mars/Olympus"'}, "at column 8: unknown time zone"),
    ({"mute_during": ["sat"]}, "mute_during must be a time window"),
    ({"groupby": ["rule"]}, "did you mean 'group_by'?"),
    ({"group_title": "{{ alert | length }}"}, "group_title: unknown template variable `alert` (did you mean `alerts`?)"),
    ({"group_message": "{{ rule }}"}, "unknown template variable `rule`; a group template sees alerts, firing"),
    ({"group_message": "{% for a in alerts %}"}, "group_message, line 1: template error: Unexpected end"),
    ({"group_title": 5}, "group_title must be a Jinja2 template"),
])
async def test_bad_policies_are_refused_with_what_to_change(db: Database, secrets, alice: int, policies,
                                                           message: str) -> None:
    async with connect(db, secrets, alice) as client:
        await client.call_tool("add_notification_channel", {"name": "desk", "apprise_url": SLACK})
        before = snapshot(db)
        for tool, args in (("add_notification_channel", {"name": "other", "apprise_url": SLACK}),
                           ("update_notification_channel", {"name": "desk"})):
            result = await client.call_tool(tool, {**args, "policies": policies})
            assert result.is_error and message in result.content[0].text, (tool, result.content[0].text)
            assert result.structured_content["code"] in ("invalid_input", "invalid_window", "invalid_template")
        assert snapshot(db) == before


def test_a_window_error_carries_the_language_diagnostics() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_policies({"mute_during": "mon-fri 09:00-17:00 in \"Europe/Pari\""})
    details = raised.value.to_dict()
    assert details["code"] == "invalid_window"
    assert details["diagnostics"][0]["column"] == 24 and "Europe/Paris" in details["diagnostics"][0]["hint"]


def test_durations_print_as_the_language_does() -> None:
    assert [duration_text(s) for s in (0, 10, 90, 300, 5400, 86400)] == ["0s", "10s", "1m30s", "5m", "1h30m", "1d"]
    assert check_policies({"group_wait": "0s", "group_interval": "10s"}).group_wait_seconds == 0
    assert check_policies({"group_wait": "0m0s"}).group_wait_seconds == 0


async def test_another_users_channel_is_neither_seen_nor_changed(db: Database, secrets, alice: int, bob: int) -> None:
    async with connect(db, secrets, alice) as a:
        await a.call_tool("add_notification_channel", {"name": "mine", "apprise_url": SLACK,
                                                       "policies": {"group_by": ["rule"]}})
    before = snapshot(db)
    async with connect(db, secrets, bob) as b:
        assert (await b.call_tool("list_notification_channels", {})).structured_content["channels"] == []
        theirs = await b.call_tool("update_notification_channel", {"name": "mine", "policies": {"group_by": []}})
        unknown = await b.call_tool("update_notification_channel", {"name": "nobody", "policies": {"group_by": []}})
        assert theirs.is_error and theirs.structured_content["code"] == "not_found"
        assert theirs.content[0].text.replace("mine", "X") == unknown.content[0].text.replace("nobody", "X")
    assert snapshot(db) == before
    assert stored(db, alice, "mine")[0] == ["rule"]


# --- the command ------------------------------------------------------------------------------------------


def cli(db: Database, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(["--database-url", db.url, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_user(db: Database, monkeypatch):  # noqa: ANN201
    from cryptography.fernet import Fernet

    monkeypatch.setenv(SECRET_KEY_ENV, Fernet.generate_key().decode())
    name = f"cli-{uuid.uuid4().hex[:8]}"
    return name, UserService(db).add_user(name)


def test_the_channel_commands_add_update_and_list(db: Database, capsys, cli_user, monkeypatch) -> None:  # noqa: ANN001
    name, user_id = cli_user
    code, out, err = cli(db, capsys, "channel", "add", name, "ops", "jsons://alerts.example.com/in",
                         "--group-by", "rule, region", "--group-wait", "10s", "--mute-during", "sat-sun")
    assert (code, err) == (0, "") and out == ("added channel ops\tjsons\tJSON\talerts.example.com\t"
                                              "group by rule,region wait 10s interval 5m; muted sat-sun\n")
    code, out, _ = cli(db, capsys, "channel", "update", name, "ops", "--group-title", "{{ alerts | length }} new")
    assert code == 0 and out.endswith("; own group templates\n")
    code, out, _ = cli(db, capsys, "channel", "update", name, "ops", "--group-wait", "", "--mute-during", "",
                       "--group-title", "")
    assert code == 0 and out.endswith("group by rule,region wait 30s interval 5m\n")
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("jsons://other.example.com/in\n"))
    code, out, _ = cli(db, capsys, "channel", "update", name, "ops", "--url", "-", "--group-by", "")
    assert code == 0 and "other.example.com" in out and out.endswith("no grouping\n")
    code, out, _ = cli(db, capsys, "channel", "list", name)
    assert out == "ops\tjsons\tJSON\tother.example.com\tno grouping\n"
    assert stored(db, user_id, "ops") == (None,) * 6


@pytest.mark.parametrize(("args", "message"), [
    (["update", "{user}", "ops", "--group-interval", "5s"], "group_interval '5s' is out of range"),
    (["update", "{user}", "nope", "--group-wait", "5s"], "No channel named 'nope'"),
    (["update", "{user}", "ops"], "Nothing to change"),
    (["add", "{user}", "ops", "jsons://alerts.example.com/in"], "already have a channel named 'ops'"),
    (["add", "no-such-user-xyz", "x", "jsons://alerts.example.com/in"], "No user named 'no-such-user-xyz'"),
    (["update", "{user}", "ops", "--mute-during", "sat 24:00-25:00"], "at column 5: hour 24"),
    (["update", "{user}", "ops", "--group-message", "{{ rule }}"], "unknown template variable `rule`"),
])
def test_channel_command_errors_are_one_line(db: Database, capsys, cli_user, args, message) -> None:  # noqa: ANN001
    name, _ = cli_user
    assert cli(db, capsys, "channel", "add", name, "ops", "jsons://alerts.example.com/in")[0] == 0
    code, out, err = cli(db, capsys, "channel", *[a.replace("{user}", name) for a in args])
    assert code in (1, 2) and out == ""
    assert err.startswith("monitors-mcp: error: ") and message in err and err.count("\n") == 1, err
