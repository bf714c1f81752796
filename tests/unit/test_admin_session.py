"""The status page's session cookie (signed with the admin token, never the token; it expires; sign-out
revokes it) and the limiter of wrong tokens per client address."""

from __future__ import annotations

import pytest

from syncd.service.admin import SESSION_MAX_AGE_S, session_valid, session_value
from syncd.service.admin_auth import FailureLimiter, Sessions, client_key

TOKEN = "a-long-admin-token-0123456789"
NOW = 1_800_000_000


def test_a_fresh_session_is_valid_and_is_not_the_token() -> None:
    value = session_value(TOKEN, NOW)
    assert TOKEN not in value
    assert value.startswith(f"{NOW}.")
    assert session_valid(TOKEN, value, NOW + 5)


def test_a_session_expires_on_the_server_not_only_in_the_browser() -> None:
    value = session_value(TOKEN, NOW)
    assert session_valid(TOKEN, value, NOW + SESSION_MAX_AGE_S)
    assert not session_valid(TOKEN, value, NOW + SESSION_MAX_AGE_S + 1)
    assert not session_valid(TOKEN, session_value(TOKEN, NOW + 3600), NOW)  # signed in the future


def test_a_session_of_another_token_or_a_forged_time_is_refused() -> None:
    value = session_value(TOKEN, NOW)
    assert not session_valid("the-rotated-token-9876543210", value, NOW)
    forged = f"{NOW + 100}.{value.partition('.')[2]}"
    assert not session_valid(TOKEN, forged, NOW + 100)
    for garbage in ("", ".", "abc.def", f"{NOW}", f"-{NOW}.00", "9" * 40 + ".00", TOKEN):
        assert not session_valid(TOKEN, garbage, NOW)


def test_each_session_has_its_own_nonce_and_a_changed_nonce_is_refused() -> None:
    one, two = session_value(TOKEN, NOW), session_value(TOKEN, NOW)
    assert one != two
    issued, _, mac = one.split(".")
    assert issued == str(NOW)
    assert session_valid(TOKEN, one, NOW)
    assert session_valid(TOKEN, two, NOW)
    assert not session_valid(TOKEN, f"{issued}.{two.split('.')[1]}.{mac}", NOW)
    assert session_value(TOKEN, NOW, "fixed") == session_value(TOKEN, NOW, "fixed")


def test_a_revoked_session_is_refused_and_others_are_not() -> None:
    sessions = Sessions()
    one, two = sessions.issue(TOKEN, NOW), sessions.issue(TOKEN, NOW)
    assert sessions.valid(TOKEN, one, NOW + 1)
    assert sessions.revoke(TOKEN, one, NOW + 1)
    assert not sessions.valid(TOKEN, one, NOW + 2)
    assert sessions.valid(TOKEN, two, NOW + 2)
    assert not sessions.revoke(TOKEN, one, NOW + 3)  # already out
    assert not sessions.revoke(TOKEN, "garbage", NOW + 3)
    assert len(sessions) == 1


def test_revocations_are_pruned_when_they_expire_and_bounded_without_reviving_any() -> None:
    sessions = Sessions(capacity=3)
    old = sessions.issue(TOKEN, NOW)
    sessions.revoke(TOKEN, old, NOW)
    later = NOW + SESSION_MAX_AGE_S + 10
    values = [sessions.issue(TOKEN, later + i) for i in range(5)]
    for value in values[:4]:
        sessions.revoke(TOKEN, value, later + 10)
    assert len(sessions) == 3  # the expired one pruned, then the oldest dropped for room ...
    assert sessions.not_before == later  # ... and everything signed no later than it refused with it
    assert not any(sessions.valid(TOKEN, value, later + 10) for value in values[:4])
    assert sessions.valid(TOKEN, values[4], later + 10)


def test_sessions_signed_before_the_process_started_are_refused() -> None:
    before = session_value(TOKEN, NOW - 10)
    sessions = Sessions(not_before=NOW - 1)
    assert session_valid(TOKEN, before, NOW)
    assert not sessions.valid(TOKEN, before, NOW)
    assert sessions.valid(TOKEN, sessions.issue(TOKEN, NOW), NOW)


def test_the_limiter_refuses_an_address_for_a_window_after_the_limit() -> None:
    limiter = FailureLimiter(limit=3, window_s=60.0)
    assert [limiter.failed("a", t) for t in (0.0, 1.0)] == [1, 2]
    assert limiter.retry_after("a", 2.0) is None
    assert limiter.failed("a", 2.0) == 3  # the limit: refused from now on, for a window
    assert limiter.retry_after("a", 2.5) == 60
    assert limiter.retry_after("a", 61.2) == 1
    assert limiter.retry_after("a", 62.0) is None
    assert limiter.retry_after("b", 2.5) is None
    # Failures spread wider than the window never add up to the limit.
    assert [limiter.failed("c", t) for t in (0.0, 40.0, 70.0, 110.0)] == [1, 2, 2, 2]


def test_the_limiter_is_bounded() -> None:
    limiter = FailureLimiter(limit=2, window_s=60.0, capacity=100)
    limiter.failed("locked", 0.0)
    limiter.failed("locked", 0.0)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", 100.0 + i / 1000)
    assert len(limiter) <= 100


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
        (None, ""),
    ],
)
def test_client_keys(address: str | None, key: str) -> None:
    assert client_key(address) == key
