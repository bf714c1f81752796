"""One-shot `syncd sync --full` processes take the member pages the last one mapped from the store's page
memo (`syncd.graph.page_memo`, table `page_memo`), as a user runs them: each command a fresh process, on
SQLite, on PostgreSQL in a schema of its own, and in PostgreSQL's default `public` schema.

What SmartCommunicator receives is checked: nothing when nobody changed, and the one change a stored page
would hide if it were taken for the changed page.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import World
from tests.e2e.test_replicas_public import public_url

__all__ = ["public_url"]  # the fixture, used by the last test


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides tests/e2e/conftest.py's: the first test runs on both databases."""
    return str(request.param)


def group_reads(world: World, *args: str) -> list[dict[str, object]]:
    """Run `syncd sync --full` with `args`; the `graph.group_read` events it logged."""
    result = world.run("sync", "--full", *args)
    assert result.code == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    return [json.loads(line) for line in lines if '"graph.group_read"' in line]


def check_fresh_processes_take_stored_pages(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(5)]
    first = group_reads(world)
    assert (first[0]["mapped"], first[0]["pages_from_store"]) == (5, 0)
    assert sorted(world.agents()) == sorted(ids)

    world.smartcomm.clear_requests()
    again = group_reads(world)
    assert (again[0]["mapped"], again[0]["pages_unchanged"], again[0]["pages_from_store"]) == (0, 1, 1)
    assert world.writes() == []

    world.graph.update_user(ids[2], business_phones=["+1 415 555 0102"])
    changed = group_reads(world)
    # The page is mapped again: the changed user, the others from the mapping cache.
    assert (changed[0]["mapped"], changed[0]["from_cache"], changed[0]["pages_from_store"]) == (1, 4, 0)
    assert world.writes() == [("PATCH", f"/{ids[2]}", {"phone_number": "+14155550102"})]


def test_a_fresh_syncd_sync_takes_the_pages_the_last_one_mapped_from_the_store(world: World) -> None:
    check_fresh_processes_take_stored_pages(world)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_same_in_the_public_schema(world: World, public_url: str) -> None:
    """The defaults a PostgreSQL user gets: syncd's tables in `public`."""
    assert public_url in world.config.read_text()
    check_fresh_processes_take_stored_pages(world)
