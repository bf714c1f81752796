"""`syncd --help`, `syncd status`, `syncd history` and `syncd config` start without loading what only a cycle
needs.

msgraph-sdk costs about half a second to import and tens of MB before it does anything, and the HTTP stack
(httpx, aiohttp) comes with it: commands that only read our database must not pay for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["msgraph", "kiota_http", "msal", "aiohttp", "httpx", "syncd.cycle.engine", "syncd.graph.source"]

# Runs the command in-process in a fresh interpreter, then reports its exit code and which heavy modules
# it loaded on the last line of stderr. HEAVY is passed as JSON in argv[1].
PROBE = """
import json, sys
heavy = json.loads(sys.argv.pop(1))
if sys.argv[1:] == ["--help-imports"]:
    import syncd.cli.main
    code = 0
else:
    from syncd.cli.main import main
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    env = {"SYNCD_DATABASE__URL": f"sqlite:///{tmp_path / 'syncd.db'}", "PATH": "/usr/bin:/bin"}
    process = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    report = json.loads(process.stderr.strip().splitlines()[-1])
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
    assert loaded == []


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
