"""Benchmark (run by hand, never by the test suite): the start-up of one-shot `syncd` commands.

    .venv/bin/python bench/startup.py [--runs 5]

Runs `syncd --help` and `syncd status` (on an empty SQLite database of a throw-away configuration) --runs
times each, every run a fresh process, and prints the best wall time (and that run's CPU) beside the bound
of 0.3 s, with the ratio and PASS/FAIL. Then, once more each under `python -X importtime`, whether
msgraph-sdk (any `msgraph` module) was imported and how many modules were: printed, not judged.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 0.3
Json = dict[str, Any]


def syncd_command() -> list[str]:
    """The installed `syncd` script, run by this interpreter (as the console script runs it)."""
    script = Path(sys.executable).with_name("syncd")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "syncd.cli.main"]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process running `argv` (it must exit 0)."""
    cpu = children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, children_cpu_s() - cpu


def imported(argv: list[str], env: dict[str, str]) -> list[str]:
    """The modules a run of `argv` imports (`python -X importtime`)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, env=env, check=False
    )
    modules = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.append(name)
    return modules


def measure(runs: int) -> list[Json]:
    base = syncd_command()
    # No SYNCD_* of the caller's, and no PYTHONDONTWRITEBYTECODE: a user's process finds its bytecode.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    rows: list[Json] = []
    with tempfile.TemporaryDirectory(prefix="syncd-bench-startup-") as tmp:
        config = Path(tmp) / "syncd.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{Path(tmp) / "syncd.db"}"\n', encoding="utf-8")
        commands = {
            "syncd --help": [*base, "--help"],
            "syncd status": [*base, "--config", str(config), "status"],
        }
        for name, argv in commands.items():
            timed(argv, env)  # a first run: bytecode written, the database created
            samples = [timed(argv, env) for _ in range(runs)]
            wall, cpu = min(samples)
            modules = imported(argv, env)
            graph = [m for m in modules if m.split(".")[0] == "msgraph"]
            rows.append(
                {
                    "command": name,
                    "best_wall_s": wall,
                    "cpu_s": cpu,
                    "walls_s": [round(w, 4) for w, _ in samples],
                    "modules": len(modules),
                    "msgraph_modules": len(graph),
                }
            )
    return rows


def print_report(rows: list[Json], runs: int) -> None:
    print(f"\n--- start-up of one-shot commands (best of {runs} fresh processes) ---")
    print(f"{'target':<40} {'figure':>10} {'limit':>10} {'unit':<6} {'fig/lim':>7}  result")
    for r in rows:
        ok = r["best_wall_s"] < BOUND_S
        graph = f"yes ({r['msgraph_modules']} modules)" if r["msgraph_modules"] else "no"
        print(
            f"{r['command'] + ' wall < 0.3 s':<40} {r['best_wall_s']:>10.3f} {BOUND_S:>10.3f} {'s':<6}"
            f" {r['best_wall_s'] / BOUND_S:>7.2f}  {'PASS' if ok else 'FAIL'}"
        )
        print(
            f"    CPU {r['cpu_s']:.3f} s; walls {r['walls_s']}; imports {r['modules']} modules;"
            f" msgraph imported: {graph}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = measure(args.runs)
    print_report(rows, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
