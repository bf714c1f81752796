"""The store writes of the apply step, off the event loop.

Recording a batch of writes as pending, or settling one, is a database transaction (tens of milliseconds
for a batch of 256 on SQLite). Run on the event loop, it would hold up every answer in flight meanwhile:
an initial sync of 100,000 people spent a fifth of its wall time so. A `StoreLane` runs them on one thread
of its own, in the order they were asked for (one at a time: never two write transactions racing for
SQLite's lock), while the loop goes on sending and reading. An in-memory SQLite database, whose single
connection every caller shares, is written on the loop as before.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

from syncd.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreLane:
    """Store calls run one at a time, in order, on a thread of their own. Use as `with StoreLane(store)
    as lane:`; `await lane.run(store.method, ...)`."""

    def __init__(self, store: Store) -> None:
        self._executor = (
            None if store.shares_one_connection else ThreadPoolExecutor(1, thread_name_prefix="syncd-store")
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # a call under way ends (its transaction commits or not)

    async def run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor is None:
            return call(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))
