"""The store: migrations are the schema, on SQLite and MariaDB; timestamps, soft delete, encryption, tokens."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet

from monitors_mcp.service import UserService
from monitors_mcp.store import Alert, Base, Database, NotificationChannel, Rule, migrate
from monitors_mcp.store.secrets import SecretBox, SecretKeyError, load_secret_box

from tests.support.mcp_client import BTC, add_alerts


def test_migrations_create_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(sa.inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_migrating_again_changes_nothing(db: Database) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "monitors_mcp.store:migrations")
    head = ScriptDirectory.from_config(config).get_current_head()
    migrate(db.engine)
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar() == head


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("alerts", ["owner_id", "started_at", "id"]),
        ("alerts", ["owner_id", "state", "started_at", "id"]),
        ("alerts", ["rule_id", "started_at", "id"]),
        ("alerts", ["rule_id", "series_key", "state"]),
        ("rules", ["owner_id", "deleted_at", "name"]),
        ("rules", ["enabled", "deleted_at"]),
        ("silences", ["rule_id", "ends_at"]),
        ("notification_outbox", ["status", "next_attempt_at"]),
        ("engine_leases", ["expires_at"]),
        ("alert_events", ["alert_id", "at"]),
    ],
)
def test_queries_have_indexes(db: Database, table: str, columns: list[str]) -> None:
    inspector = sa.inspect(db.engine)
    indexed = [ix["column_names"] for ix in inspector.get_indexes(table)]
    indexed += [uq["column_names"] for uq in inspector.get_unique_constraints(table)]
    assert columns in indexed


def test_unique_keys(db: Database) -> None:
    inspector = sa.inspect(db.engine)
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("rules")}
    uniques |= {tuple(i["column_names"]) for i in inspector.get_indexes("rules") if i.get("unique")}
    assert ("owner_id", "live_name") in uniques
    outbox = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("notification_outbox")}
    outbox |= {tuple(i["column_names"]) for i in inspector.get_indexes("notification_outbox") if i.get("unique")}
    assert ("idempotency_key",) in outbox


def test_timestamps_round_trip_as_utc_with_microseconds(db: Database, alice: int) -> None:
    moment = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    with db.session() as s:
        rule = Rule(owner_id=alice, name="t", live_name="t", text=BTC, canonical=BTC, created_at=moment, updated_at=moment)
        s.add(rule)
        s.flush()
        rule_id = rule.id
    with db.session() as s:
        assert s.get(Rule, rule_id).created_at == moment


def test_deleted_rule_keeps_alerts_and_frees_its_name(db: Database, workspace, alice: int) -> None:
    ws = workspace(alice)
    created = ws.rules.create(BTC, name="btc")
    add_alerts(db, created.id, alice, 3)
    ws.rules.delete("btc")
    page = ws.alerts.list()
    assert [a.rule_name for a in page.alerts] == ["btc"] * 3
    assert all(a.rule_deleted for a in page.alerts)
    again = ws.rules.create(BTC, name="btc")
    assert again.id != created.id
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Alert).where(Alert.rule_id == created.id)) == 3


def test_names_are_unique_per_owner_only(db: Database, workspace, alice: int, bob: int) -> None:
    workspace(alice).rules.create(BTC, name="same")
    workspace(bob).rules.create(BTC, name="same")
    with pytest.raises(sa.exc.IntegrityError), db.session() as s:
        s.add(Rule(owner_id=alice, name="same", live_name="same", text=BTC, canonical=BTC))
        s.flush()


def test_names_are_case_sensitive_on_every_backend(workspace, alice: int) -> None:
    ws = workspace(alice)
    ws.rules.create(BTC, name="Btc")
    ws.rules.create(BTC, name="btc")
    assert ws.rules.get("Btc").name == "Btc"
    assert ws.rules.get("btc").name == "btc"


def test_channel_url_is_encrypted_at_rest(db: Database, workspace, alice: int, secrets: SecretBox) -> None:
    url = "slack://TokenAAAA/TokenBBBB/TokenCCCCCCCCCCCCCCCCCCCCCC"
    workspace(alice).channels.add("ops", url)
    with db.session() as s:
        row = s.scalars(sa.select(NotificationChannel).where(NotificationChannel.owner_id == alice)).one()
    assert "TokenAAAA" not in row.url_encrypted
    assert secrets.decrypt(row.url_encrypted) == url
    dump = " ".join(str(v) for v in (row.scheme, row.host, row.service, row.name))
    assert "Token" not in dump


def test_tokens_are_stored_hashed_and_can_be_revoked(db: Database, alice: int) -> None:
    users = UserService(db)
    name = users.list_users()
    user_name = dict(name)[alice]
    issued = users.create_token(user_name)
    with db.engine.connect() as conn:
        stored = [tuple(map(str, r)) for r in conn.execute(sa.text("select * from api_tokens"))]
    assert all(issued.token not in " ".join(r) for r in stored)
    assert users.verify_token(issued.token) == alice
    assert users.verify_token(issued.token + "x") is None
    users.revoke_token(issued.id)
    assert users.verify_token(issued.token) is None


def test_secret_box_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt("slack://a/b/c")
    ring = SecretBox([new, old])
    assert ring.decrypt(token) == "slack://a/b/c"
    rotated = ring.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "slack://a/b/c"
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox([new]).decrypt(token)
    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        SecretBox(["not-a-key"])


def test_secret_keys_from_environment_or_key_file(tmp_path, monkeypatch) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("MONITORS_SECRET_KEY", f"{first},{second}")
    token = SecretBox([second]).encrypt("x")
    assert load_secret_box(tmp_path).decrypt(token) == "x"
    monkeypatch.delenv("MONITORS_SECRET_KEY")
    monkeypatch.delenv("MONITORS_SECRET_KEY_FILE", raising=False)
    box = load_secret_box(tmp_path)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_secret_box(tmp_path).decrypt(box.encrypt("y")) == "y"


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    import threading

    database = Database("sqlite://")
    database.migrate()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(UserService(database).add_user("t")))
    thread.start()
    thread.join()
    assert UserService(database).user_id("t") == seen[0]
