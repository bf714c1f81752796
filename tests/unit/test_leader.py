"""The pure decisions of leader election: poll period, keepalives, lock key, advertised admin URL."""

from __future__ import annotations

import time

import pytest

from syncd.service.leader import (
    LEGACY_LOCK_KEY,
    advertised_admin_url,
    forward_resync,
    keepalive_settings,
    lock_key,
    poll_period_s,
)


@pytest.mark.parametrize(
    ("takeover_s", "poll_s"),
    [(30.0, 10.0), (3.0, 1.0), (1.5, 1.0), (0.1, 1.0), (300.0, 100.0)],
)
def test_poll_period_is_a_third_of_the_takeover_and_at_least_a_second(
    takeover_s: float, poll_s: float
) -> None:
    assert poll_period_s(takeover_s) == poll_s


@pytest.mark.parametrize(
    ("takeover_s", "idle", "interval", "count"),
    [(30.0, 10, 3, 3), (3.0, 1, 1, 3), (0.5, 1, 1, 3), (90.0, 30, 10, 3)],
)
def test_keepalives_declare_a_silent_peer_dead_within_the_takeover(
    takeover_s: float, idle: int, interval: int, count: int
) -> None:
    settings = keepalive_settings(takeover_s)
    assert settings == {"idle": idle, "interval": interval, "count": count}
    if takeover_s >= 9:  # below that, whole seconds of at least 1 cannot fit
        assert (
            settings["idle"] + settings["interval"] * settings["count"] + poll_period_s(takeover_s)
            <= takeover_s
        )


def test_the_public_schema_keeps_the_legacy_key_and_others_get_their_own() -> None:
    assert lock_key("public") == LEGACY_LOCK_KEY
    keys = {lock_key(f"syncd_test_{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(0 <= key < 2**62 for key in keys)
    assert lock_key("tenant_a") == lock_key("tenant_a")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", 8080, "http://node-1:8080"),  # noqa: S104 - a setting, not a bind
        ("::", 8080, "http://node-1:8080"),
        ("", 8080, "http://node-1:8080"),
        ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("10.0.0.5", 8080, "http://10.0.0.5:8080"),
        ("::1", 8080, "http://[::1]:8080"),
        ("syncd.internal", 8080, "http://syncd.internal:8080"),
    ],
)
def test_advertised_admin_url(host: str, port: int, url: str) -> None:
    assert advertised_admin_url(host, port, "node-1") == url


async def test_a_standby_never_forwards_the_bearer_to_a_leader_whose_heartbeat_is_stale() -> None:
    stale = {"admin_url": "http://10.0.0.9:8080", "heartbeat_at": time.time() - 120}
    for leader in (stale, {"admin_url": "http://10.0.0.9:8080"}):
        answer = await forward_resync(
            leader,
            own_url="http://10.0.0.8:8080",
            authorization="Bearer secret-admin-token",
            body=b"{}",
            wait=None,
            stale_after_s=30.0,
        )
        assert answer is None
