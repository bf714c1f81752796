"""Benchmark (run by hand, never by the test suite; needs valgrind): where `syncd status` spends its
instructions, part by part.

    .venv/bin/python bench/startup_instructions.py [--jobs 2] [--json-out FILE]

Wall time on a shared 2-core machine moves by a fifth within the hour, so `bench/startup.py`'s 0.3 s bound
holds or fails with the machine. Instructions do not: each step below runs once under
`valgrind --tool=callgrind` (after a run that writes its bytecode, with PYTHONHASHSEED=0; counts repeat to
within 1%), and each part of the command is the difference between a step and the one before it, which
imports one thing more:

  1. the interpreter (`pass`);
  2. `import sqlalchemy`;
  3. pydantic and SQLAlchemy's SQLite dialect;
  4. `import syncd` (structlog, with rich hidden as syncd hides it);
  5. pydantic's first model (its internals, imported lazily, and plugin discovery);
  6. syncd's settings modules (`syncd.config.loader`, `syncd.config.logs`);
  7. syncd's store (`syncd.store`);
  8. the status report and the command line (`syncd.reports.status`, `syncd.cli.main`);
  9. `syncd status` on a migrated SQLite database (the rest: running it);
 10. `syncd status` before the database exists (printed beside, not a part).

Each step's imports run with the collector paused and then frozen, as `syncd` runs its own. Prints a table
of million instructions and shares; a part that is negative means the steps overlap (a module the later
step would have imported came with an earlier one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_PAUSED = "import gc; gc.disable(); "
_STEPS: list[tuple[str, str]] = [
    ("the interpreter's start", "pass"),
    ("import sqlalchemy", "import sqlalchemy"),
    ("pydantic and SQLite's dialect", "import pydantic, sqlalchemy.dialects.sqlite"),
    ("structlog (import syncd: rich hidden)", "import syncd"),
    (
        "pydantic's first model (internals, plugin discovery)",
        "from pydantic import BaseModel\nclass _First(BaseModel):\n    x: int = 1",
    ),
    ("syncd's settings modules", "import syncd.config.loader, syncd.config.logs"),
    ("syncd's store modules", "import syncd.store"),
    ("the status report and the command line", "import syncd.reports.status, syncd.cli.main"),
]
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def python_of_syncd() -> tuple[str, str]:
    """The interpreter and the installed `syncd` script beside it."""
    script = Path(sys.executable).with_name("syncd")
    if not script.exists():
        raise SystemExit(f"no syncd script beside {sys.executable}: run `make venv` first")
    return sys.executable, str(script)


def instructions(valgrind: str, argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Instructions one run of `argv` executes (after a first run that writes its bytecode)."""
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env={**env, "PYTHONHASHSEED": "0"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(argv)} under valgrind exited {done.returncode}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2, help="steps run at once (default 2)")
    parser.add_argument("--json-out", default="", help="also write the counts to this file")
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench/startup_instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    python, script = python_of_syncd()
    # No SYNCD_* of the caller's, and no PYTHONDONTWRITEBYTECODE: a user's process finds its bytecode.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory(prefix="syncd-bench-instructions-") as tmp:
        migrated, empty = Path(tmp, "migrated"), Path(tmp, "empty")
        for folder in (migrated, empty):
            (folder / "data").mkdir(parents=True)
        subprocess.run(
            [python, script, "db", "upgrade"], env=env, cwd=migrated, capture_output=True, check=True
        )
        jobs: list[tuple[list[str], Path]] = []
        code = ""
        for _, step in _STEPS:
            code = f"{code}\n{step}" if code else step
            jobs.append(([python, "-c", f"{_PAUSED}{code}\ngc.freeze()"], empty))
        jobs.append(([python, script, "status"], migrated))
        jobs.append(([python, script, "status"], empty))
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            counts = list(pool.map(lambda job: instructions(valgrind, job[0], env, job[1]), jobs))
    *steps, status, status_empty = counts
    parts = [("the interpreter's start", steps[0])]
    parts += [(name, steps[i] - steps[i - 1]) for i, (name, _) in enumerate(_STEPS) if i > 0]
    parts.append(("running status (settings, database, queries, output)", status - steps[-1]))
    print("\n--- `syncd status`: million instructions, part by part (valgrind, PYTHONHASHSEED=0) ---")
    print(f"{'part':<58} {'million':>9} {'share':>6}")
    for name, count in parts:
        print(f"{name:<58} {count / 1e6:>9.0f} {count / status:>6.0%}")
    print(f"{'syncd status (migrated SQLite database)':<58} {status / 1e6:>9.0f} {1:>6.0%}")
    print(f"{'syncd status (no database yet)':<58} {status_empty / 1e6:>9.0f} {status_empty / status:>6.0%}")
    if args.json_out:
        document = {"parts": dict(parts), "status": status, "status_no_database": status_empty}
        Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"counts written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
