"""The schema of syncd's database as SQLAlchemy Core tables: members, runs, operations (the audit log), kv,
graph_edges (direct group memberships for Graph delta), mapping_cache (earlier mappings of Graph users),
page_memo (the member pages of the last full read, as mapped).

These tables are the reference the migrations must produce: a test migrates an empty database and asks
Alembic's autogenerate comparison for differences against `metadata`, on SQLite and on PostgreSQL. Change a
table here only together with a new revision in `migrations/versions/`.

Times are `DateTime(timezone=True)` holding UTC; enumerations are stored as their text values (no database
enum types, so a new value needs no migration); JSON is stored as text so both backends read it alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Deterministic constraint and index names, identical on every backend, so a later migration can drop or
# alter them by name (SQLite batch mode needs names to find them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Values that come from Graph or the API (UPNs, numbers, GUIDs) are unbounded text: an unexpected length must
# not make PostgreSQL reject a whole batch of members. Our own codes (statuses, outcomes) are short.
_CODE = 32

members = Table(
    "members",
    metadata,
    Column("object_id", String(64), primary_key=True),
    Column("status", String(_CODE), nullable=False, index=True),
    Column("agent_active", Boolean, nullable=False),
    Column("tenant_id", String, nullable=True),
    Column("phone_number", String, nullable=True),
    Column("upn_pushed", String, nullable=True),
    Column("consistency_id", String, nullable=True, index=True),
    Column("upn", String, nullable=True),
    Column("skip_reason", String(_CODE), nullable=True),
    Column("detail", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("phone_source", String(200), nullable=True),
    Column("left_scope_at", DateTime(timezone=True), nullable=True, index=True),
)
"""One row per person we know of: the agent we believe exists (NULL fields when `agent_active` is false)
and how our last attempt went; `left_scope_at` while their agent waits out `sync.offboard_grace`."""

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger", String(_CODE), nullable=False),
    Column("kind", String(_CODE), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(_CODE), nullable=False),
    Column("counts", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("requested_by", Text, nullable=True),
    Column("settings_changed", Text, nullable=True),
)
"""One row per cycle; `counts` is a JSON object of str -> int; `requested_by` names who asked for a manual
cycle through the admin API (how they signed in, and from where); `settings_changed` a JSON array of the
settings shaping desired state that changed since the last cycle ({"key", "from", "to"}), NULL when none
did."""

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("object_id", String(64), nullable=False, index=True),
    Column("action", String(_CODE), nullable=False),
    Column("outcome", String(_CODE), nullable=False, index=True),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("desired", Text, nullable=True),
    Column("believed", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("from_object_id", String(64), nullable=True, index=True),
)
"""The audit log: one row per write to SmartCommunicator, inserted as "pending" before the request is sent
and settled after, so a crash in between leaves a trace the next start can resolve. A relink's row is
keyed by the new object ID, `from_object_id` naming the one its agent moved from."""

kv = Table(
    "kv",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Small named values: Graph delta links, per-group counts, ..."""

graph_edges = Table(
    "graph_edges",
    metadata,
    Column("group_id", String(64), primary_key=True),
    Column("member_id", String(64), primary_key=True),
    Column("member_kind", String(_CODE), nullable=False),
    Index("ix_graph_edges_member_id", "member_id"),
)
"""Direct memberships of the configured groups and every group nested in them, as Graph's groups delta
reported them (`member_kind` "user" or "group"): what an incremental cycle needs to tell whether a user who
left one group is still in scope through another."""

change_counters = Table(
    "change_counters",
    metadata,
    Column("name", String(_CODE), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
"""Counters the database itself moves on by triggers (migration 0010): "members" moves on with every
committed transaction that inserts, updates or deletes member rows, whoever wrote them, so a process that
holds the records it loaded can tell whether they are still the table's (`Store.members_version`)."""

mapping_cache = Table(
    "mapping_cache",
    metadata,
    Column("object_id", String(64), primary_key=True),
    Column("fingerprint", BigInteger, nullable=False),
    Column("tenant_id", String, nullable=True),
    Column("upn", String, nullable=True),
    Column("phone_number", String, nullable=True),
    Column("consistency_id", String, nullable=True),
    Column("phone_source", String(200), nullable=True),
    Column("skip_reason", String(_CODE), nullable=True),
    Column("detail", Text, nullable=True),
)
"""A cache of the mapping of Graph users (`syncd.graph.mapping_cache`): a user object whose fingerprint
(`syncd.graph.fingerprint`: the object and every input of its mapping) is `fingerprint` maps to this Member
(`skip_reason` NULL) or Skipped. Written by full reads, whatever their writes do; never a source of truth."""

page_memo = Table(
    "page_memo",
    metadata,
    Column("group_id", String(64), primary_key=True),
    Column("page_number", Integer, primary_key=True),
    Column("digest", String(32), nullable=False),
    Column("inputs", String(32), nullable=False),
    Column("next_link", Text, nullable=True),
    Column("mapped", Text, nullable=False),
)
"""The member pages of the last full read (`syncd.graph.page_memo`): the `page_number`-th page (from 1) of a
configured group's transitive members, whose whole body had the blake2b digest `digest` (hex) and was mapped,
under mapping inputs of digest `inputs` (hex), to `mapped` (JSON, `syncd.store.pages`) with this next link.
Written by full reads, whatever their writes do; never a source of truth."""
