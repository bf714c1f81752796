"""runs.requested_by: who asked for a manual cycle (how they signed in to the admin API, and from where).

The run's `trigger` stays a short code ("schedule", "manual", "sighup", "cli"); a manual cycle asked for
through the admin API also records its requester, for `history`, `status` and the audit log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("requested_by", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("requested_by")
