"""An index on members.consistency_id.

Every cycle that plans a changed person with relinking on looks up who holds their consistency GUID
(`Store.anchor_holders`); without an index each batch of GUIDs read the whole members table, which at a
million members made a 1% churn cycle take some 40 s of CPU.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_members_consistency_id", "members", ["consistency_id"])


def downgrade() -> None:
    op.drop_index("ix_members_consistency_id", table_name="members")
