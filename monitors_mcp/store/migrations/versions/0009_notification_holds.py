"""Notification holds: why an outbox row is held, and the firing notices that holds and escalations add.

- ``notification_outbox.held_reason``: why a row is not sent — ``silenced``, ``muted`` (the rule's
  ``mute during``), ``muted by channel NAME`` (the channel's ``mute_during``), ``suppressed by rule
  NAME`` (``depends on``), ``acknowledged`` (a repeat of an acknowledged alert); its status is then
  ``silenced``, ``muted`` or ``suppressed``. NULL for a row that is sent.
- ``notification_outbox.late``: a firing notice sent when the hold over the alert's firing ended.
- ``notification_outbox.escalated``: a firing notice sent by ``escalate to … after …``.

What each firing alert's channels were told lives with the series state (``rule_states.machine``).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("held_reason", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("escalated")
        batch.drop_column("late")
        batch.drop_column("held_reason")
