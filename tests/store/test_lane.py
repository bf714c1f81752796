"""`StoreLane` (syncd.cycle.lane): the apply step's store writes run off the event loop, one at a time and in
the order asked, on a database file or server; on an in-memory SQLite database (one shared connection) they
run on the loop."""

from __future__ import annotations

import asyncio
import threading

from syncd.core.model import Action, AgentFields, Change, MemberStatus, Outcome, Recorded
from syncd.cycle.lane import StoreLane
from syncd.store import Settlement, Store

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _change(n: int) -> Change:
    fields = AgentFields(TENANT, f"+1415555{n:04d}", f"u{n}@contoso.com", None)
    return Change(Action.ONBOARD, f"oid-{n}", fields, None)


async def _record_and_settle(store: Store) -> tuple[list[int], set[int]]:
    """Two batches recorded and settled through one lane, all asked at once; the operation IDs in the order
    the lane returned them, and the threads the calls ran on."""
    threads: set[int] = set()
    run_id = store.begin_run(trigger="test", kind="full", dry_run=False)

    def start(changes: list[Change]) -> list[int]:
        threads.add(threading.get_ident())
        return store.start_operations(run_id, changes)

    with StoreLane(store) as lane:
        first, second = await asyncio.gather(
            lane.run(start, [_change(n) for n in range(0, 40)]),
            lane.run(start, [_change(n) for n in range(40, 80)]),
        )
        ids = [*first, *second]
        settled = [
            Settlement(
                op_id,
                Outcome.OK,
                Recorded(change.object_id, MemberStatus.ACTIVE, change.desired, upn=change.desired.upn),
            )
            for op_id, change in zip(ids, [_change(n) for n in range(80)], strict=True)
            if change.desired is not None
        ]
        await asyncio.gather(
            lane.run(store.settle_operations, settled[:40]), lane.run(store.settle_operations, settled[40:])
        )
    return ids, threads


def test_a_database_file_or_server_is_written_off_the_loop_in_order(store: Store) -> None:
    loop_thread = threading.get_ident()
    ids, threads = asyncio.run(_record_and_settle(store))
    assert ids == sorted(ids)  # asked first, recorded first
    assert len(set(ids)) == 80
    assert loop_thread not in threads
    assert len(threads) == 1  # one thread: never two write transactions at once
    assert store.pending_operations() == []
    records = store.load_recorded()
    assert len(records) == 80
    assert {record.status for record in records.values()} == {MemberStatus.ACTIVE}


def test_an_in_memory_database_is_written_on_the_loop() -> None:
    with Store("sqlite://") as store:
        store.upgrade()
        assert store.shares_one_connection
        ids, threads = asyncio.run(_record_and_settle(store))
        assert threads == {threading.get_ident()}
        assert len(ids) == 80
        assert store.pending_operations() == []
