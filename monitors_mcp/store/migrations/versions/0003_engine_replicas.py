"""Engine replicas: a heartbeat per running engine, and leases looked up by holder.

- ``engine_replicas``: one row per running ``monitors-engine`` process
  (``replica`` is its identity), renewed with its leases; the live replicas —
  rows whose ``expires_at`` is in the future — decide each one's fair share
  of the rules, so a new replica is seen before it holds anything;
- ``ix_engine_leases_holder_expires_at``: a replica renews and counts its own
  leases by holder;
- ``engine_leases.last_tick_at``: the newest due time the rule was evaluated
  for, by whichever holder: a rule handed to another replica is not
  evaluated again for a due time already done.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_replicas",
        sa.Column("replica", sa.String(length=128), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("replica", name=op.f("pk_engine_replicas")),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_engine_replicas_expires_at", "engine_replicas", ["expires_at"])
    op.create_index("ix_engine_leases_holder_expires_at", "engine_leases", ["holder", "expires_at"])
    with op.batch_alter_table("engine_leases") as batch:
        batch.add_column(sa.Column("last_tick_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engine_leases") as batch:
        batch.drop_column("last_tick_at")
    op.drop_index("ix_engine_leases_holder_expires_at", table_name="engine_leases")
    op.drop_index("ix_engine_replicas_expires_at", table_name="engine_replicas")
    op.drop_table("engine_replicas")
