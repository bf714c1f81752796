"""Benchmark (run by hand): saving and loading 100,000 member records on SQLite and PostgreSQL.

    .venv/bin/python bench/store_save.py [--members 100000] [--postgres URL]

PostgreSQL defaults to SYNCD_TEST_POSTGRES_URL or postgresql+psycopg://root@127.0.0.1:5432/test, in a
throw-away schema. Prints seconds per operation and per 1,000 members for each backend.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from syncd.core.model import AgentFields, MemberStatus, Recorded
from syncd.store import Store

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


def records(count: int) -> list[Recorded]:
    return [
        Recorded(
            f"{n:08d}-0000-4000-8000-000000000000",
            MemberStatus.ACTIVE,
            AgentFields(TENANT, f"+1415{n:07d}", f"user{n}@contoso.com", None),
            upn=f"user{n}@contoso.com",
        )
        for n in range(count)
    ]


def measure(name: str, store: Store, rows: list[Recorded]) -> None:
    store.upgrade()
    started = time.perf_counter()
    store.save_members(rows)
    saved = time.perf_counter() - started
    started = time.perf_counter()
    loaded = store.load_recorded()
    read = time.perf_counter() - started
    assert len(loaded) == len(rows)
    per = 1000 / len(rows)
    print(
        f"{name:<11} save {saved:6.2f} s ({saved * per * 1000:5.1f} ms/1k)   "
        f"load {read:6.2f} s ({read * per * 1000:5.1f} ms/1k)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    rows = records(args.members)
    print(f"{args.members:,} members")
    with tempfile.TemporaryDirectory() as directory:
        store = Store(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            measure("sqlite", store, rows)
        finally:
            store.close()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = Store(args.postgres, connect_args={"options": f"-csearch_path={schema}"})
        try:
            measure("postgresql", store, rows)
        finally:
            store.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
