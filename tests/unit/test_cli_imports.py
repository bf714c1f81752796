"""`syncd --help`, `syncd status`, `syncd history` and `syncd config` start without loading what only a cycle
needs.

msgraph-sdk costs about half a second to import and tens of MB before it does anything, and the HTTP stack
(httpx, aiohttp) comes with it: commands that only read our database must not pay for them. `--help` (and
a usage error) loads no package but structlog, and rich (the drawing: tables and progress bar) is loaded
only by a command whose output is a terminal. `syncd status` goes further (its start-up is a benchmark
target, bench/startup.py): no Alembic, and nothing that only some keys or the other backend need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.terminal import run_on_terminal

HEAVY = ["msgraph", "kiota_http", "msal", "aiohttp", "httpx", "syncd.cycle.engine", "syncd.graph.source"]

DRAWING = ["syncd.cli.terminal", "rich"]
"""What only a command drawing on a terminal loads. (structlog would import rich for its console
tracebacks whenever rich is installed; `syncd/__init__.py` imports structlog with rich hidden.)"""

# Runs the command in-process in a fresh interpreter, then reports on the last line of stderr its exit code,
# which of HEAVY and DRAWING it loaded, and every package outside the standard library and syncd.
PROBE = """
import json, sys
watched = json.loads(sys.argv.pop(1))
if sys.argv[1:] == ["--help-imports"]:
    import syncd.cli.main
    code = 0
else:
    from syncd.cli.main import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
packages = {name.split(".")[0] for name in sys.modules} - set(sys.stdlib_module_names) - {"syncd"}
print(json.dumps({
    "code": code,
    "loaded": [m for m in watched if m in sys.modules],
    "packages": sorted(p for p in packages if not p.startswith("_")),
}), file=sys.stderr)
"""


def probe_env(tmp_path: Path) -> dict[str, str]:
    return {"SYNCD_DATABASE__URL": f"sqlite:///{tmp_path / 'syncd.db'}", "PATH": "/usr/bin:/bin"}


def probe(tmp_path: Path, *args: str, watched: list[str] | None = None) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY + DRAWING if watched is None else watched), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=probe_env(tmp_path),
        cwd=tmp_path,
    )
    report = json.loads(process.stderr.strip().splitlines()[-1])
    assert isinstance(report, dict)
    return report


def run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    report = probe(tmp_path, *args)
    return int(report["code"]), list(report["loaded"])


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "", "status"),
        ("--config", "", "status", "--json"),
        ("--config", "", "history"),
        ("--config", "", "db", "upgrade"),
        ("--config", "", "config", "show"),
        ("--config", "", "config", "schema"),
        ("--help-imports",),
    ],
)
def test_commands_that_read_the_database_load_no_cycle_or_http_stack(
    tmp_path: Path, args: tuple[str]
) -> None:
    code, loaded = run(tmp_path, *args)
    assert code == 0
    assert loaded == []  # piped (as here), status and history print plain lines: nothing of DRAWING


@pytest.mark.parametrize(
    "args", [("--help",), ("history", "--help"), ("sync", "--help"), ("--version",), ("--no-such-flag",)]
)
def test_help_and_usage_errors_load_no_package_at_all(tmp_path: Path, args: tuple[str]) -> None:
    """Nothing but the parser: no settings (pydantic), no store (SQLAlchemy), no rich; only structlog, which
    `import syncd` imports first with rich hidden (a few milliseconds)."""
    report = probe(tmp_path, *args)
    assert report["code"] == (2 if args == ("--no-such-flag",) else 0)
    assert report["packages"] == ["structlog"]


@pytest.mark.parametrize(
    ("args", "drawn"),
    [
        (("status",), ["No runs recorded yet.", "Members: none", "Needing attention: 0"]),
        (("history",), ["no operations match"]),
    ],
)
def test_on_a_terminal_status_and_history_draw_with_rich_and_load_no_cycle(
    tmp_path: Path, args: tuple[str, ...], drawn: list[str]
) -> None:
    """The same commands with stdout on a terminal: they draw with rich; the cycle is still not loaded."""
    assert run(tmp_path, "--config", "", "db", "upgrade")[0] == 0
    shown = run_on_terminal(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY + DRAWING), "--config", "", *args],
        env=probe_env(tmp_path),
        cwd=tmp_path,
        stderr_too=False,
    )
    report = json.loads(shown.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["loaded"] == DRAWING
    assert [line for line in shown.text.splitlines() if line] == drawn


NOT_FOR_STATUS = [
    *HEAVY,
    "kiota_abstractions",
    *DRAWING,
    "alembic",
    "mako",
    "jinja2",
    "phonenumbers",
    "lark",
    "syncd.core.scope_filter",
    "cryptography",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.orm",
]
"""What `syncd status` (piped) on SQLite never loads: besides the cycle, the HTTP stack and the drawing,
Alembic (loaded only to migrate, or to say why a database's revision is wrong) and its templates (mako), the
status page's templates (jinja2: the daemon's), what only some keys' checks need when those keys are given
(phonenumbers for a graph.default_region other than the default, lark for graph.filter, cryptography for
certificates and keys), SQLAlchemy's PostgreSQL dialect and its ORM."""

STATUS_CONFIG = """
[graph]
tenant_id = "00000000-0000-0000-0000-000000000001"
client_id = "00000000-0000-0000-0000-000000000002"
client_secret = "not-used"
group_ids = ["00000000-0000-0000-0000-000000000003"]
default_region = "US"

[smartcomm]
customer_id = 1
username = "nobody"
password = "not-used"

[sync]
interval = "10m"
max_offboard = [200, "10%"]
"""
"""A configuration like a deployment's (both remote sections, the example's default_region, durations, a
guard limit), without the keys whose checks need more (another region, a filter, certificates)."""


@pytest.mark.parametrize("database", ["never created", "migrated"])
@pytest.mark.parametrize(
    "args",
    [("--config", "", "status"), ("--config", "", "status", "--json"), ("--config", "{config}", "status")],
)
def test_status_loads_no_alembic_nor_what_other_keys_or_backends_need(
    tmp_path: Path, database: str, args: tuple[str, ...]
) -> None:
    """`syncd status` reads a database never created (an empty one stands in) or one at this syncd's
    revision, with the default configuration (no file) or a deployment's, loading none of NOT_FOR_STATUS."""
    config = tmp_path / "syncd.toml"
    config.write_text(STATUS_CONFIG + f'\n[database]\nurl = "sqlite:///{tmp_path / "syncd.db"}"\n')
    if database == "migrated":
        assert run(tmp_path, "--config", "", "db", "upgrade")[0] == 0
    report = probe(tmp_path, *(arg.format(config=config) for arg in args), watched=NOT_FOR_STATUS)
    assert report["code"] == 0
    assert report["loaded"] == []
    assert (tmp_path / "syncd.db").exists() == (database == "migrated")  # reading never creates it


def test_the_status_probe_sees_what_other_keys_load(tmp_path: Path) -> None:
    """The check above means something: the keys whose checks need phonenumbers and lark do load them."""
    config = tmp_path / "syncd.toml"
    config.write_text(
        STATUS_CONFIG.replace(
            'default_region = "US"', 'default_region = "GB"\nfilter = "department eq \'Sales\'"'
        )
    )
    report = probe(tmp_path, "--config", str(config), "status", watched=NOT_FOR_STATUS)
    assert report["code"] == 0
    assert report["loaded"] == ["phonenumbers", "lark", "syncd.core.scope_filter"]


def test_the_probe_sees_what_a_cycle_loads(tmp_path: Path) -> None:
    """The check above means something: a dry run does load the cycle and msgraph-sdk (here it then fails
    to reach a SmartCommunicator that is not there, at once: nothing listens on port 9)."""
    config = tmp_path / "syncd.toml"
    config.write_text(
        """
[graph]
tenant_id = "00000000-0000-0000-0000-000000000001"
client_id = "00000000-0000-0000-0000-000000000002"
client_secret = "not-used"
group_ids = ["00000000-0000-0000-0000-000000000003"]

[smartcomm]
base_url = "https://127.0.0.1:9"
customer_id = 1
username = "nobody"
password = "not-used"
max_attempts = 1
"""
    )
    code, loaded = run(tmp_path, "--config", str(config), "sync", "--dry-run")
    assert code == 1  # SmartCommunicator unreachable
    assert "syncd.cycle.engine" in loaded
    assert "msgraph" in loaded
