"""The status page's session cookie: signed with the admin token, never the token, and it expires."""

from __future__ import annotations

from syncd.service.admin import SESSION_MAX_AGE_S, session_valid, session_value

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
