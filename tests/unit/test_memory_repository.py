"""The session repositories against one contract (atomic limited insert, per-owner list,
expiry): in memory, in SQLite and in Redis. Then what only the in-memory one does (its heap,
its counts of visited sessions)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.storage.memory import InMemorySessionRepository
from adapters.storage.redis import RedisSessionRepository
from adapters.storage.sqlite import SqliteDatabase, SqliteSessionRepository
from application.ports import SessionRepository
from domain.bars import Timeframe
from domain.dates import DateRange
from domain.session import EngineSettings, SimulationSession
from domain.symbols import AssetClass, Symbol
from tests.fakes import EPOCH

TIMEOUT = timedelta(minutes=60)
RANGE = DateRange.parse("2023-01-03", "2023-12-29")


class CountingSession(SimulationSession):
    """Counts how often the repository asks whether it is expired, to show what it visits."""

    expiry_checks = 0

    def is_expired(self, now: datetime, timeout: timedelta | None = None) -> bool:
        type(self).expiry_checks += 1
        return super().is_expired(now, timeout)


def make(
    session_id: str,
    owner: str = "alice",
    created: datetime = EPOCH,
    cls: type[SimulationSession] = SimulationSession,
) -> SimulationSession:
    return cls(
        id=session_id,
        owner=owner,
        symbols=(Symbol("AAPL", AssetClass.STOCK),),
        date_range=RANGE,
        initial_capital=Decimal("10000.00"),
        created_at=created,
        idle_timeout=TIMEOUT,
    )


@pytest.fixture(params=["memory", "sqlite", "redis"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionRepository]:
    if request.param == "memory":
        yield InMemorySessionRepository()
        return
    if request.param == "redis":
        yield RedisSessionRepository(request.getfixturevalue("redis_database"))
        return
    database = SqliteDatabase(tmp_path / "sessions.db")
    yield SqliteSessionRepository(database)
    database.close()


async def test_add_get_remove_count(repo: SessionRepository) -> None:
    session = make("s1")
    assert await repo.add_if_under_limit(session, 5, EPOCH)
    assert await repo.get("s1") == session
    assert await repo.get("nope") is None
    assert await repo.count() == 1
    assert await repo.remove("s1") == session
    assert await repo.remove("s1") is None
    assert await repo.get("s1") is None
    assert await repo.count() == 0
    assert await repo.list_by_owner("alice") == []


async def test_limit_counts_only_the_owners_active_unexpired_sessions(
    repo: SessionRepository,
) -> None:
    assert await repo.add_if_under_limit(make("a1"), 2, EPOCH)
    assert await repo.add_if_under_limit(make("b1", "bob"), 2, EPOCH)
    assert await repo.add_if_under_limit(make("a2"), 2, EPOCH)
    assert not await repo.add_if_under_limit(make("a3"), 2, EPOCH)
    assert await repo.get("a3") is None

    done = await repo.get("a1")
    assert done is not None
    done.mark_ready()
    done.start()
    done.complete()
    assert await repo.save(done)
    assert await repo.add_if_under_limit(make("a3"), 2, EPOCH)
    # a2 and a3 are active; once they have expired neither counts.
    assert not await repo.add_if_under_limit(make("a4"), 2, EPOCH)
    assert await repo.add_if_under_limit(make("a4"), 2, EPOCH + TIMEOUT)
    assert [s.id for s in await repo.list_by_owner("alice")] == ["a1", "a2", "a3", "a4"]


async def test_zero_limit_refuses_even_a_first_session(repo: SessionRepository) -> None:
    assert not await repo.add_if_under_limit(make("a1"), 0, EPOCH)
    assert await repo.count() == 0
    assert await repo.list_by_owner("alice") == []


async def test_the_limit_check_never_looks_at_other_users_sessions() -> None:
    repo = InMemorySessionRepository()
    for i in range(500):
        await repo.add_if_under_limit(
            make(f"o{i}", f"user{i % 50}", cls=CountingSession), 100, EPOCH
        )
    CountingSession.expiry_checks = 0
    assert await repo.add_if_under_limit(make("mine", "alice"), 1, EPOCH)
    assert await repo.add_if_under_limit(make("theirs", "user7"), 100, EPOCH)
    # alice had nothing; user7's ten stored sessions are under the limit: nothing to count.
    assert CountingSession.expiry_checks == 0
    # At the limit only user7's own sessions are examined: its ten counting ones, once each.
    assert not await repo.add_if_under_limit(make("more", "user7"), 11, EPOCH)
    assert CountingSession.expiry_checks == 10


async def test_get_and_list_visit_no_session() -> None:
    repo = InMemorySessionRepository()
    for i in range(1_000):
        await repo.add_if_under_limit(
            make(f"s{i}", f"user{i % 100}", cls=CountingSession), 100, EPOCH
        )
    CountingSession.expiry_checks = 0
    assert (await repo.get("s737")) is not None
    listed = await repo.list_by_owner("user37")
    assert [s.id for s in listed] == [f"s{i}" for i in range(37, 1_000, 100)]
    assert CountingSession.expiry_checks == 0


async def test_list_is_a_snapshot(repo: SessionRepository) -> None:
    await repo.add_if_under_limit(make("a1"), 5, EPOCH)
    listed = await repo.list_by_owner("alice")
    await repo.add_if_under_limit(make("a2"), 5, EPOCH)
    await repo.remove("a1")
    assert [s.id for s in listed] == ["a1"]


async def test_save_on_a_removed_session_returns_false(repo: SessionRepository) -> None:
    session = make("s1")
    assert not await repo.save(session)  # never stored
    await repo.add_if_under_limit(session, 5, EPOCH)
    assert await repo.save(session)
    await repo.remove("s1")
    assert not await repo.save(session)
    assert await repo.get("s1") is None
    assert await repo.list_by_owner("alice") == []


async def test_remove_expired_pops_only_what_may_have_expired() -> None:
    repo = InMemorySessionRepository()
    await repo.add_if_under_limit(make("old", created=EPOCH, cls=CountingSession), 10_000, EPOCH)
    later = EPOCH + timedelta(minutes=30)
    for i in range(1_000):
        fresh = make(f"new{i}", created=later, cls=CountingSession)
        await repo.add_if_under_limit(fresh, 10_000, later)
    CountingSession.expiry_checks = 0
    removed = await repo.remove_expired(EPOCH + TIMEOUT)
    assert [s.id for s in removed] == ["old"]
    assert CountingSession.expiry_checks == 1  # the heap says the others are not due
    assert await repo.count() == 1_000


async def test_remove_expired_requeues_touched_sessions(repo: SessionRepository) -> None:
    session = make("s1")
    await repo.add_if_under_limit(session, 5, EPOCH)
    session.touch(EPOCH + timedelta(minutes=50))
    await repo.save(session)

    assert await repo.remove_expired(EPOCH + timedelta(minutes=61)) == []
    assert await repo.get("s1") == session
    # Queued again at its new expiry, so a later sweep still finds it.
    removed = await repo.remove_expired(EPOCH + timedelta(minutes=110))
    assert removed == [session]
    assert await repo.count() == 0
    assert await repo.list_by_owner("alice") == []


async def test_remove_expired_skips_deleted_sessions_and_compacts_the_heap() -> None:
    repo = InMemorySessionRepository()
    for i in range(300):
        await repo.add_if_under_limit(make(f"s{i}"), 1_000, EPOCH)
    for i in range(290):
        await repo.remove(f"s{i}")
    # Nothing has expired yet, but the sweep drops the 290 stale heap entries.
    assert await repo.remove_expired(EPOCH) == []
    assert len(repo._expiry) == 10
    removed = await repo.remove_expired(EPOCH + TIMEOUT)
    assert sorted(s.id for s in removed) == sorted(f"s{i}" for i in range(290, 300))
    assert await repo.count() == 0


async def test_every_field_comes_back_as_it_was_stored(repo: SessionRepository) -> None:
    session = SimulationSession(
        id="full",
        owner="alice",
        symbols=(Symbol("AAPL", AssetClass.STOCK), Symbol("EUR/USD", AssetClass.FOREX)),
        date_range=RANGE,
        initial_capital=Decimal("12345.67"),
        created_at=EPOCH,
        idle_timeout=TIMEOUT,
        metadata={"strategy": "sma", "params": {"fast": 10, "slow": [30, 50]}, "big": -(2**70)},
        engine=EngineSettings(
            commission_per_share=Decimal("0.005"),
            slippage_bps=Decimal("2.5"),
            commission_pct=Decimal("0.001"),
            commission_min=Decimal("1"),
            max_volume_pct=Decimal("0.1"),
            allow_short=True,
        ),
        timeframe=Timeframe.H1,
        estimated_trading_days=249,
        total_bars=1_743,
        warnings=("EUR/USD: 3 days without bars",),
    )
    session.mark_ready()
    session.start()
    session.touch(EPOCH + timedelta(minutes=7))
    session.fail("the engine failed")
    assert await repo.add_if_under_limit(session, 5, EPOCH)
    assert await repo.save(session)
    stored = await repo.get("full")
    assert stored is not None
    for name in SimulationSession.__dataclass_fields__:
        assert getattr(stored, name) == getattr(session, name), name
    assert stored.updated_at == EPOCH + timedelta(minutes=7)
    assert stored.expires_at == EPOCH + timedelta(minutes=67)
