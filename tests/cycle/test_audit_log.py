"""The audit log (`notify.audit_log`), in-process: after each cycle, as `syncd sync` and the daemon write it,
one JSON line per settled operation, for every action and outcome, in order, never twice, never skipping an
operation still pending. What SmartCommunicator received decides each outcome; the lines are read back from
the file."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from syncd.core.model import Action, AgentFields, Change
from syncd.cycle.engine import CycleResult
from syncd.service.audit import AUDIT_CURSOR_KEY, AUDIT_SCHEMA, write_audit_log
from tests.cycle.conftest import World, expect

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"


def audit(world: World, target: Path, result: CycleResult) -> list[dict[str, Any]]:
    """Write what the cycle settled, as the command does after it; every line of the file so far."""
    write_audit_log(str(target), world.store, result.run_id)
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


STRANGER = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"


async def test_every_action_and_outcome_is_one_line(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    ada = world.add_user("ada", "+1 415 555 0001")
    bob = world.add_user("bob", "+1 415 555 0002")
    cyd = world.add_user("cyd", "+1 415 555 0003")
    dan = world.add_user("dan", "+1 415 555 0004")
    world.smartcomm.add_agent(
        user_object_id=cyd, tenant_id=TENANT, phone_number="+14155550003", upn="old@x.com"
    )
    world.smartcomm.add_agent(user_object_id=STRANGER, tenant_id=TENANT, phone_number="+14155550002")
    first = expect(await world.cycle(), 1)
    lines = audit(world, target, first)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert {line["schema"] for line in lines} == {AUDIT_SCHEMA}
    assert [line["operation_id"] for line in lines] == sorted(line["operation_id"] for line in lines)
    by_id = {line["object_id"]: line for line in lines}
    assert {oid: (line["action"], line["outcome"]) for oid, line in by_id.items()} == {
        ada: ("onboard", "ok"),
        bob: ("onboard", "failed"),  # a stranger's agent holds the number
        cyd: ("onboard", "adopted"),
        dan: ("onboard", "ok"),
    }
    assert by_id[ada]["changes"] == {
        "phone_number": {"before": None, "after": "+14155550001"},
        "upn": {"before": None, "after": "ada@contoso.com"},
        "tenant_id": {"before": None, "after": by_id[ada]["changes"]["tenant_id"]["after"]},
    }
    assert by_id[bob]["http_status"] == 400
    assert "already registered" in by_id[bob]["error"]
    assert (by_id[ada]["trigger"], by_id[ada]["requested_by"], by_id[ada]["run_id"]) == (
        "cli",
        None,
        first.run_id,
    )

    # An update (ada's number), an offboarding (cyd), and one whose agent had gone already (dan).
    world.graph.update_user(ada, business_phones=["+1 415 555 0101"])
    world.graph.remove_member(world.group, cyd)
    world.graph.remove_member(world.group, dan)
    world.smartcomm.reset()  # dan's agent vanished remotely; the others are put back
    world.smartcomm.add_agent(
        user_object_id=ada, tenant_id=TENANT, phone_number="+14155550001", upn="ada@contoso.com"
    )
    world.smartcomm.add_agent(
        user_object_id=cyd, tenant_id=TENANT, phone_number="+14155550003", upn="cyd@contoso.com"
    )
    world.smartcomm.add_agent(user_object_id=STRANGER, tenant_id=TENANT, phone_number="+14155550002")
    second = expect(await world.cycle(), 1)  # bob still waits out his backoff
    lines = audit(world, target, second)
    assert len(lines) == 7  # the first cycle's four lines are not written again
    new = {line["object_id"]: line for line in lines[4:]}
    assert {oid: (line["action"], line["outcome"]) for oid, line in new.items()} == {
        ada: ("update", "ok"),
        cyd: ("offboard", "ok"),
        dan: ("offboard", "already_gone"),
    }
    assert new[ada]["changes"] == {"phone_number": {"before": "+14155550001", "after": "+14155550101"}}
    assert new[cyd]["changes"]["phone_number"] == {"before": "+14155550003", "after": None}
    assert new[dan]["upn"] == "dan@contoso.com"


async def test_an_update_shows_only_the_fields_it_changed(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    ada = world.add_user("ada", "+1 415 555 0001")
    audit(world, target, expect(await world.cycle()))
    world.graph.update_user(ada, upn="ada.l@contoso.com")
    lines = audit(world, target, expect(await world.cycle()))
    assert (lines[-1]["action"], lines[-1]["outcome"]) == ("update", "ok")
    assert lines[-1]["changes"] == {"upn": {"before": "ada@contoso.com", "after": "ada.l@contoso.com"}}
    assert lines[-1]["upn"] == "ada.l@contoso.com"


async def test_operations_a_stop_skipped_are_lines_too(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    for i in range(20):
        world.add_user(f"user{i:02d}", f"+1 415 555 {i:04d}")
    world.registry_follows_directory = False  # no number registered: every onboarding is refused, and the
    world.smartcomm.ten_dlc_numbers = set()  # failure share stops the cycle
    result = expect(await world.cycle(env={"SYNCD_SYNC__CONCURRENCY": "2"}), 1)
    lines = audit(world, target, result)
    outcomes = [line["outcome"] for line in lines]
    assert set(outcomes) == {"failed", "skipped"}
    assert outcomes.count("skipped") == result.outcomes["onboard"]["skipped"]
    assert all(
        line["error"].startswith("not sent: quarantined") for line in lines if line["outcome"] == "skipped"
    )


async def test_a_pending_operation_holds_back_the_later_ones(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    world.add_user("ada", "+1 415 555 0001")
    first = expect(await world.cycle())
    assert len(audit(world, target, first)) == 1
    # A write whose answer never came (its process died): pending until the next start settles it.
    run = world.store.begin_run(trigger="cli", kind="incremental", dry_run=False)
    fields = AgentFields(TENANT, "+14155550999", "ghost@contoso.com", None)
    world.store.start_operation(
        run, Change(Action.ONBOARD, "6f1c1b8e-0000-4000-8000-000000000999", fields, None)
    )
    bob = world.add_user("bob", "+1 415 555 0002")
    second = expect(await world.cycle())
    lines = audit(world, target, second)
    # The pending operation is settled by the cycle (read back), then written in order with bob's.
    assert [line["object_id"] for line in lines[1:]] == ["6f1c1b8e-0000-4000-8000-000000000999", bob]
    assert int(str(world.store.get_value(AUDIT_CURSOR_KEY))) == lines[-1]["operation_id"]


async def test_a_new_audit_log_starts_with_the_cycle_that_just_ended(world: World, tmp_path: Path) -> None:
    world.add_user("ada", "+1 415 555 0001")
    expect(await world.cycle())  # before the log was enabled: not written
    bob = world.add_user("bob", "+1 415 555 0002")
    lines = audit(world, tmp_path / "audit.jsonl", expect(await world.cycle()))
    assert [line["object_id"] for line in lines] == [bob]


async def test_stdout_and_nothing(world: World, tmp_path: Path, capsys: Any) -> None:
    world.add_user("ada", "+1 415 555 0001")
    result = expect(await world.cycle())
    assert write_audit_log("", world.store, result.run_id) == 0
    assert world.store.get_value(AUDIT_CURSOR_KEY) is None
    assert write_audit_log("stdout", world.store, result.run_id) == 1
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if AUDIT_SCHEMA in line]
    assert [(line["action"], line["outcome"]) for line in out] == [("onboard", "ok")]


async def test_a_write_failure_is_retried_after_the_next_cycle(world: World, tmp_path: Path) -> None:
    world.add_user("ada", "+1 415 555 0001")
    result = expect(await world.cycle())
    missing = tmp_path / "gone" / "audit.jsonl"  # the folder vanished after the configuration loaded
    assert write_audit_log(str(missing), world.store, result.run_id) == 0
    missing.parent.mkdir()
    bob = world.add_user("bob", "+1 415 555 0002")
    lines = audit(world, missing, expect(await world.cycle()))
    assert [line["upn"] for line in lines] == ["ada@contoso.com", "bob@contoso.com"]
    assert lines[1]["object_id"] == bob


async def test_a_relink_is_one_line_naming_both_object_ids(world: World, tmp_path: Path) -> None:
    from tests.cycle.test_relink import ALICE_GUID, recreate, setup_alice

    target = tmp_path / "audit.jsonl"
    old, _others = await setup_alice(world)
    write_audit_log(str(target), world.store, None)  # the onboardings: cursor set past them
    new = recreate(world, old, "alice", "+1 415 555 0001", ALICE_GUID)
    lines = audit(world, target, expect(await world.cycle()))
    [relink] = [line for line in lines if line["action"] == "relink"]
    assert (relink["object_id"], relink["from_object_id"], relink["outcome"]) == (new, old, "ok")
    assert relink["changes"]["user_object_id"] == {"before": old, "after": new}
