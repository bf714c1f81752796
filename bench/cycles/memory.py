"""Opt-in probes of what a bench worker's cycles hold at their peak (their figures mean little meanwhile).

- SYNCD_BENCH_RSS_STACKS=<file>: a thread reads the worker's RSS every 5 ms and, each time it reaches a new
  high (by 1 MB at least), appends the time, the RSS and the stack of every other thread to <file>. The
  last entries name the code running when the peak was reached, even when what made it is gone a moment
  later (a transient string, a set built and dropped). It costs little CPU: the stacks are written only on
  a new high.
- SYNCD_BENCH_TRACEMALLOC=<folder>: the worker traces allocations (SYNCD_BENCH_TRACEMALLOC_FRAMES frames each,
  8 by default) and, for each cycle, writes two snapshots there: <pid>-<n>-<kind>-peak.snap, the last one
  taken while the traced memory climbed (a thread samples it every 0.2 s and takes a snapshot each time it
  has grown by 5% since the last one: within 5% of the highest sample, which may miss a short spike), and
  <pid>-<n>-<kind>-end.snap, right after the cycle returned (what it left behind). Read them with
  `tracemalloc.Snapshot.load` (`statistics("traceback")`, `compare_to`). Tracing slows a cycle several
  times over and adds to its RSS.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import tracemalloc
from pathlib import Path
from types import TracebackType

STACKS_SAMPLE_S = 0.005
STACKS_STEP_MB = 1
SNAPSHOT_SAMPLE_S = 0.2
SNAPSHOT_GROWTH = 1.05


def start_from_environment() -> Path | None:
    """Start the probes the environment asks for; the snapshots' folder (created) when tracing, else None."""
    stacks = os.environ.get("SYNCD_BENCH_RSS_STACKS")
    if stacks:
        RssStacks(Path(stacks)).start()
    where = os.environ.get("SYNCD_BENCH_TRACEMALLOC")
    if not where:
        return None
    folder = Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("SYNCD_BENCH_TRACEMALLOC_FRAMES", "8")))
    return folder


def _rss_mb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


class RssStacks:
    """The stacks of every thread at each new high of the RSS, appended to a file (Linux only)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = threading.Thread(target=self._run, name="bench-rss-stacks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        high = 0
        me = threading.get_ident()
        with self._path.open("a", encoding="utf-8") as out:
            while True:
                rss = _rss_mb()
                if rss >= high + STACKS_STEP_MB:
                    high = rss
                    names = {thread.ident: thread.name for thread in threading.enumerate()}
                    out.write(f"=== {time.time():.3f} pid {os.getpid()} rss {rss} MB\n")
                    for ident, frame in sys._current_frames().items():
                        if ident != me:
                            out.write(f"--- thread {names.get(ident, ident)}\n")
                            out.writelines(traceback.format_stack(frame, limit=40))
                    out.flush()
                time.sleep(STACKS_SAMPLE_S)


class PeakSnapshots:
    """`with PeakSnapshots(folder, name):` around one cycle: the snapshots near its peak and at its end."""

    def __init__(self, where: Path, name: str) -> None:
        self._where = where
        self._name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-tracemalloc", daemon=True)
        self._peak: tracemalloc.Snapshot | None = None
        self._peak_size = 0
        self._held = 0
        """What the snapshot kept holds of the traced memory (its own traces), left out of the samples."""

    def __enter__(self) -> PeakSnapshots:
        tracemalloc.reset_peak()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        tracemalloc.take_snapshot().dump(str(self._where / f"{self._name}-end.snap"))
        if self._peak is not None:
            self._peak.dump(str(self._where / f"{self._name}-peak.snap"))
        self._peak = None
        print(
            f"tracemalloc {self._name}: peak snapshot at {self._peak_size / 2**20:.1f} MB traced",
            file=sys.stderr,
        )

    def _sample(self) -> None:
        while not self._stop.wait(SNAPSHOT_SAMPLE_S):
            current = tracemalloc.get_traced_memory()[0] - self._held
            if current > self._peak_size * SNAPSHOT_GROWTH:
                self._peak, self._held = None, 0  # let the last one go before the next is taken
                before = tracemalloc.get_traced_memory()[0]
                self._peak = tracemalloc.take_snapshot()
                self._held = max(0, tracemalloc.get_traced_memory()[0] - before)
                self._peak_size = before
