"""The initial schema: members, runs, operations (the audit log) and kv.

Written by hand to match syncd/store/tables.py; a test migrates an empty database and checks that Alembic's
autogenerate comparison finds no difference from the tables, on SQLite and PostgreSQL. Names follow the
naming convention of `tables.metadata` so later revisions can refer to them.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("agent_active", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=True),
        sa.Column("phone_number", sa.String(), nullable=True),
        sa.Column("upn_pushed", sa.String(), nullable=True),
        sa.Column("consistency_id", sa.String(), nullable=True),
        sa.Column("upn", sa.String(), nullable=True),
        sa.Column("skip_reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_id", name="pk_members"),
    )
    op.create_index("ix_members_status", "members", ["status"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("desired", sa.Text(), nullable=True),
        sa.Column("believed", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_operations_run_id_runs"),
    )
    op.create_index("ix_operations_run_id", "operations", ["run_id"])
    op.create_index("ix_operations_object_id", "operations", ["object_id"])
    op.create_index("ix_operations_outcome", "operations", ["outcome"])

    op.create_table(
        "kv",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )


def downgrade() -> None:
    op.drop_table("kv")
    op.drop_index("ix_operations_outcome", table_name="operations")
    op.drop_index("ix_operations_object_id", table_name="operations")
    op.drop_index("ix_operations_run_id", table_name="operations")
    op.drop_table("operations")
    op.drop_table("runs")
    op.drop_index("ix_members_status", table_name="members")
    op.drop_table("members")
