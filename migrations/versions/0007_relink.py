"""Relinking and the offboarding grace period: operations.from_object_id and members.left_scope_at.

A relink moves an agent from one object ID to another (the same person re-created in Entra); its operation
is keyed by the new object ID and names the old one in `from_object_id` (indexed: `syncd history --user`
and `syncd explain` of the old object ID find it). `left_scope_at` holds when a cycle first found a person
out of scope while `sync.offboard_grace` keeps their agent (indexed: every cycle looks for the offboards
that fall due); NULL for every existing row (in scope, or offboarded already), which is what they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("operations", sa.Column("from_object_id", sa.String(64), nullable=True))
    op.create_index("ix_operations_from_object_id", "operations", ["from_object_id"])
    op.add_column("members", sa.Column("left_scope_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_members_left_scope_at", "members", ["left_scope_at"])


def downgrade() -> None:
    op.drop_index("ix_members_left_scope_at", table_name="members")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("left_scope_at")
    op.drop_index("ix_operations_from_object_id", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("from_object_id")
