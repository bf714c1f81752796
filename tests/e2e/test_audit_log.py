"""The audit log through the real `syncd` command: `syncd sync` appends one line per settled operation to the
configured file (or, with `--json`, keeps stdout for its document), and a manual resync asked of the daemon
through the admin API records who asked, in the run (`syncd status --json`) and in the audit lines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from syncd.service.audit import AUDIT_SCHEMA
from tests.e2e.conftest import World
from tests.e2e.test_daemon import TOKEN, Daemon, wait_for


def lines(path: Path) -> list[dict[str, object]]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


def test_sync_appends_a_line_per_operation(world: World, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    env = {"SYNCD_NOTIFY__AUDIT_LOG": str(audit)}
    ada = world.add_user("ada", "+1 415 555 0001")
    bob = world.add_user("bob", "+1 415 555 0002")
    assert world.run("sync", env=env).code == 0
    world.graph.remove_member(world.group, bob)
    assert world.run("sync", env=env).code == 0
    written = lines(audit)
    assert [(line["object_id"], line["action"], line["outcome"]) for line in written[2:]] == [
        (bob, "offboard", "ok")
    ]
    assert sorted((line["object_id"], line["action"]) for line in written[:2]) == sorted(
        [(ada, "onboard"), (bob, "onboard")]
    )
    assert {line["schema"] for line in written} == {AUDIT_SCHEMA}
    assert {line["trigger"] for line in written} == {"cli"}

    # stdout with --json: the document stays alone on stdout, the audit line goes to stderr.
    carl = world.add_user("carl", "+1 415 555 0003")
    done = world.run("sync", "--json", env={"SYNCD_NOTIFY__AUDIT_LOG": "stdout"})
    assert done.code == 0, done.stderr
    assert done.json()["outcomes"] == {"onboard": {"ok": 1}}
    audited = [json.loads(line) for line in done.stderr.splitlines() if AUDIT_SCHEMA in line]
    assert [(line["object_id"], line["action"]) for line in audited] == [(carl, "onboard")]


def test_a_manual_resync_records_who_asked(world: World, daemons: list[Daemon], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    world.add_user("ada", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h", env={"SYNCD_NOTIFY__AUDIT_LOG": str(audit)}))
    wait_for(lambda: len(lines(audit)) == 1, what="the first cycle's line")
    assert lines(audit)[0]["trigger"] == "schedule"
    bob = world.add_user("bob", "+1 415 555 0002")
    answer = httpx.post(
        f"{daemon.url}/resync?wait=1", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    wait_for(lambda: len(lines(audit)) == 2, what="the resync's line")
    line = lines(audit)[1]
    assert (line["object_id"], line["trigger"], line["requested_by"]) == (
        bob,
        "manual",
        "bearer token from 127.0.0.1",
    )
    status = world.run("status", "--json", env=daemon.env)
    assert status.code == 0, status.stderr
    runs = status.json()["runs"]
    assert isinstance(runs, list)
    assert (runs[0]["trigger"], runs[0]["requested_by"]) == ("manual", "bearer token from 127.0.0.1")
    assert daemon.stop()[0] == 0
