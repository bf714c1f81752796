"""A bad configuration through the real `syncd` command: exit status 2, the key named on stderr, no
traceback, and nothing started (no emulators are needed: syncd must stop before it talks to anyone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import clean_env

REMOTES = """
[graph]
tenant_id = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
client_id = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
client_secret = "graph-secret"
group_ids = ["0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"]
authority_host = "https://127.0.0.1:9"
base_url = "https://127.0.0.1:9/v1.0"
{graph}
[smartcomm]
base_url = "https://127.0.0.1:9"
customer_id = 12345
username = "api@example.com"
password = "api-password"
"""


def test_bad_configurations_exit_2_naming_the_key_without_a_traceback(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    cases = {
        "jitter": ('[sync]\ninterval = "1m"\njitter = "30s"\n', "sync.jitter: must be at most a tenth"),
        "interval": ("[sync]\ninterval = 1e300\n", "sync.interval: must be at most 1d (86400 s)"),
        "max_offboard": ("[sync]\nmax_offboard = true\n", "sync.max_offboard: must be a whole number"),
        "max_offboard_list": (
            "[sync]\nmax_offboard = [10, 20]\n",
            "sync.max_offboard: a list gives one whole number and one percentage",
        ),
        "max_update": ('[sync]\nmax_update = "150%"\n', "sync.max_update: a percentage must be at most 100%"),
        "ca_bundle": ("", "graph.ca_bundle: not a PEM file of CA certificates"),
    }
    processes: dict[str, subprocess.Popen[str]] = {}
    for name, (extra, _) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        config = directory / "syncd.toml"
        graph = f'ca_bundle = "{not_pem}"' if name == "ca_bundle" else ""
        config.write_text(REMOTES.format(graph=graph) + extra, encoding="utf-8")
        processes[name] = subprocess.Popen(  # all at once: each spends its time importing syncd
            [sys.executable, "-m", "syncd", "--config", str(config), "sync"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(None),
            cwd=directory,
        )
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=50)
            assert process.returncode == 2, (name, stderr)
            assert "Traceback" not in stderr, name
            assert stderr.startswith("syncd: configuration error: "), (name, stderr)
            assert cases[name][1] in stderr, (name, stderr)
            assert "graph-secret" not in stdout + stderr
            assert not (tmp_path / name / "data").exists(), "no database before the configuration loads"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.communicate()
