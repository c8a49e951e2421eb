"""Migration 0008 on SQLite and MariaDB: a channel stored before it keeps its row with every policy NULL (the
defaults), the group timing table is made, and going back to 0007 takes exactly that away."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from monitors_mcp.store import migrate
from tests.support import mariadb
from tests.support.store import BACKENDS, mysql_base_url

POLICY_COLUMNS = {"group_by", "group_wait_seconds", "group_interval_seconds", "mute_during", "group_title",
                  "group_message"}


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        made = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield made
        made.dispose()
        return
    url = mariadb.database_url(mysql_base_url(), "mt_channel_policies_migration")
    made = sa.create_engine(url)
    yield made
    made.dispose()
    mariadb.drop_database(url)


def downgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "monitors_mcp.store:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_0008_adds_the_policies_to_stored_channels_and_goes_back(engine: sa.Engine) -> None:
    migrate(engine, "0007")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, name, created_at) VALUES (1, 'u', '2024-01-01 00:00:00')"))
        conn.execute(sa.text("INSERT INTO notification_channels (id, owner_id, name, url_encrypted, scheme, "
                             "created_at) VALUES (7, 1, 'ops', 'x', 'jsons', '2024-01-01 00:00:00')"))
    assert not POLICY_COLUMNS & columns(engine, "notification_channels")

    migrate(engine, "0008")
    assert POLICY_COLUMNS <= columns(engine, "notification_channels")
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT name, group_by, group_wait_seconds, group_interval_seconds, mute_during, "
                                   "group_title, group_message FROM notification_channels")).one()
        assert tuple(row) == ("ops", None, None, None, None, None, None)
        conn.execute(sa.text("INSERT INTO notification_groups (channel_id, group_key, labels) "
                             "VALUES (7, :key, '{}')"), {"key": "k" * 64})
        with pytest.raises(sa.exc.IntegrityError):  # one timing row per (channel, group)
            with conn.begin_nested():
                conn.execute(sa.text("INSERT INTO notification_groups (channel_id, group_key, labels) "
                                     "VALUES (7, :key, '{}')"), {"key": "k" * 64})
    assert {"pending_since", "last_sent_at", "claimed_by", "claimed_until"} <= columns(engine, "notification_groups")

    downgrade(engine, "0007")
    assert not POLICY_COLUMNS & columns(engine, "notification_channels")
    assert "notification_groups" not in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM notification_channels")).scalar() == "ops"
    migrate(engine)  # and forward to the newest again
    assert POLICY_COLUMNS <= columns(engine, "notification_channels")
