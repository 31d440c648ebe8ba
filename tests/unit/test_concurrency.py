"""One user, one service, a hundred simultaneous creates from threads and tasks: the active
limit holds exactly and nothing is lost, in memory, in SQLite (one connection a thread) and
in Redis (one client an event loop, with its rate limiter too)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.storage.memory import InMemorySessionRepository
from adapters.storage.redis import RedisDatabase, RedisRateLimiter, RedisSessionRepository
from adapters.storage.sqlite import SqliteSessionRepository
from application.ports import SessionRepository
from application.sessions import SessionService
from domain.errors import SessionLimitExceeded
from domain.limits import Plan
from tests.fakes import FakeClock, limits_for, make_service, principal, session_params

THREADS = 50
TASKS = 50
MAX_ACTIVE = 10
# Hourly creation allowance far above the attempts, so only the active limit binds.
USER = principal(
    Plan.PROFESSIONAL,
    "racer",
    limits=limits_for(Plan.PROFESSIONAL, max_active_sessions=MAX_ACTIVE, sessions_per_hour=1_000),
)


async def _nothing() -> None:
    pass


def _ping(database: RedisDatabase) -> Callable[[], Awaitable[object]]:
    async def ping() -> object:
        return await database.client().ping()

    return ping


# A lost update needs a thread switch inside a few microseconds of code, so one race may not
# show it; five independent rounds give a missing lock several chances to be caught.
@pytest.mark.parametrize("storage", ["memory", "sqlite", "redis"])
@pytest.mark.parametrize("round_", range(5))
def test_threads_and_tasks_racing_for_the_active_limit(
    round_: int, storage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    repository: SessionRepository
    connect: Callable[[], Awaitable[object]] = _nothing
    if storage == "redis":
        database: RedisDatabase = request.getfixturevalue("redis_database")
        connect = _ping(database)
        repository = RedisSessionRepository(database)
        clock = FakeClock()
        service = make_service(
            repository=repository, clock=clock, rate_limiter=RedisRateLimiter(database, clock)
        )
    else:
        repository = (
            InMemorySessionRepository()
            if storage == "memory"
            else SqliteSessionRepository(tmp_path / "sessions.db")
        )
        service = make_service(repository=repository)
    # Everyone (the threads, the loop hosting the tasks, and this thread) meets at the
    # barrier, then spins on `go`: spinning threads are all runnable at the moment it flips,
    # so they enter the service together instead of waking one by one.
    ready = threading.Barrier(THREADS + 2)
    go = threading.Event()
    results: list[str | BaseException] = []
    results_lock = threading.Lock()

    async def attempt(service: SessionService) -> None:
        try:
            session = await service.create(USER, session_params())
            outcome: str | BaseException = session.id
        except BaseException as exc:  # every kind of failure is recorded, then judged
            outcome = exc
        with results_lock:
            results.append(outcome)

    def wait_for_start() -> None:  # blocks only the calling thread's own event loop
        ready.wait()
        while not go.is_set():
            time.sleep(0)  # stay runnable, but let the others reach the start line

    # Each racer's event loop opens its Redis connection before the start line: the race is
    # for the limit, not for 51 connections opened at once by threads switching every
    # microsecond (which, on a loaded machine, can outlast the connect timeout).
    async def in_thread() -> None:
        await connect()
        wait_for_start()
        await attempt(service)

    async def as_tasks() -> None:
        released = asyncio.Event()

        async def task() -> None:
            await released.wait()
            await attempt(service)

        await connect()
        tasks = [asyncio.create_task(task()) for _ in range(TASKS)]
        await asyncio.sleep(0)  # every task is now parked on the event
        wait_for_start()
        released.set()
        await asyncio.gather(*tasks)

    threads = [threading.Thread(target=asyncio.run, args=(in_thread(),)) for _ in range(THREADS)]
    threads.append(threading.Thread(target=asyncio.run, args=(as_tasks(),)))
    for thread in threads:
        thread.start()
    ready.wait()
    # From here on, switch threads every microsecond rather than every 5 ms, so the racers
    # interleave inside the service instead of running one after another.
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        go.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(previous_interval)
    assert not any(thread.is_alive() for thread in threads)

    assert len(results) == THREADS + TASKS  # nothing lost
    successes = [r for r in results if isinstance(r, str)]
    failures = [r for r in results if not isinstance(r, str)]
    assert len(successes) == MAX_ACTIVE
    assert len(set(successes)) == MAX_ACTIVE
    for failure in failures:
        assert isinstance(failure, SessionLimitExceeded), repr(failure)
        assert failure.details["limit"] == "active_sessions"

    stored = asyncio.run(repository.list_by_owner(USER.user_id))
    assert {s.id for s in stored} == set(successes)
    assert asyncio.run(repository.count()) == MAX_ACTIVE
