"""`syncd sync` against a SmartCommunicator account with a rate limit (the emulator's token bucket), as a
user runs it: every onboarding arrives exactly once, the 429s cut the write concurrency, and the log says so.
What the controller decides is tested with plain data in tests/unit/test_pacing.py and in-process in
tests/cycle/test_write_pacing.py; here is the real command with the defaults a user gets."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from syncd.emulators.smartcomm import RateLimit
from tests.e2e.conftest import World


def test_syncd_sync_paces_its_writes_to_the_rate_limit(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"+1 415 555 {i:04d}") for i in range(20)]
    world.smartcomm.set_rate_limit(RateLimit(30, burst=3))  # the world's reset lifts it afterwards

    result = world.run("sync", "--json")

    assert result.code == 0, result.stderr
    assert result.json()["outcomes"] == {"onboard": {"ok": 20}}
    applied = Counter(
        r.body["user_object_id"]
        for r in world.smartcomm.requests
        if r.method == "POST" and r.applied and isinstance(r.body, dict)
    )
    assert applied == Counter(dict.fromkeys(ids, 1))
    assert any(r.status == 429 for r in world.smartcomm.requests)
    events: list[dict[str, Any]] = [
        json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")
    ]
    cuts = [e for e in events if e["event"] == "smartcomm.pace_cut"]
    assert cuts
    assert all(1 <= e["write_concurrency"] < 4 for e in cuts)  # the test config's sync.concurrency is 4
    (summary,) = [e for e in events if e["event"] == "sync.write_pace"]
    assert 1 <= summary["lowest"] <= summary["write_concurrency"] <= 4
