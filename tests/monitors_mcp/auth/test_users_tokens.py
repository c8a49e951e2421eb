"""Users and tokens an operator manages: disable, enable and delete a user; tokens that expire,
that only read, and that note when they were last used — in the service and the CLI."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from monitors_mcp.cli import main
from monitors_mcp.service import UserService
from monitors_mcp.store import (
    Alert,
    ApiToken,
    Database,
    NotificationChannel,
    Rule,
    Silence,
    User,
)
from monitors_mcp.store.types import utcnow

from tests.support.mcp_client import BTC, add_alerts, add_series_state, snapshot


def run(db: Database, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(["--database-url", db.url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _populate(db: Database, workspace, user_id: int) -> int:  # noqa: ANN001
    """A rule with alerts, series state, a silence and a channel for ``user_id``; returns the rule id."""
    ws = workspace(user_id)
    rule = ws.rules.create(BTC, name="btc")
    ws.channels.add("hook", "json://hooks.example.com/x")
    ws.rules.silence(rule.id, "1h")
    add_alerts(db, rule.id, user_id, 3)
    add_series_state(db, rule.id, {"symbol": "BTC"})
    return rule.id


def _count(db: Database, model, column, value) -> int:  # noqa: ANN001
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(column == value)) or 0


# ------------------------------------------------------------------ tokens

def test_a_token_stops_working_when_it_expires(db: Database) -> None:
    users = UserService(db)
    name = _name("exp")
    user_id = users.add_user(name)
    issued = users.create_token(name, expires_in=timedelta(hours=1))
    assert issued.expires_at is not None and timedelta(minutes=59) < issued.expires_at - utcnow() <= timedelta(hours=1)
    assert users.verify_token(issued.token) == user_id
    with db.session() as session:
        session.execute(sa.update(ApiToken).where(ApiToken.id == issued.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert users.verify_token(issued.token) is None
    (info,) = users.list_tokens(name)
    assert info.state() == "expired"


def test_a_token_lifetime_must_be_positive(db: Database) -> None:
    users = UserService(db)
    name = _name("neg")
    users.add_user(name)
    with pytest.raises(Exception, match="longer than zero"):
        users.create_token(name, expires_in=timedelta(0))


def test_read_only_tokens_say_so_and_others_do_not(db: Database) -> None:
    users = UserService(db)
    name = _name("ro")
    user_id = users.add_user(name)
    reader = users.create_token(name, read_only=True)
    writer = users.create_token(name)
    assert users.authenticate(reader.token).read_only is True
    assert users.authenticate(writer.token).read_only is False
    assert users.authenticate(reader.token).user_id == user_id
    assert {t.id: t.read_only for t in users.list_tokens(name)} == {reader.id: True, writer.id: False}


def test_last_used_at_is_noted_on_use_and_not_rewritten_on_every_call(db: Database) -> None:
    users = UserService(db)
    name = _name("used")
    users.add_user(name)
    issued = users.create_token(name)
    assert users.list_tokens(name)[0].last_used_at is None
    users.verify_token(issued.token)
    first = users.list_tokens(name)[0].last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    users.verify_token(issued.token)
    assert users.list_tokens(name)[0].last_used_at == first  # within the resolution: no write


# ------------------------------------------------------------------ disable / enable

def test_a_disabled_users_tokens_are_refused_at_once_and_work_again_when_enabled(db: Database) -> None:
    users = UserService(db)
    name = _name("dis")
    user_id = users.add_user(name)
    issued = users.create_token(name)
    assert users.verify_token(issued.token) == user_id
    assert users.set_disabled(name, True) is True
    assert users.verify_token(issued.token) is None
    assert users.set_disabled(name, True) is False  # already disabled
    assert users.is_disabled(user_id)
    assert users.set_disabled(name, False) is True
    assert users.verify_token(issued.token) == user_id


def test_disabling_keeps_everything(db: Database, workspace, new_user) -> None:  # noqa: ANN001
    user_id = new_user("keep")
    _populate(db, workspace, user_id)
    name = next(n for i, n in UserService(db).list_users() if i == user_id)
    before = snapshot(db)
    UserService(db).set_disabled(name, True)
    after = snapshot(db)
    changed = {t for t in before if before[t] != after[t]}
    assert changed == {"users"}


# ------------------------------------------------------------------ delete

def test_delete_removes_everything_of_the_user_and_nothing_of_anyone_else(db: Database, workspace, new_user) -> None:  # noqa: ANN001
    users = UserService(db)
    gone, kept = new_user("gone"), new_user("kept")
    gone_name = next(n for i, n in users.list_users() if i == gone)
    _populate(db, workspace, gone)
    _populate(db, workspace, kept)
    users.create_token(gone_name)
    # the user being deleted acknowledged one of the other user's alerts
    with db.session() as session:
        kept_alert = session.scalars(sa.select(Alert).where(Alert.owner_id == kept)).first()
        kept_alert.acknowledged_by, kept_alert.acknowledged_at = gone, utcnow()
        kept_alert_id = kept_alert.id
    others_before = {t: rows for t, rows in snapshot(db).items()}

    preview = users.footprint(gone_name)
    assert (preview.rules, preview.alerts, preview.channels, preview.silences, preview.tokens) == (1, 3, 1, 1, 1)
    removed = users.delete_user(gone_name)
    assert removed == preview

    for model, column in [(Rule, Rule.owner_id), (Alert, Alert.owner_id), (Silence, Silence.owner_id),
                          (NotificationChannel, NotificationChannel.owner_id), (ApiToken, ApiToken.user_id),
                          (User, User.id)]:
        assert _count(db, model, column, gone) == 0, model.__name__
    for model, column in [(Rule, Rule.owner_id), (Alert, Alert.owner_id), (Silence, Silence.owner_id),
                          (NotificationChannel, NotificationChannel.owner_id)]:
        assert _count(db, model, column, kept) >= 1, model.__name__
    with db.session() as session:
        alert = session.get(Alert, kept_alert_id)
        assert alert is not None and alert.acknowledged_by is None and alert.acknowledged_at is not None
    assert len(snapshot(db)["rules"]) == len(others_before["rules"]) - 1
    with pytest.raises(Exception, match="No user named"):
        users.delete_user(gone_name)


# ------------------------------------------------------------------ the CLI

def test_cli_disable_enable_and_list(db: Database, capsys) -> None:  # noqa: ANN001
    name = _name("cli")
    run(db, capsys, "user", "add", name)
    code, out, _ = run(db, capsys, "user", "disable", name)
    assert code == 0 and "disabled" in out and "not evaluated" in out
    code, out, _ = run(db, capsys, "user", "list")
    (line,) = [row for row in out.splitlines() if f"\t{name}\t" in row]
    assert "\tdisabled\t" in line and "0 rules" in line
    code, out, _ = run(db, capsys, "user", "disable", name)
    assert code == 0 and "already disabled" in out
    code, out, _ = run(db, capsys, "user", "enable", name)
    assert code == 0 and "enabled" in out
    code, out, err = run(db, capsys, "user", "disable", "no-such-user-q")
    assert code == 1 and err.startswith("monitors-mcp: error: No user named") and err.count("\n") == 1


def test_cli_delete_needs_yes_and_says_what_would_go(db: Database, capsys, workspace, new_user) -> None:  # noqa: ANN001
    user_id = new_user("del")
    name = next(n for i, n in UserService(db).list_users() if i == user_id)
    _populate(db, workspace, user_id)
    before = snapshot(db)
    code, out, err = run(db, capsys, "user", "delete", name)
    assert code == 2 and out == ""
    assert "1 rules, 3 alerts, 1 notification channels" in err and "--yes" in err and "nothing was deleted" in err
    assert snapshot(db) == before
    code, out, err = run(db, capsys, "user", "delete", name, "--yes")
    assert code == 0 and f"deleted user {name}" in out and "3 alerts" in out
    assert _count(db, User, User.id, user_id) == 0


def test_cli_token_with_expiry_and_read_only(db: Database, capsys) -> None:  # noqa: ANN001
    name = _name("tok")
    run(db, capsys, "user", "add", name)
    code, out, err = run(db, capsys, "token", "create", name, "--expires", "30d", "--read-only")
    token = out.strip()
    assert code == 0 and token.startswith("mon_") and "read-only" in err and "expires 20" in err
    assert UserService(db).authenticate(token).read_only is True
    code, out, _ = run(db, capsys, "token", "list", name)
    assert "read-only" in out and "expires 20" in out and "last used" in out and token not in out
    code, out, err = run(db, capsys, "token", "create", name, "--expires", "soon")
    assert code == 2 and "--expires 'soon' is not a duration" in err and err.count("\n") == 1


def test_stdio_refuses_a_disabled_local_user(db: Database, capsys) -> None:  # noqa: ANN001
    name = _name("local")
    UserService(db).add_user(name)
    UserService(db).set_disabled(name, True)
    code, out, err = run(db, capsys, "serve", "--user", name)
    assert code == 1 and "is disabled" in err and "user enable" in err
