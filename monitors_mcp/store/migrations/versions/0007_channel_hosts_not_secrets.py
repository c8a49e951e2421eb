"""Channel hosts that may be credentials are no longer kept in plain text.

- ``notification_channels.host`` is cleared for ntfy and Matrix channels: an
  ntfy URL without a path (``ntfy://TOPIC``) carries its topic, and a Matrix
  URL may carry a token, where a host would be. The encrypted URL keeps them;
  listings work out the host to show from it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE notification_channels SET host = NULL "
                       "WHERE scheme IN ('ntfy', 'ntfys', 'matrix', 'matrixs')"))


def downgrade() -> None:
    pass  # the hosts shown are worked out from the encrypted URLs; nothing to restore
