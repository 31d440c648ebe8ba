"""The per-connection token bucket and the process-wide sliding-window limiter (in memory,
in the sessions file, and in Redis, shared by processes, against the same cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ratelimit import InMemoryRateLimiter
from adapters.storage.redis import RedisRateLimiter
from adapters.storage.sqlite import SqliteRateLimiter
from application.ports import RateLimiter
from domain.ratelimit import TokenBucket
from tests.fakes import FakeClock

# --- TokenBucket ------------------------------------------------------------------------------


def test_bucket_starts_full_and_then_refuses() -> None:
    bucket = TokenBucket(capacity=3, period_seconds=60)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Refilled at 3 per 60 s: one token every 20 s.
    assert bucket.take(100.0) == pytest.approx(20.0)
    assert bucket.take(105.0) == pytest.approx(15.0)


def test_bucket_refills_continuously() -> None:
    bucket = TokenBucket(capacity=2, period_seconds=10)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(4.9) > 0.0
    assert bucket.take(5.0) == 0.0  # one token per 5 s
    assert bucket.take(5.0) > 0.0


def test_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(capacity=2, period_seconds=1)
    bucket.take(0.0)
    granted = [bucket.take(1_000_000.0) for _ in range(5)]
    assert granted.count(0.0) == 2
    assert bucket.tokens == pytest.approx(0.0)


def test_bucket_ignores_a_clock_that_goes_back() -> None:
    bucket = TokenBucket(capacity=1, period_seconds=10)
    bucket.take(50.0)
    assert bucket.take(40.0) == pytest.approx(10.0)  # no negative refill, no error
    assert bucket.tokens == pytest.approx(0.0)


def test_bucket_rate() -> None:
    assert TokenBucket(capacity=600, period_seconds=60).rate == pytest.approx(10.0)


# --- RateLimiter adapters ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> RateLimiter:
    if request.param == "memory":
        return InMemoryRateLimiter()
    if request.param == "redis":
        return RedisRateLimiter(request.getfixturevalue("redis_database"), FakeClock())
    return SqliteRateLimiter(tmp_path / "sessions.db", FakeClock())


async def test_limiter_grants_up_to_the_limit_then_says_when(limiter: RateLimiter) -> None:
    assert await limiter.try_acquire("k", 3, 60.0, 0.0) == 0.0
    assert await limiter.try_acquire("k", 3, 60.0, 10.0) == 0.0
    assert await limiter.try_acquire("k", 3, 60.0, 20.0) == 0.0
    # The oldest slot (t=0) leaves the window at t=60.
    assert await limiter.try_acquire("k", 3, 60.0, 25.0) == pytest.approx(35.0)
    assert await limiter.try_acquire("k", 3, 60.0, 59.9) == pytest.approx(0.1)
    assert await limiter.try_acquire("k", 3, 60.0, 60.0) == 0.0
    assert await limiter.try_acquire("k", 3, 60.0, 60.0) == pytest.approx(10.0)  # next: t=10's


async def test_refused_attempts_take_no_slot(limiter: RateLimiter) -> None:
    await limiter.try_acquire("k", 1, 10.0, 0.0)
    for t in range(1, 10):
        assert await limiter.try_acquire("k", 1, 10.0, float(t)) > 0.0
    assert await limiter.try_acquire("k", 1, 10.0, 10.0) == 0.0


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert await limiter.try_acquire("alice", 1, 60.0, 0.0) == 0.0
    assert await limiter.try_acquire("alice", 1, 60.0, 0.0) > 0.0
    assert await limiter.try_acquire("bob", 1, 60.0, 0.0) == 0.0


async def test_release_gives_the_latest_slot_back(limiter: RateLimiter) -> None:
    await limiter.try_acquire("k", 2, 60.0, 0.0)
    await limiter.try_acquire("k", 2, 60.0, 30.0)
    await limiter.release("k", 30.0)
    assert await limiter.try_acquire("k", 2, 60.0, 31.0) == 0.0
    # The t=0 slot was kept: it is still the one that frees up first.
    assert await limiter.try_acquire("k", 2, 60.0, 31.0) == pytest.approx(29.0)


async def test_release_of_an_unknown_or_empty_key_is_harmless(limiter: RateLimiter) -> None:
    await limiter.release("never-used", 0.0)
    await limiter.try_acquire("k", 1, 60.0, 0.0)
    await limiter.release("k", 0.0)
    await limiter.release("k", 0.0)
    assert await limiter.try_acquire("k", 1, 60.0, 0.0) == 0.0


async def test_a_zero_limit_always_refuses(limiter: RateLimiter) -> None:
    assert await limiter.try_acquire("k", 0, 60.0, 0.0) == 60.0
