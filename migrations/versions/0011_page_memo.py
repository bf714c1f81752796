"""The page_memo table: the member pages of the last full read, as mapped, so that a fresh process's full
read takes a page Graph sends again byte for byte without parsing or mapping its users.

A row says that the `page_number`-th page of a configured group's transitive members had a body of digest
`digest` and was mapped, under mapping inputs of digest `inputs`, to `mapped` (JSON) with `next_link`. It is
a cache: empty at first, filled by the next full read, and dropping it loses nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "page_memo",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("page_number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("inputs", sa.String(32), nullable=False),
        sa.Column("next_link", sa.Text(), nullable=True),
        sa.Column("mapped", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "page_number", name="pk_page_memo"),
    )


def downgrade() -> None:
    op.drop_table("page_memo")
