"""The admin listener of a real `syncd run` against hostile or broken surroundings: slow clients, TLS, a
database whose file is damaged under it, and wrong tokens in its log. Loopback only; every loop is bounded."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from pathlib import Path

import httpx

from syncd.emulators.server import TestCA
from tests.e2e.conftest import World
from tests.e2e.test_daemon import TOKEN, Daemon, onboarded, wait_for

MARGIN_S = 15.0
"""Slack on top of a timeout for a loaded machine (two cores shared): what it bounds would otherwise never
happen, so a generous bound catches the fault as well as a tight one."""


class TlsDaemon(Daemon):
    """A `syncd run` whose admin listener speaks https with a certificate from `ca`."""

    def __init__(self, world: World, ca: TestCA, *, env: dict[str, str]) -> None:
        self.ca = ca
        cert, key = ca.server_cert_files()
        tls = {"SYNCD_ADMIN__TLS_CERT_PATH": str(cert), "SYNCD_ADMIN__TLS_KEY_PATH": str(key)}
        try:
            super().__init__(world, interval="1h", env=tls | env)
        except BaseException:  # never healthy (no TLS, say): the caller never gets it to clean up
            process = getattr(self, "process", None)
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
            raise
        self.url = f"https://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log()[-3000:]
        try:
            answer = httpx.get(
                f"https://127.0.0.1:{self.port}/healthz", verify=self.ca.ssl_context(), timeout=1
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200


def connect(port: int, first_bytes: bytes) -> socket.socket:
    """A connection that sends `first_bytes` and then nothing (non-blocking afterwards)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with contextlib.suppress(OSError):  # already closed by the listener (it made room): counted below
        sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


def closed(sock: socket.socket) -> bool:
    """Whether the listener closed this connection (end of stream or reset); answers are read and dropped."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def still_open(socks: list[socket.socket]) -> int:
    return sum(not closed(sock) for sock in socks)


def test_slow_clients_beyond_the_limit_are_closed_and_healthz_keeps_answering(
    world: World, daemons: list[Daemon]
) -> None:
    max_connections = 100
    # A header timeout far beyond the test: only the connection limit can close anything here.
    env = {"SYNCD_ADMIN__HEADER_TIMEOUT": "5m", "SYNCD_ADMIN__MAX_CONNECTIONS": str(max_connections)}
    daemons.append(daemon := Daemon(world, interval="1h", env=env))
    slow = [connect(daemon.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(300)]
    try:
        # The probe gets through while they are all (or the newest of them) still waiting.
        assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
        # The connection limit: no more than max_connections of them stay open.
        wait_for(lambda: still_open(slow) <= max_connections, what="the connection limit")
        assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    finally:
        for sock in slow:
            sock.close()
    assert daemon.stop()[0] == 0


def test_slow_clients_are_cut_off_by_the_header_timeout(world: World, daemons: list[Daemon]) -> None:
    header_timeout_s = 2.0
    env = {"SYNCD_ADMIN__HEADER_TIMEOUT": f"{header_timeout_s:g}s", "SYNCD_ADMIN__MAX_CONNECTIONS": "100"}
    daemons.append(daemon := Daemon(world, interval="1h", env=env))
    # A kept-alive connection that trickles its next request head, one byte at a time.
    trickler = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    trickler.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert trickler.recv(65536).startswith(b"HTTP/1.1 200")
    trickler.setblocking(False)
    next_head = iter(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200)
    slow = [connect(daemon.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(50)]
    try:

        def all_cut_off() -> bool:
            if not closed(trickler):
                with contextlib.suppress(OSError, StopIteration):
                    trickler.send(bytes([next(next_head)]))
            return still_open(slow) == 0 and closed(trickler)

        # The header timeout: every one of them is closed, the trickling one included (without the timeout
        # none would ever be: the bound only needs to be finite).
        wait_for(all_cut_off, timeout=header_timeout_s + MARGIN_S, what="the header timeout")
        assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    finally:
        for sock in [*slow, trickler]:
            sock.close()
    assert daemon.stop()[0] == 0


def test_the_listener_speaks_tls_only_and_the_cookie_is_secure(
    world: World, daemons: list[Daemon], e2e_ca: TestCA
) -> None:
    daemons.append(daemon := TlsDaemon(world, e2e_ca, env={"SYNCD_ADMIN__HEADER_TIMEOUT": "1s"}))
    verify = e2e_ca.ssl_context()
    with httpx.Client(base_url=daemon.url, verify=verify, timeout=5) as client:
        signed_in = client.post("/login", data={"token": TOKEN}, headers={"Origin": daemon.url})
        assert signed_in.status_code == 303
        flags = [flag.strip().lower() for flag in signed_in.headers["set-cookie"].split(";")]
        assert "secure" in flags
        status = client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status.status_code == 200
        # Where this (SQLite, so leading) daemon tells other replicas to forward to: https.
        assert status.json()["leader"]["admin_url"] == daemon.url
    # `syncd resync` reaches the TLS listener over https, trusting the listener's own certificate.
    # Counted by trigger: the daemon's first scheduled cycle may start before or after this read.
    manual_before = sum(run["trigger"] == "manual" for run in status.json()["runs"])
    resync = world.run("resync", "--wait", env=daemon.env)
    assert resync.code == 0, resync.stderr
    with httpx.Client(base_url=daemon.url, verify=verify, timeout=5) as client:
        runs = client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"]
    manual = [run for run in runs if run["trigger"] == "manual"]
    assert len(manual) == manual_before + 1
    assert manual[0]["requested_by"] == "bearer token from 127.0.0.1"  # `syncd resync` signs in with it
    plain = None
    with contextlib.suppress(httpx.HTTPError):
        plain = httpx.get(f"http://127.0.0.1:{daemon.port}/healthz", timeout=5)
    assert plain is None or plain.status_code != 200
    # A client that connects and never starts the TLS handshake is cut off like a slow request head.
    silent = connect(daemon.port, b"")
    try:
        wait_for(lambda: closed(silent), timeout=1.0 + MARGIN_S, what="the handshake timeout")
    finally:
        silent.close()
    assert daemon.stop()[0] == 0


def test_a_damaged_database_gives_503s_and_not_ready(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(lambda: onboarded(world) == 1, what="the first cycle")
    wait_for(
        lambda: "syncd_cycles_total{" in httpx.get(f"{daemon.url}/metrics").text, what="its run recorded"
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{daemon.url}/readyz").status_code == 200
    database = Path(world.config.parent / "syncd.db")

    def checkpoint(mode: str) -> bool:
        with sqlite3.connect(database) as connection:
            busy, _, _ = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return busy == 0

    # 1. The file's header zeroed while the daemon's own connections still serve from their page cache: the
    #    readiness check opens the file afresh and says not ready.
    wait_for(lambda: checkpoint("PASSIVE"), what="a checkpoint")
    header = database.read_bytes()[:100]  # as the checkpoint left it
    with database.open("r+b") as file:
        file.write(b"\0" * 100)
    not_ready = httpx.get(f"{daemon.url}/readyz")
    assert not_ready.status_code == 503, not_ready.text
    assert "database unavailable" in not_ready.json()["reason"]
    # 2. The header back: ready again.
    with database.open("r+b") as file:
        file.write(header)
    wait_for(lambda: httpx.get(f"{daemon.url}/readyz").status_code == 200, what="ready again")
    # 3. Zeroed after a full checkpoint, so that every connection must read it: JSON 503s, not a bare 500.
    wait_for(lambda: checkpoint("TRUNCATE"), what="a full checkpoint")
    header = database.read_bytes()[:100]
    with database.open("r+b") as file:
        file.write(b"\0" * 100)
    status = httpx.get(f"{daemon.url}/status", headers=auth)
    assert status.status_code == 503, status.text
    assert "database unavailable" in status.json()["error"]
    assert "file is not a database" in status.json()["error"]
    ready = httpx.get(f"{daemon.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200  # alive: restarting would not help
    assert httpx.get(f"{daemon.url}/metrics").status_code == 200
    with database.open("r+b") as file:
        file.write(header)  # so that the daemon can record its stop
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_wrong_tokens_are_logged_without_the_token(world: World, daemons: list[Daemon]) -> None:
    daemons.append(daemon := Daemon(world, interval="1h"))
    guesses = ["guessed-token-0123456789abcdefghijkl", "another-guess-0123456789abcdefghijkl"]
    assert httpx.post(f"{daemon.url}/login", data={"token": guesses[0]}).status_code == 401
    wrong = httpx.get(f"{daemon.url}/status", headers={"Authorization": f"Bearer {guesses[1]}"})
    assert wrong.status_code == 401
    code, stderr = daemon.stop()
    assert code == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    failed = [event for event in events if event.get("event") == "admin.auth_failed"]
    assert [(event["client"], event["path"]) for event in failed] == [
        ("127.0.0.1", "/login"),
        ("127.0.0.1", "/status"),
    ]
    for secret in (*guesses, TOKEN):
        assert secret not in stderr
