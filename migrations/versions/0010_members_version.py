"""The change_counters table and the triggers that move its "members" counter on.

Every committed transaction that inserts, updates or deletes rows of `members` moves the counter on, whoever
wrote them (syncd, another replica, an administrator's SQL), so a daemon can keep the records a full cycle
loaded and load them again only when the table changed (`Store.members_version`).

- SQLite: one trigger per statement kind, FOR EACH ROW (SQLite has no other kind); SQLite has one writer at
  a time, so the counter's row never takes part in a deadlock.
- PostgreSQL: a deferred constraint trigger FOR EACH ROW, which runs when the transaction commits and moves
  the counter once per transaction (a transaction-local setting remembers it did): the counter's row is
  locked only at commit, after every member row the transaction locks, so two writers never wait for each
  other in a cycle. TRUNCATE (which constraint triggers cannot see) has a trigger of its own. The function
  names the counter's table with the schema it was created in, so it works whatever `search_path` the
  writer has.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE {table} SET value = value + 1 WHERE name = 'members'"


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_change_counters"),
    )
    op.execute("INSERT INTO change_counters (name, value) VALUES ('members', 0)")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.dialect.identifier_preparer.quote_schema(
            bind.execute(sa.text("SELECT current_schema()")).scalar_one()
        )
        bump = _BUMP.format(table=f"{schema}.change_counters")
        op.execute(
            f"""CREATE OR REPLACE FUNCTION {schema}.syncd_members_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('syncd.members_moved', true) IS DISTINCT FROM txid_current()::text THEN
                    {bump};
                    PERFORM set_config('syncd.members_moved', txid_current()::text, true);
                END IF;
                RETURN NULL;
            END
            $$"""
        )
        op.execute(
            f"""CREATE CONSTRAINT TRIGGER members_changed AFTER INSERT OR UPDATE OR DELETE
            ON {schema}.members DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION {schema}.syncd_members_changed()"""
        )
        op.execute(
            f"""CREATE TRIGGER members_truncated AFTER TRUNCATE ON {schema}.members
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.syncd_members_changed()"""
        )
    else:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER members_changed_{event.lower()} AFTER {event} ON members "
                f"BEGIN {_BUMP.format(table='change_counters')}; END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS members_truncated ON members")
        op.execute("DROP TRIGGER IF EXISTS members_changed ON members")
        op.execute("DROP FUNCTION IF EXISTS syncd_members_changed()")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS members_changed_{event}")
    op.drop_table("change_counters")
