"""A CPU hog of our own: one busy process per core (or `--workers N`), until it is told to stop.

`make test-under-load` runs it behind `make test`, so that the suite shows it does not need a quiet machine.
It stops on SIGTERM or SIGINT (taking its workers with it), after `--seconds` if given, and each worker
stops by itself once this process is gone (even after a `kill -9`), so no spinning process outlives it.

    python bench/cpu_load.py              # until stopped
    python bench/cpu_load.py --workers 2 --seconds 60
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time
from types import FrameType


def spin(parent: int) -> None:
    """Keep one core busy until the parent process is gone."""
    # The parent's handlers are inherited through fork: here SIGTERM (the parent stopping us) and SIGINT
    # (a terminal's Ctrl-C, which reaches the whole group) end the process at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while os.getppid() == parent:
        for _ in range(200_000):  # about 10 ms of work between checks of the parent
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cores = os.cpu_count() or 2
    parser.add_argument("--workers", type=int, default=cores, help="busy processes (default: one per core)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: never)")
    args = parser.parse_args(argv)

    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=spin, args=(os.getpid(),), name=f"cpu-load-{n}", daemon=True)
        for n in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    print(f"cpu_load: {args.workers} busy processes (pid {os.getpid()})", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    try:
        while not stop and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
                worker.join()
    print("cpu_load: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
