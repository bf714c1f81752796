"""`syncd demo`, `make demo` and `syncd emulate` as a user runs them: real processes, loopback only."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from syncd.config.loader import load_settings
from syncd.emulators.graph import DEFAULT_CLIENT_SECRET
from syncd.emulators.smartcomm import DEFAULT_PASSWORD
from tests.e2e.conftest import ROOT, clean_env

MAKE = shutil.which("make")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.")
CONFLICT = re.compile(
    r"conflict\s+\S+@contoso\.com \([0-9a-f-]{36}\): "
    r"TN is already registered with a different Azure Object ID"
)


def assert_demo_output(code: int, stdout: str, stderr: str) -> None:
    assert code == 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    cycle1 = stdout.index("Cycle 1, the first sync")
    between = stdout.index("Between the cycles, in Entra ID:")
    cycle2 = stdout.index("Cycle 2, the next sync")
    status = stdout.index("Status, as `syncd status` prints it:")
    assert cycle1 < between < cycle2 < status
    assert CONFLICT.search(stdout[cycle1:between]), "the conflicted user is not reported in cycle 1"
    second = stdout[cycle2:status]
    assert "planned   onboard 3, update 2, offboard 2" in second
    assert "applied   onboard ok 3; update ok 2; offboard ok 2" in second
    assert "waiting   1 user" in second
    table = stdout[status:]
    assert "Last runs:" in table
    # Run 2 applies every change, but the conflicted user still waits for a retry: not converged.
    assert re.search(r"^\s+2\s.*\bdemo\s+failed\b", table, re.MULTILINE)
    assert re.search(r"^\s+1\s.*\bdemo\s+failed\b", table, re.MULTILINE)
    assert "Needing attention: 1" in table
    assert "TN is already registered with a different Azure Object ID" in table
    for text in (stdout, stderr):
        assert DEFAULT_CLIENT_SECRET not in text
        assert DEFAULT_PASSWORD not in text
        assert not JWT.search(text), "a JWT reached the output"


def test_demo_runs_two_cycles_and_prints_the_status_table(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "syncd", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(None),
        cwd=tmp_path,
    )
    assert_demo_output(process.returncode, process.stdout, process.stderr)
    assert list(tmp_path.iterdir()) == []  # everything it made lived in its own temporary directory


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_demo() -> None:
    # `make demo` reuses .venv while .venv/.installed is newer than pyproject.toml (as after `make test`).
    assert MAKE is not None
    process = subprocess.run(
        [MAKE, "--no-print-directory", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(None),
        cwd=ROOT,
    )
    assert_demo_output(process.returncode, process.stdout, process.stderr)


def start_emulate(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "emulate", "--state-dir", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(None),
        cwd=state.parent,
    )


def kill(process: subprocess.Popen[str]) -> None:
    """Kill it if it still runs; leaving the `with` block then closes its pipes and reaps it."""
    if process.poll() is None:
        process.kill()


def test_emulate_serves_both_emulators_and_a_config_syncd_can_use(tmp_path: Path) -> None:
    state = tmp_path / "emulators"
    config = state / "syncd.toml"
    with start_emulate(
        state,
        *("--login-port", "0", "--graph-port", "0", "--smartcomm-port", "0", "--users", "40", "--seed", "7"),
        *("--hostname", "localhost", "--hostname", "emulators.test"),
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not config.exists():
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "syncd emulate wrote no configuration"
                time.sleep(0.05)

            settings = load_settings(config, {})
            graph, smartcomm = settings.require_graph(), settings.require_smartcomm()
            assert urlsplit(smartcomm.base_url).hostname == "localhost"  # the first --hostname
            # Entra login and Graph are two servers, as login.microsoftonline.com and graph.microsoft.com.
            assert urlsplit(graph.authority_host).port != urlsplit(graph.base_url).port
            assert graph.ca_bundle == smartcomm.ca_bundle == str(state / "ca.pem")
            assert settings.database.url == f"sqlite:///{state / 'syncd.db'}"
            assert settings.admin.listen == "127.0.0.1:8080"
            token = (state / "admin-token").read_text().strip()
            assert settings.admin.token is not None
            assert settings.admin.token.get_secret_value() == token
            assert len(token) >= 32
            assert (state / "admin-token").stat().st_mode & 0o077 == 0
            # The certificate also covers the other --hostname (docker compose's service name, say).
            context = ssl.create_default_context(cafile=str(state / "ca.pem"))
            port = urlsplit(smartcomm.base_url).port
            assert port is not None
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
                context.wrap_socket(sock, server_hostname="emulators.test") as tls,
            ):
                assert tls.version() is not None

            sync = subprocess.run(
                [sys.executable, "-m", "syncd", "--config", str(config), "sync", "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                env=clean_env(None),
                cwd=tmp_path,
            )
            assert sync.returncode == 0, sync.stdout + sync.stderr
            report = json.loads(sync.stdout)
            assert report["outcomes"]["onboard"]["ok"] > 0

            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr
            assert str(config) in stdout
            assert f"syncd --config {config} run" in stdout
            for text in (stdout, stderr):
                assert DEFAULT_CLIENT_SECRET not in text
                assert DEFAULT_PASSWORD not in text
                assert token not in text
        finally:
            kill(process)


def test_emulate_on_a_busy_port_says_so_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        ports = ("--login-port", "0", "--graph-port", port, "--smartcomm-port", "0")
        with start_emulate(tmp_path / "emulators", *ports) as process:
            try:
                stdout, stderr = process.communicate(timeout=60)
            finally:
                kill(process)
    assert process.returncode == 1
    assert f"cannot serve the Graph emulator on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "emulators" / "syncd.toml").exists()
