"""Pure helpers of the SmartCommunicator client: backoff, Retry-After, JWT timing, agent parsing."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from syncd.core.backoff import backoff_delay_s
from syncd.core.model import Agent, AgentPatch, Member, NewAgent
from syncd.smartcomm.client import parse_agent, parse_retry_after
from syncd.smartcomm.tokens import DEFAULT_LIFETIME_S, jwt_claims, token_times


def make_jwt(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (6, 4.0, 8.0), (20, 4.0, 8.0)]
)
def test_backoff_doubles_with_equal_jitter_up_to_the_cap(attempt: int, low: float, high: float) -> None:
    rng = random.Random(1)
    delays = [backoff_delay_s(attempt, initial_s=0.5, max_s=8.0, rng=rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 2  # it really is jittered


def test_backoff_of_zero_is_zero() -> None:
    assert backoff_delay_s(3, initial_s=0.0, max_s=10.0, rng=random.Random(0)) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1000.0) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    earlier = format_datetime(datetime(2026, 11, 26, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_jwt_claims_reads_the_spec_example() -> None:
    example = (
        "eyJhbGciOiJSUzI1NiJ9.eyJhaWQiOjAsImNpZCI6MSwiY3J0IjoxNzExOTg2NDg5LCJleHAiOjE3MTIwNzI4OTAsInVpZCI6InNiZWRv"
        "eWEiLCJzcmMiOiJhcGktZ3R3In0.clYxxuFBW62FQj-nQLIjtE4HBG1iPKjlWsTfLlEqo_u6UN4D6u9Mk26LXsTYUgsTzZ6-wHCWOctYg"
        "hh0VfQVpA"
    )
    claims = jwt_claims(example)
    assert claims["exp"] == 1712072890
    assert claims["crt"] == 1711986489
    times = token_times(example, now=1711986489.0, renew_margin_s=300.0)
    assert times.expires_at == 1712072890.0
    assert times.renew_at == 1712072890.0 - 300.0


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.!!!.c", "a.W10.c", make_jwt({"exp": "tomorrow"}), make_jwt({"exp": True})]
)
def test_unreadable_tokens_get_the_documented_24_hours(token: str) -> None:
    times = token_times(token, now=100.0, renew_margin_s=300.0)
    assert times.expires_at == 100.0 + DEFAULT_LIFETIME_S
    assert times.renew_at == 100.0 + DEFAULT_LIFETIME_S - 300.0


def test_short_tokens_renew_at_ninety_percent_of_their_life() -> None:
    token = make_jwt({"crt": 1000, "exp": 1002})
    times = token_times(token, now=1000.4, renew_margin_s=300.0)
    assert times.renew_at == pytest.approx(1001.8)
    assert times.expires_at == 1002.0


def test_tokens_without_issue_time_count_from_now() -> None:
    times = token_times(make_jwt({"exp": 2000}), now=1000.0, renew_margin_s=60.0)
    assert times.renew_at == 1940.0


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            {"user_object_id": "o", "tenant_id": "t", "phone_number": "+1", "status": "active"},
            Agent("o", "t", "+1", "active"),
        ),
        (
            {
                "user_object_id": "o",
                "tenant_id": "t",
                "phone_number": "+1",
                "status": "orphaned",
                "upn": "a@b",
                "consistency_id": "g",
                "extra": 1,
            },
            Agent("o", "t", "+1", "orphaned", upn="a@b", consistency_id="g"),
        ),
        (
            {
                "user_object_id": "o",
                "tenant_id": "t",
                "phone_number": "+1",
                "status": "active",
                "upn": None,
                "consistency_id": "",
            },
            Agent("o", "t", "+1", "active"),
        ),
        ({"user_object_id": "o", "tenant_id": "t", "phone_number": "+1"}, None),
        ({"user_object_id": 5, "tenant_id": "t", "phone_number": "+1", "status": "active"}, None),
        ({"user_object_id": "", "tenant_id": "t", "phone_number": "+1", "status": "active"}, None),
        (["o"], None),
        (None, None),
    ],
)
def test_parse_agent(item: object, expected: Agent | None) -> None:
    assert parse_agent(item) == expected


def test_parse_agent_shares_the_desired_members_strings() -> None:
    """`like` only saves memory: equal values become the desired member's own strings, others stay."""
    member = Member("o-1", "t", "a@contoso.com", "+14155550100", "c-1")
    item = {
        "user_object_id": "".join(["o-", "1"]),
        "tenant_id": "t",
        "phone_number": "".join(["+1415", "5550100"]),
        "status": "active",
        "consistency_id": "".join(["c-", "1"]),
    }
    agent = parse_agent(item, member)
    assert agent == parse_agent(item) == Agent("o-1", "t", "+14155550100", "active", None, "c-1")
    assert agent is not None
    assert agent.user_object_id is member.object_id
    assert agent.phone_number is member.phone_number
    assert agent.consistency_id is member.consistency_id
    moved = parse_agent(item | {"phone_number": "+14155550199"}, member)
    assert moved is not None
    assert moved.phone_number == "+14155550199"


def test_agent_status() -> None:
    assert Agent("o", "t", "+1", "active").active
    assert not Agent("o", "t", "+1", "offboarded").active
    assert not Agent("o", "t", "+1", "orphaned").active


def test_request_bodies_carry_only_what_is_known() -> None:
    assert NewAgent("o", "t", "+1").to_json() == {
        "user_object_id": "o",
        "tenant_id": "t",
        "phone_number": "+1",
    }
    assert NewAgent("o", "t", "+1", upn="u", consistency_id="g").to_json() == {
        "user_object_id": "o",
        "tenant_id": "t",
        "phone_number": "+1",
        "upn": "u",
        "consistency_id": "g",
    }
    assert AgentPatch(upn="new@x").to_json() == {"upn": "new@x"}
    assert not AgentPatch()
    assert AgentPatch(phone_number="+2")
