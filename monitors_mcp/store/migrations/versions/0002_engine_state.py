"""Engine state: the serialized per-series state machine and the last evaluation error.

- ``rule_states.machine``: ``engine.state.SeriesState.to_dict()`` (JSON), the
  state machine's full memory of one series between evaluations;
- ``rule_states.last_error``: why the last evaluation of this series' rule failed
  (cleared by the next evaluation that succeeds);
- ``rules.last_error`` / ``rules.last_error_at``: the same for the rule as a whole
  (a rule with no series yet has no ``rule_states`` row to hold it).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_states") as batch:
        batch.add_column(sa.Column("machine", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    with op.batch_alter_table("rules") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_error_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rules") as batch:
        batch.drop_column("last_error_at")
        batch.drop_column("last_error")
    with op.batch_alter_table("rule_states") as batch:
        batch.drop_column("last_error")
        batch.drop_column("machine")
