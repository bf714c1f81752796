"""Record which settings shaping desired state changed since the last cycle, per run: runs.settings_changed.

A JSON array of {"key", "from", "to"} (`syncd.core.setting_changes`), NULL when nothing changed and for runs
recorded before this revision. The values compared against live in kv (`shaping_settings`), written by each
cycle that applied its plan.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("settings_changed", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("settings_changed")
