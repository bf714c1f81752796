"""The mapping_cache table: earlier mappings of Graph users, so that a full read maps only the users who
changed.

A row says that a Graph user object whose fingerprint (the object as Graph returned it and every input of
its mapping: tenant, phone sources, region, filter, excluded group, phonenumbers and mapping versions) is
`fingerprint` mapped to this Member (`skip_reason` NULL) or Skipped. It is a cache: empty at first, filled
by the next full read, and dropping it loses nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mapping_cache",
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=True),
        sa.Column("upn", sa.String(), nullable=True),
        sa.Column("phone_number", sa.String(), nullable=True),
        sa.Column("consistency_id", sa.String(), nullable=True),
        sa.Column("phone_source", sa.String(200), nullable=True),
        sa.Column("skip_reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("object_id", name="pk_mapping_cache"),
    )


def downgrade() -> None:
    op.drop_table("mapping_cache")
