"""Indexes for the audit history: operations.created_at and runs.started_at.

`syncd history --since` filters operations by `created_at`, and retention (`sync.history_days`) deletes
operations and runs older than a cutoff in batches; without these indexes each batch would scan the whole
table. Names follow the naming convention of `tables.metadata`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_operations_created_at", "operations", ["created_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_index("ix_operations_created_at", table_name="operations")
