"""The adaptive write concurrency (`syncd.core.pacing.WritePacer`), with plain data and a virtual clock.

The bounds (never above the cap, never below 1, whatever the answers), the cut on 429 and 503, the growth
back on clean answers, and a discrete simulation of the apply step's requests against the emulator's token
bucket (`syncd.emulators.smartcomm.ratelimit.TokenBucket`) in virtual time: the throughput and 429 targets
of `bench/rate_limit.py`, checked on the controller alone, deterministically.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.pacing import PacingTuning, WritePacer
from syncd.emulators.smartcomm.ratelimit import RateLimit, TokenBucket

RTT = 0.02


def flight(pacer: WritePacer, now: float, statuses: list[int], rtt: float = RTT) -> float:
    """Send one request per status at `now` (as paced), answer each `rtt` later; returns the last answer's
    time."""
    sent = [now + pacer.reserve(now) for _ in statuses]
    last = now
    for at, status in zip(sent, statuses, strict=True):
        last = at + rtt
        pacer.answered(at, last, status)
    return last


def test_nothing_is_paced_until_a_throttle_comes() -> None:
    pacer = WritePacer(32)
    now = 0.0
    for _ in range(50):
        assert pacer.reserve(now) == 0.0
        pacer.answered(now, now + RTT, 201)
        now += 0.001
    assert (pacer.limit, pacer.rate_per_s, pacer.cuts) == (32, None, 0)


def test_a_429_cuts_the_concurrency_and_paces_below_what_was_accepted() -> None:
    pacer = WritePacer(32)
    for i in range(40):  # two seconds of answers, 20 a second
        pacer.answered(i * 0.05, i * 0.05 + RTT, 201)
    change = pacer.answered(2.0, 2.0 + RTT, 429)
    assert change is not None
    assert change.reason == "cut"
    assert pacer.rate_per_s == pytest.approx(0.9 * 19)  # answered within the last second: 1.07 .. 1.97
    assert 1 <= pacer.limit < 32
    assert (change.limit, change.rate_per_s) == (pacer.limit, pacer.rate_per_s)


def test_a_run_younger_than_the_window_is_measured_over_its_age_but_at_least_a_quarter_of_it() -> None:
    pacer = WritePacer(32)
    for i in range(20):  # 0.2 s old: measured over 0.25 s, not over the 1 s window
        pacer.answered(i * 0.01, i * 0.01 + RTT, 201)
    pacer.answered(0.2, 0.2 + RTT, 429)
    assert pacer.rate_per_s == pytest.approx(0.9 * 20 / 0.25)
    assert pacer.known_limit_per_s is None  # no full window yet: not a measure of the limit


def test_a_503_cuts_too_but_measures_no_limit() -> None:
    pacer = WritePacer(8)
    for i in range(30):
        pacer.answered(i * 0.04, i * 0.04 + RTT, 200)
    assert pacer.answered(1.3, 1.3 + RTT, 503) is not None
    assert pacer.rate_per_s is not None
    assert pacer.known_limit_per_s is None


def test_answers_to_requests_sent_before_a_cut_do_not_cut_again() -> None:
    pacer = WritePacer(16)
    for i in range(10):
        pacer.answered(i * 0.01, i * 0.01 + RTT, 201)
    pacer.answered(0.1, 0.13, 429)
    rate = pacer.rate_per_s
    assert pacer.answered(0.11, 0.14, 429) is None  # sent at 0.11, before the cut at 0.13
    assert (pacer.rate_per_s, pacer.cuts, pacer.throttled) == (rate, 1, 2)
    assert pacer.answered(0.2, 0.25, 429) is not None  # sent after it: a new cut
    assert pacer.cuts == 2


def test_a_failed_exchange_changes_nothing() -> None:
    pacer = WritePacer(4)
    assert pacer.answered(0.0, 5.0, None) is None
    assert (pacer.limit, pacer.rate_per_s, pacer.cuts) == (4, None, 0)


def test_paced_requests_start_one_interval_apart() -> None:
    pacer = WritePacer(4)
    for i in range(10):
        pacer.answered(i * 0.1, i * 0.1 + RTT, 201)
    pacer.answered(1.0, 1.0 + RTT, 429)
    rate = pacer.rate_per_s
    assert rate is not None
    now = 1.1
    delays = [pacer.reserve(now) for _ in range(4)]
    assert delays == sorted(delays)
    assert [b - a for a, b in itertools.pairwise(delays)] == pytest.approx([1 / rate] * 3)


def test_after_a_cut_clean_answers_grow_it_back_to_the_cap_and_pacing_ends() -> None:
    pacer = WritePacer(8)
    now = flight(pacer, 0.0, [201] * 4 + [429] * 4)
    assert pacer.limit < 8
    rates: list[float] = []
    while (rate := pacer.rate_per_s) is not None:
        rates.append(rate)
        now = flight(pacer, now, [201])
        assert 1 <= pacer.limit <= 8
        assert now < 3600, "never grew back"
    assert rates == sorted(rates)  # the pace only grows while answers are clean
    assert pacer.limit == 8
    assert pacer.reserve(now) == 0.0


def test_growth_is_slow_near_the_limit_a_429_measured() -> None:
    pacer = WritePacer(32)
    now = 0.0
    for _ in range(40):  # more than a window of answers at 20 a second, then a 429
        pacer.answered(now, now + RTT, 201)
        now += 0.05
    pacer.answered(now, now + RTT, 429)
    assert pacer.known_limit_per_s == pytest.approx(19)  # answered within the last second: 1.07 .. 1.97
    rate = pacer.rate_per_s
    assert rate == pytest.approx(0.9 * 19)
    cut_at = now + RTT
    for second in range(1, 11):  # ten seconds of clean answers, one a second
        pacer.answered(cut_at + second - RTT, cut_at + second, 201)
    assert pacer.rate_per_s == pytest.approx(rate * math.exp(0.015 * 10))


def test_idle_time_between_cycles_does_not_count_as_clean_time() -> None:
    pacer = WritePacer(32)
    now = flight(pacer, 0.0, [201] * 3 + [429])
    rate = pacer.rate_per_s
    assert rate is not None
    pacer.answered(now + 3600 - RTT, now + 3600, 201)  # an hour later
    assert pacer.rate_per_s == pytest.approx(rate * math.exp(PacingTuning().recover_per_s * 1.0))


def test_the_cap_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WritePacer(0)


EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0),  # time to the next event
        st.sampled_from([200, 201, 204, 404, 409, 429, 503, None]),
        st.floats(min_value=0.0, max_value=2.0),  # that request's round trip
        st.integers(min_value=0, max_value=5),  # reservations before it
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(min_value=1, max_value=256), events=EVENTS)
def test_the_concurrency_stays_between_1_and_the_cap_whatever_the_answers(
    cap: int, events: list[tuple[float, int | None, float, int]]
) -> None:
    pacer = WritePacer(cap)
    now = 0.0
    for gap, status, rtt, reservations in events:
        now += gap
        for _ in range(reservations):
            assert pacer.reserve(now) >= 0.0
        pacer.answered(now - rtt, now, status)
        assert 1 <= pacer.limit <= cap
        assert 1 <= pacer.min_limit <= pacer.limit
        rate = pacer.rate_per_s
        assert rate is None or rate >= PacingTuning().min_rate_per_s
        if rate is None:
            assert pacer.limit == cap


# --- the apply step's requests against a token bucket, in virtual time -------------------------------


@dataclass
class Run:
    requests: int
    throttled: int
    accepted: int
    first_at: float
    last_at: float
    onboarded_twice: int
    given_up: int

    @property
    def throughput(self) -> float:
        return self.accepted / (self.last_at - self.first_at)


def simulate(limit: RateLimit, writes: int, *, cap: int = 32, adaptive: bool = True, seed: int = 1) -> Run:
    """`writes` onboardings by `cap` workers, each request through the pacer's gate (at most `limit` in
    flight, started at its pace), answered after 20-50 ms by a server behind `limit`'s token bucket; a 429
    is retried after its Retry-After (plus the client's jitter), at most 5 attempts."""
    rng = random.Random(seed)
    pacer = WritePacer(cap) if adaptive else None
    bucket = TokenBucket(limit, 0.0)
    events: list[tuple[float, int, str, int, float]] = []
    order = itertools.count()
    in_flight, waiting = 0, []
    attempts = dict.fromkeys(range(writes), 0)
    accepted_by_user = dict.fromkeys(range(writes), 0)
    todo = iter(range(writes))
    run = Run(0, 0, 0, math.inf, 0.0, 0, 0)

    def at(time: float, what: str, user: int, sent: float = 0.0) -> None:
        heapq.heappush(events, (time, next(order), what, user, sent))

    def want(now: float, user: int) -> None:
        nonlocal in_flight
        if in_flight < (pacer.limit if pacer else cap):
            in_flight += 1
            at(now + (pacer.reserve(now) if pacer else 0.0), "send", user)
        else:
            waiting.append(user)

    for user in itertools.islice(todo, cap):
        want(0.0, user)
    while events:
        now, _, what, user, sent = heapq.heappop(events)
        if what == "want":
            want(now, user)
            continue
        if what == "send":
            run.requests += 1
            run.first_at = min(run.first_at, now)
            wait = bucket.take(now)
            status = 201 if wait is None else 429
            at(now + rng.uniform(0.02, 0.05), "answer" if wait is None else f"429:{wait}", user, now)
            continue
        in_flight -= 1
        status = 201 if what == "answer" else 429
        if pacer is not None:
            pacer.answered(sent, now, status)
            assert 1 <= pacer.limit <= cap
        attempts[user] += 1
        following: int | None = None
        if status == 201:
            run.accepted += 1
            run.last_at = now
            accepted_by_user[user] += 1
            following = next(todo, None)
        else:
            run.throttled += 1
            if attempts[user] >= 5:
                run.given_up += 1
                following = next(todo, None)
            else:
                retry_after = math.ceil(float(what.split(":")[1]))
                at(now + retry_after + rng.uniform(0, min(1.0, retry_after * 0.1)), "want", user)
        if following is not None:
            want(now, following)
        while waiting and in_flight < (pacer.limit if pacer else cap):
            want(now, waiting.pop(0))
    run.onboarded_twice = sum(1 for n in accepted_by_user.values() if n > 1)
    return run


@pytest.mark.parametrize(("rate", "writes"), [(20, 2000), (200, 5000)])
def test_simulated_onboardings_keep_near_the_limit_with_few_429s(rate: int, writes: int) -> None:
    run = simulate(RateLimit(rate, burst=rate), writes)
    assert run.accepted == writes
    assert run.onboarded_twice == 0
    assert run.given_up == 0
    assert run.throughput >= 0.9 * rate
    assert run.throttled <= 0.02 * run.requests


def test_simulated_fixed_concurrency_spends_most_requests_on_429s() -> None:
    """What the adaptive pace is for: at a fixed 32, most requests are refused, and some writes give up."""
    run = simulate(RateLimit(20, burst=20), 1000, adaptive=False)
    assert run.throttled > 0.5 * run.requests
    assert run.given_up > 0
