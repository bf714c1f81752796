"""Quarantine on systemic failures, in-process (the cycle cases of tests/e2e/test_quarantine.py; the daemon's
stay there). Checks what the emulators received, the cycle's result and the stored quarantine, with the
injected clock standing in for waiting."""

from __future__ import annotations

import pytest

from syncd.emulators.smartcomm import DEFAULT_PASSWORD
from tests.cycle.conftest import World, expect


def posts(world: World) -> list[str]:
    """Object IDs of the onboarding POSTs SmartCommunicator received, in order."""
    return [
        str(r.body["user_object_id"])  # type: ignore[index]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.path.endswith("/agents")
    ]


async def test_wrong_password_quarantines_and_the_fixed_one_clears_it(world: World) -> None:
    world.add_user("a", "+1 415 555 0001")
    good = world.config.read_text()
    world.config.write_text(good.replace(DEFAULT_PASSWORD, "not-the-password-42"))
    failed = expect(await world.cycle(), 2)
    assert failed.to_json()["quarantined"] is True
    assert failed.quarantine is not None
    assert failed.quarantine.failed_cycles == 1
    assert posts(world) == []

    again = expect(await world.cycle(), 2)
    assert again.quarantine is not None
    assert again.quarantine.failed_cycles == 2
    quarantine = world.status()["quarantine"]
    assert quarantine["failed_cycles"] == 2
    assert "smartcomm.password" in quarantine["reason"]  # the reason: the authentication error
    assert quarantine["next_at"] > quarantine["since"]
    assert "not-the-password-42" not in str(quarantine)

    world.config.write_text(good)
    fixed = expect(await world.cycle())
    assert fixed.quarantine is None
    assert fixed.to_json()["quarantined"] is False
    assert posts(world) == [world.users["a@contoso.com"]]
    assert world.status()["quarantine"] is None


async def test_a_large_share_of_failing_writes_stops_the_cycle_early(world: World) -> None:
    ids = [world.add_user(f"user{i:02d}", f"+1 415 555 {i:04d}") for i in range(20)]
    world.registry_follows_directory = False  # every onboarding is refused: number not 10DLC registered
    env = {"SYNCD_SYNC__CONCURRENCY": "2"}  # quarantine_min_writes 10, failure share 0.5 (the defaults)
    result = expect(await world.cycle(env=env), 1)
    sent = posts(world)
    assert 10 <= len(sent) <= 11  # the 10th failure stops it; one more may have been in flight
    outcomes = result.outcomes["onboard"]
    assert outcomes["failed"] == len(sent)
    assert outcomes["skipped"] == 20 - len(sent)
    error = str(result.error)
    assert error.startswith("quarantined: 10 of 10 writes failed (share 1.00 > 0.5): "), error
    assert "10DLC" in error
    assert result.quarantine is not None
    status = world.status()
    assert status["quarantine"] is not None
    assert error in status["quarantine"]["reason"]
    assert status["runs"][0]["outcome"] == "error"

    # Fixed: the next sync runs as a whole and clears the quarantine. Those who failed wait out their own
    # backoff (no new POST for them); those the stop skipped are onboarded now.
    world.registry_follows_directory = True
    world.smartcomm.clear_requests()
    recovered = expect(await world.cycle(env=env), 1)  # people waiting out a backoff: not converged yet
    assert recovered.quarantine is None
    assert recovered.error is None
    assert recovered.deferred == len(sent)
    assert sorted(posts(world)) == sorted(set(ids) - set(sent))
    assert world.status()["quarantine"] is None


async def test_a_failed_user_is_not_retried_before_its_time_then_once(world: World) -> None:
    world.smartcomm.add_agent(
        user_object_id="e2f19e0a-0490-41f4-8509-44a3390ae0b6",
        tenant_id=world.graph.tenant_id,
        phone_number="+14155550002",
    )
    ok = world.add_user("a", "+1 415 555 0001")
    conflicted = world.add_user("b", "+1 415 555 0002")  # the number belongs to another agent
    env = {"SYNCD_SYNC__RETRY_INITIAL": "10s"}
    failed_at = world.clock.now
    expect(await world.cycle(env=env), 1)
    assert sorted(posts(world)) == sorted([ok, conflicted])

    world.smartcomm.clear_requests()
    second = expect(await world.cycle(env=env), 1)  # still not converged
    assert second.deferred == 1
    assert posts(world) == []  # not hammered: nothing was sent for them
    document = world.status()
    waiting = next(m for m in document["attention"] if m["object_id"] == conflicted)
    assert waiting["attempts"] == 1
    assert waiting["next_attempt_at"] == pytest.approx(failed_at + 10, abs=0.01)

    world.clock.now = waiting["next_attempt_at"] - 1  # a second before its time: still not sent
    assert expect(await world.cycle(env=env), 1).deferred == 1
    assert posts(world) == []
    world.clock.now = waiting["next_attempt_at"] + 1
    expect(await world.cycle(env=env), 1)
    assert posts(world) == [conflicted]  # retried exactly once
    again = next(m for m in world.status()["attention"] if m["object_id"] == conflicted)
    assert again["attempts"] == 2
    assert again["next_attempt_at"] > waiting["next_attempt_at"]
