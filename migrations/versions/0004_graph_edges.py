"""The graph_edges table: direct memberships of the configured groups and their nested groups.

Incremental cycles read Graph's groups delta (`members@delta`), which reports direct membership changes
only; to tell whether a user removed from one group is still in scope through another, the direct
memberships of every tracked group are kept here. The delta links themselves live in kv. A full cycle
rewrites the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "graph_edges",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("member_kind", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "member_id", name="pk_graph_edges"),
    )
    op.create_index("ix_graph_edges_member_id", "graph_edges", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_graph_edges_member_id", table_name="graph_edges")
    op.drop_table("graph_edges")
