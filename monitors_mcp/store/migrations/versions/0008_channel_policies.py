"""Channel policies: grouping notifications into one message, and a channel's mute window.

- ``notification_channels.group_by``: JSON list of label names (``rule`` for the
  rule's name) whose values put notifications in one group; NULL = no grouping,
  one message per notification;
- ``notification_channels.group_wait_seconds``: how long the first notification
  of a new group waits for others (NULL = 30);
- ``notification_channels.group_interval_seconds``: after a group's message,
  how long newer notifications of that group wait to go together (NULL = 300);
- ``notification_channels.mute_during``: the canonical text of a time window
  during which nothing is sent on the channel (NULL = never);
- ``notification_channels.group_title`` / ``group_message``: the channel's
  templates for a group's message (NULL = the defaults, which list each
  alert's title);
- ``notification_groups``: the timing of one group of one channel (when a
  dispatcher first saw its oldest unsent notification, when its last message
  went) and which dispatcher is sending it now, so that the notifications of
  one group are claimed and sent together by one dispatcher.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_channels") as batch:
        batch.add_column(sa.Column("group_by", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("group_wait_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("group_interval_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mute_during", sa.Text(), nullable=True))
        batch.add_column(sa.Column("group_title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("group_message", sa.Text(), nullable=True))
    op.create_table(
        "notification_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("pending_since", TIMESTAMP, nullable=True),
        sa.Column("last_sent_at", TIMESTAMP, nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["notification_channels.id"], ondelete="CASCADE",
                                name="fk_notification_groups_channel_id_notification_channels"),
        sa.PrimaryKeyConstraint("id", name="pk_notification_groups"),
        sa.UniqueConstraint("channel_id", "group_key", name="uq_notification_groups_channel_id_group_key"),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("notification_groups")
    with op.batch_alter_table("notification_channels") as batch:
        batch.drop_column("group_message")
        batch.drop_column("group_title")
        batch.drop_column("mute_during")
        batch.drop_column("group_interval_seconds")
        batch.drop_column("group_wait_seconds")
        batch.drop_column("group_by")
