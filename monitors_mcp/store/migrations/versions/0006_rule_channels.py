"""Which channels each rule names in ``notify``, so a channel's rules are found by one lookup.

- ``rule_channels``: one row per (rule, channel name) of a live rule's
  ``notify`` clause, with the rule's owner. Deleting a notification channel
  lists the rules still naming it from here, without parsing every rule again.
  Filled for the rules already stored by reading their ``notify`` clauses once.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("rules.id", ondelete="CASCADE",
                                                         name="fk_rule_channels_rule_id_rules"), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                          name="fk_rule_channels_owner_id_users"), nullable=False),
        sa.Column("channel_name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rule_channels"),
        sa.UniqueConstraint("rule_id", "channel_name", name="uq_rule_channels_rule_id_channel_name"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
    )
    op.create_index("ix_rule_channels_owner_id_channel_name", "rule_channels", ["owner_id", "channel_name"])
    _fill()


def _fill() -> None:
    """The live rules' notify clauses, read once; a rule the language no longer accepts names none."""
    try:
        import monitors_dsl
    except ImportError:  # pragma: no cover - the language ships with the store
        return
    bind = op.get_bind()
    rules = bind.execute(sa.text("SELECT id, owner_id, text FROM rules WHERE deleted_at IS NULL")).fetchall()
    table = sa.table("rule_channels", sa.column("rule_id"), sa.column("owner_id"), sa.column("channel_name"))
    rows = []
    for rule_id, owner_id, text in rules:
        try:
            parsed = monitors_dsl.parse(text)
        except Exception:  # noqa: BLE001 - a stored rule that no longer parses names no channel
            continue
        names = {name for rule in parsed for name in (rule.notify or ())}
        rows.extend({"rule_id": rule_id, "owner_id": owner_id, "channel_name": name[:128]} for name in sorted(names))
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_index("ix_rule_channels_owner_id_channel_name", table_name="rule_channels")
    op.drop_table("rule_channels")
