"""The garbage collector's pauses during a cycle (bench/sync_cycles.py's workers): how many collections of
each generation ran and the seconds they took, from `gc.callbacks`."""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Any

from cycles.common import Json


class GcPauses:
    """`with GcPauses() as pauses:` around a cycle; then `pauses.figures()`."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        gc.callbacks.remove(self._callback)

    def figures(self) -> Json:
        """Collections and their seconds by generation, and the total seconds."""
        return {
            "collections": {f"gen{g}": n for g, n in enumerate(self.counts)},
            "seconds": {f"gen{g}": round(s, 4) for g, s in enumerate(self.seconds)},
            "total_s": round(sum(self.seconds), 4),
        }
