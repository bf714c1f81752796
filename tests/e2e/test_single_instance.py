"""One process at a time runs cycles on an SQLite database: every spelling of its path (a symlink, `./x.db`,
`dir/../x.db`) finds the same lock, a process refused says who holds it (`syncd run` or `syncd sync`, with
its pid), and the files syncd keeps beside the database are its owner's only."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from syncd.service.instance import AlreadyRunning, instance_lock
from syncd.store import Store
from tests.e2e.conftest import World
from tests.e2e.test_daemon import Daemon, free_port, wait_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("held", "asked"),
    [
        ("x.db", "./x.db"),
        ("./x.db", "sub/../x.db"),
        ("sub/../x.db", "x.db"),
        ("x.db", "link.db"),  # a symlink to x.db
        ("link.db", "x.db"),
        ("linked-folder/x.db", "x.db"),  # a symlink to the folder
        ("{tmp}/x.db", "link.db"),  # an absolute path
    ],
)
def test_every_spelling_of_one_database_takes_the_same_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: str, asked: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "x.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "x.db")
    (tmp_path / "linked-folder").symlink_to(tmp_path)
    held_url, asked_url = (f"sqlite:///{name.replace('{tmp}', str(tmp_path))}" for name in (held, asked))
    lock = tmp_path / "x.db.lock"
    with Store(held_url) as first, Store(asked_url) as second, instance_lock(first, held_url, "daemon"):
        assert lock.exists()
        with pytest.raises(AlreadyRunning) as refused, instance_lock(second, asked_url, "sync"):
            pytest.fail(f"{asked} took the lock that {held} holds")
    assert refused.value.holder_role == "daemon"
    holder = f"syncd run (pid {os.getpid()}) holds the lock on {tmp_path / 'x.db'}"
    assert str(refused.value).startswith(holder)
    assert [p.name for p in tmp_path.glob("*.lock")] == [lock.name]
    assert mode(lock) == 0o600
    assert lock.read_text() == ""  # emptied on release: a stale holder is never named


def test_the_holder_writes_its_role_and_pid_into_the_lock_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with Store(url) as store, instance_lock(store, url, "sync"):
        document = json.loads((tmp_path / "x.db.lock").read_text())
        assert (document["role"], document["pid"]) == ("sync", os.getpid())
        refused = rf"^syncd sync \(pid {os.getpid()}\) holds the lock on "
        with pytest.raises(AlreadyRunning, match=refused), instance_lock(store, url, "daemon"):
            pass


def test_on_postgresql_a_sync_holding_the_lock_is_named(postgres_database_url: str) -> None:
    url = postgres_database_url
    with Store(url) as store, Store(url) as other, instance_lock(store, url, "sync"):
        assert store.url == other.url
        with pytest.raises(AlreadyRunning) as refused, instance_lock(other, url, "sync"):
            pytest.fail("two syncs held the lock")
    assert refused.value.holder_role == "sync"
    assert str(refused.value).startswith(
        f"syncd sync (pid {os.getpid()} on host {socket.gethostname()}) holds the lock on postgresql"
    )


def test_a_sync_through_a_symlink_is_refused_while_the_daemon_runs(
    world: World, daemons: list[Daemon]
) -> None:
    database = world.config.parent / "syncd.db"
    link = world.config.parent / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(database)
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h"))
    wait_for(lambda: len(world.agents()) == 1, what="the daemon's first cycle")
    world.add_user("b", "+1 415 555 0002")

    result = world.run("sync", env={"SYNCD_DATABASE__URL": f"sqlite:///{link}"})
    assert result.code == 1, result.stdout
    assert f"syncd: syncd run (pid {daemon.process.pid}) holds the lock on {database}" in result.stderr
    assert "syncd resync" in result.stderr
    assert len(world.agents()) == 1  # the refused sync wrote nothing
    assert not (link.parent / "link.db.lock").exists()

    # The files beside the database are the owner's only, the -wal and -shm files of the running daemon too.
    beside = {path.name: mode(path) for path in world.config.parent.glob("syncd.db*")}
    assert beside == dict.fromkeys(
        ["syncd.db", "syncd.db-wal", "syncd.db-shm", "syncd.db.lock", "syncd.db.migrate-lock"], 0o600
    )
    assert json.loads((world.config.parent / "syncd.db.lock").read_text())["role"] == "daemon"
    assert daemon.stop()[0] == 0


def test_a_running_sync_is_named_when_a_daemon_or_another_sync_is_refused(world: World) -> None:
    for i in range(3):
        world.add_user(f"user{i}", f"+1 415 555 {i:04d}")
    # One write at a time, and the first one's answer held back longer than the test lasts (and waited
    # for as long): the sync runs until the test kills it.
    world.hold_writes("POST", count=1, hold_s=120)
    syncing = world.start("sync", env={"SYNCD_SYNC__CONCURRENCY": "1", "SYNCD_SMARTCOMM__TIMEOUT_S": "300"})
    try:
        wait_for(lambda: world.held("POST") == 1, what="the sync's first write")
        # Both at once, while the sync waits for its answer.
        daemon = world.start("run", env={"SYNCD_ADMIN__LISTEN": f"127.0.0.1:{free_port()}"})
        second = world.start("sync")
        outputs = [process.communicate(timeout=60) for process in (daemon, second)]
        assert syncing.poll() is None
    finally:
        syncing.kill()
        syncing.communicate(timeout=10)
    holder = f"syncd sync (pid {syncing.pid}) holds the lock on {world.config.parent / 'syncd.db'}"
    assert daemon.returncode == 1, outputs[0]
    assert holder in outputs[0][1]
    assert "not starting the daemon while that cycle runs" in outputs[0][1]
    assert second.returncode == 1, outputs[1]
    assert holder in outputs[1][1]
    assert "another cycle is running on this database" in outputs[1][1]
