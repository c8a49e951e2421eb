"""Users an operator can manage, tokens that expire or only read, users from an external issuer.

- ``users.disabled_at``: a disabled user's tokens are refused and their rules are not
  evaluated, until the user is enabled again (nothing of theirs is deleted);
- ``users.issuer`` / ``users.subject``: a user created on first sight of a bearer JWT
  from an external authorization server, keyed by the token's issuer and the value of
  the configured claim (both NULL for users added by an operator);
- ``api_tokens.expires_at``: a token is refused from then on (NULL: never expires);
- ``api_tokens.read_only``: the token lists and calls only the tools that read.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("issuer", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint(op.f("uq_users_issuer_subject"), ["issuer", "subject"])
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("read_only")
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_issuer_subject"), type_="unique")
        batch.drop_column("subject")
        batch.drop_column("issuer")
        batch.drop_column("disabled_at")
