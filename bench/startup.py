"""Benchmark (run by hand, never by the test suite): the start-up of one-shot `syncd` commands.

    .venv/bin/python bench/startup.py [--runs 7] [--database-url URL]

In a throw-away working directory, with no configuration file and no SYNCD_* variable (the default
configuration: the SQLite database `data/syncd.db`), runs `syncd --help`, `syncd status` before the database
exists, then `syncd db upgrade` once and `syncd status` on the database it made; with `--database-url`, also
`syncd status` on that database (SYNCD_DATABASE__URL; already migrated: the bench writes nothing to it), such
as a PostgreSQL one. Each is run --runs times, every run a fresh process with its output piped, after a first
run that writes the bytecode. Prints the best wall time (with that run's CPU, and the least CPU of any run)
beside the bound of 0.3 s, with the ratio and PASS/FAIL. Then, once more each under `python -X importtime`,
how many modules were imported and which of those the command never needs were: printed, not judged
(tests/unit/test_cli_imports.py judges them).

Beside each `syncd status` on SQLite, measured the same way, its libraries' floor (`FLOOR`, printed, not
judged): a process doing only what the command cannot do without, with nothing of syncd: import pydantic,
SQLAlchemy and structlog, validate one pydantic model, open the same database through SQLAlchemy and run one
query, the collector paused throughout (the command pauses it while importing). What the command takes
beyond it is syncd's own: its modules, its settings models, the queries and the report.
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

UNNEEDED = (
    "msgraph",
    "kiota_abstractions",
    "kiota_http",
    "msal",
    "httpx",
    "aiohttp",
    "alembic",
    "mako",
    "jinja2",
    "rich",
    "phonenumbers",
    "lark",
    "cryptography",
    "sqlalchemy.orm",
)
"""Packages (and SQLAlchemy's ORM) that neither `--help` nor `status` (piped) needs here."""

FLOOR = """
import gc
gc.disable()
import pydantic
import sqlalchemy
import structlog  # noqa: F401 - imported, as the command imports it

class Database(pydantic.BaseModel):
    url: str

engine = sqlalchemy.create_engine(Database(url={url!r}).url)
with engine.connect() as connection:
    connection.execute(sqlalchemy.text("SELECT count(*) FROM sqlite_master")).all()
gc.freeze()
gc.enable()
"""
"""The libraries' floor of `syncd status` on the SQLite database at {url}."""


def syncd_command() -> list[str]:
    """The installed `syncd` script, run by this interpreter (as the console script runs it)."""
    script = Path(sys.executable).with_name("syncd")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "syncd.cli.main"]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process running `argv` (it must exit 0)."""
    cpu = children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, children_cpu_s() - cpu


def imported(argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The modules a run of `argv` imports (`python -X importtime`)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    modules = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.append(name)
    return modules


def unneeded(modules: list[str]) -> list[str]:
    """The entries of UNNEEDED that `modules` holds (a package counts when any of its modules was loaded)."""
    loaded = set(modules)
    # A failed probe (structlog's `import rich` while syncd hides it) is listed by importtime too: only a
    # package with a submodule, or a module ORM-deep, counts as loaded.
    return [
        name
        for name in UNNEEDED
        if any(m.startswith(name + ".") for m in loaded) or ("." in name and name in loaded)
    ]


def measure(runs: int, database_url: str | None) -> list[Json]:
    base = syncd_command()
    # No SYNCD_* of the caller's, and no PYTHONDONTWRITEBYTECODE: a user's process finds its bytecode.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    rows: list[Json] = []
    with tempfile.TemporaryDirectory(prefix="syncd-bench-startup-") as tmp:
        cwd = Path(tmp)
        database = cwd / "data" / "syncd.db"
        (cwd / "data").mkdir()
        commands: list[tuple[str, list[str], dict[str, str]]] = [
            ("syncd --help", [*base, "--help"], env),
            ("syncd status (no database yet)", [*base, "status"], env),
            ("syncd status", [*base, "status"], env),
        ]
        if database_url:
            commands.append(
                (
                    "syncd status (--database-url)",
                    [*base, "status"],
                    {**env, "SYNCD_DATABASE__URL": database_url},
                )
            )
        # With no database yet, the command opens a stand-in in memory (syncd.store): so does its floor.
        floors = {
            "syncd status (no database yet)": "sqlite://",
            "syncd status": "sqlite:///data/syncd.db",
        }
        for name, argv, command_env in commands:
            if name == "syncd status":
                timed([*base, "db", "upgrade"], env, cwd)  # the default database, created and migrated
            timed(argv, command_env, cwd)  # a first run: bytecode written
            floor = [sys.executable, "-c", FLOOR.format(url=floors[name])] if name in floors else None
            samples, floor_samples = [], []
            for _ in range(runs):  # a floor's runs alternate with the command's: both meet the same noise
                samples.append(timed(argv, command_env, cwd))
                if floor is not None:
                    floor_samples.append(timed(floor, env, cwd))
            if name == "syncd status (no database yet)" and database.exists():
                raise SystemExit(f"{name} created {database}: a reading command must not")
            wall, cpu = min(samples)
            modules = imported(argv, command_env, cwd)
            row: Json = {
                "command": name,
                "best_wall_s": wall,
                "cpu_s": cpu,
                "min_cpu_s": min(c for _, c in samples),
                "walls_s": [round(w, 4) for w, _ in samples],
                "modules": len(modules),
                "unneeded": unneeded(modules),
                "msgraph_modules": sum(1 for m in modules if m.split(".")[0] == "msgraph"),
            }
            if floor_samples:
                row["floor_wall_s"] = min(floor_samples)[0]
                row["floor_walls_s"] = [round(w, 4) for w, _ in floor_samples]
            rows.append(row)
    return rows


def print_report(rows: list[Json], runs: int) -> None:
    print(f"\n--- start-up of one-shot commands (best of {runs} fresh processes) ---")
    print(f"{'target':<48} {'figure':>10} {'limit':>10} {'unit':<6} {'fig/lim':>7}  result")
    for r in rows:
        ok = r["best_wall_s"] < BOUND_S
        graph = f"yes ({r['msgraph_modules']} modules)" if r["msgraph_modules"] else "no"
        print(
            f"{r['command'] + ' wall < 0.3 s':<48} {r['best_wall_s']:>10.3f} {BOUND_S:>10.3f} {'s':<6}"
            f" {r['best_wall_s'] / BOUND_S:>7.2f}  {'PASS' if ok else 'FAIL'}"
        )
        print(
            f"    CPU {r['cpu_s']:.3f} s (least {r['min_cpu_s']:.3f} s); walls {r['walls_s']};"
            f" imports {r['modules']} modules; msgraph imported: {graph};"
            f" not needed but imported: {', '.join(r['unneeded']) or 'none'}"
        )
        if "floor_wall_s" in r:
            floor = r["floor_wall_s"]
            print(
                f"    its libraries' floor {floor:.3f} s ({floor / BOUND_S:.2f} of the bound; walls"
                f" {r['floor_walls_s']}): syncd's own share {r['best_wall_s'] - floor:.3f} s,"
                f" the command / its floor {r['best_wall_s'] / floor:.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--database-url", metavar="URL", help="also time `syncd status` on this migrated database"
    )
    args = parser.parse_args()
    rows = measure(args.runs, args.database_url)
    print_report(rows, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
