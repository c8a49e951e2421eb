"""The outbox row's claimer: which engine replica is sending it.

- ``notification_outbox.claimed_by``: the replica that claimed a ``sending``
  row. An engine restarted under the same replica name (a Kubernetes pod's
  container restarted in place) knows that nothing of its own is in flight
  any more, and takes its rows again at once instead of waiting for the
  claim to run out.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("claimed_by")
