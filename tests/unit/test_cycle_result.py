"""The repr of a cycle's result: a summary whose size does not grow with the people the cycle planned (a
task's repr holds its result's, and `asyncio.run` makes one after the cycle returned)."""

from __future__ import annotations

import asyncio
import tracemalloc

from syncd.core.model import Action, AgentFields, Change
from syncd.cycle.apply import Failure
from syncd.cycle.result import CycleResult

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _result(people: int) -> CycleResult:
    changes = [
        Change(
            Action.ONBOARD,
            f"00000000-0000-4000-8000-{i:012d}",
            AgentFields(TENANT, f"+1415555{i % 10000:04d}", f"user{i}@contoso.com", None),
            None,
            reason="new in scope",
        )
        for i in range(people)
    ]
    failures = [Failure(c.object_id, None, c.action, "boom", "conflict") for c in changes[: people // 2]]
    return CycleResult(
        run_id=7,
        kind="full",
        dry_run=False,
        planned={"onboard": people},
        outcomes={"onboard": {"ok": people - len(failures), "failed": len(failures)}},
        changes=changes,
        failures=failures,
        error=None,
    )


def test_the_repr_counts_changes_and_failures_instead_of_listing_them() -> None:
    text = repr(_result(4))
    assert text == (
        "CycleResult(run_id=7, kind='full', dry_run=False, exit_code=0, planned={'onboard': 4}, "
        "outcomes={'onboard': {'ok': 2, 'failed': 2}}, changes=4, failures=2, error=None)"
    )
    assert "user0@contoso.com" not in text


def test_the_repr_of_the_task_that_ran_a_cycle_allocates_no_more_for_more_people() -> None:
    """reprlib shortens a task's result to a few dozen characters, but only after the whole repr was built:
    for the 20,000 changes here the dataclass repr of each would take some 15 MB."""

    async def cycle() -> CycleResult:
        return _result(20_000)

    async def finished() -> asyncio.Task[CycleResult]:
        task = asyncio.get_running_loop().create_task(cycle())
        await task
        return task

    task = asyncio.run(finished())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        text = repr(task)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert "result=CycleResult(r" in text
    assert peak < 64 * 1024
