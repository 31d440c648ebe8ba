"""The sessions file itself: its schema version (a file from another version is refused with
a message, never misread), rate-limit windows that outlive the process and its monotonic
clock; and the checkpoint stores' ordering rules (SQLite and Redis, one contract)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.storage.redis import RedisSimulationCheckpoints
from adapters.storage.sqlite import (
    SCHEMA_VERSION,
    SqliteDatabase,
    SqliteRateLimiter,
    SqliteSessionRepository,
    SqliteSimulationCheckpoints,
    StorageError,
)
from application.ports import SimulationCheckpoints
from application.simulation import (
    AccountUpdates,
    Checkpoint,
    CompletedRun,
    FinishedSimulation,
    InputKind,
    SimulationInput,
    SimulationResults,
    SimulationState,
    StoredRun,
)
from domain.broker import AccountView, BrokerState
from domain.limits import Plan
from domain.metrics import compute_metrics
from domain.trades import LedgerState
from tests.fakes import EPOCH, FakeClock, principal
from tests.unit.test_memory_repository import make

ZERO = Decimal(0)


def set_version(path: Path, version: str) -> None:
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    db.commit()
    db.close()


def test_a_file_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    SqliteDatabase(path).close()
    set_version(path, str(SCHEMA_VERSION + 1))
    with pytest.raises(StorageError, match=r"newer SimuTrador.*SIMUTRADOR_STORAGE=memory"):
        SqliteDatabase(path)


def test_a_file_from_an_older_version_without_a_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    SqliteDatabase(path).close()
    set_version(path, "0")
    with pytest.raises(StorageError, match="schema 0, which this version"):
        SqliteDatabase(path)
    # Refused, not rewritten: the file still says what wrote it.
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("0",)
    db.close()


def test_other_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="another program's SQLite database"):
        SqliteDatabase(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageError, match="not a"):
        SqliteDatabase(garbage)


def test_a_second_opening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    first = SqliteDatabase(path)
    first.connection().execute("INSERT INTO rate_events (key, at) VALUES ('k', 1)")
    first.close()
    second = SqliteDatabase(path)
    assert second.connection().execute("SELECT count(*) FROM rate_events").fetchone() == (1,)
    second.close()


async def test_rate_windows_outlive_the_process_and_its_monotonic_clock(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    clock = FakeClock(EPOCH, monotonic_start=5_000.0)
    limiter = SqliteRateLimiter(path, clock)
    assert await limiter.try_acquire("k", 2, 3600.0, clock.monotonic()) == 0.0
    clock.advance(minutes=10)
    assert await limiter.try_acquire("k", 2, 3600.0, clock.monotonic()) == 0.0
    limiter.database.close()

    # The machine rebooted: the monotonic clock starts again near 0, the wall clock went on.
    later = FakeClock(EPOCH + timedelta(minutes=20), monotonic_start=12.0)
    again = SqliteRateLimiter(path, later)
    wait = await again.try_acquire("k", 2, 3600.0, later.monotonic())
    assert wait == pytest.approx(40 * 60)  # the first slot frees an hour after it was taken
    later.advance(minutes=40)
    assert await again.try_acquire("k", 2, 3600.0, later.monotonic()) == 0.0
    again.database.close()


async def test_sessions_outlive_the_repository(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    first = SqliteSessionRepository(path)
    assert await first.add_if_under_limit(make("s1"), 1, EPOCH)
    first.database.close()
    second = SqliteSessionRepository(path)
    assert await second.get("s1") == make("s1")
    # The limit counts what an earlier process stored.
    assert not await second.add_if_under_limit(make("s2"), 1, EPOCH)
    second.database.close()


def checkpoint(position: int, sequence: int) -> Checkpoint:
    state = SimulationState(
        sequence=sequence,
        in_flight=sequence,
        cursors=(("AAPL", sequence),),
        broker=BrokerState(ZERO, ZERO, ZERO, ZERO, (), (), (), 0, sequence, None),
        ledger=LedgerState(),
        equity_curve=(),
        ticks_with_position=0,
        reports=(),
        finished=False,
    )
    return Checkpoint(
        "s1", principal(Plan.FREE, "alice"), 0, AccountUpdates.ON_FILL, 100, position, state
    )


@pytest.fixture(params=["sqlite", "redis"])
def checkpoints(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimulationCheckpoints]:
    if request.param == "redis":
        yield RedisSimulationCheckpoints(request.getfixturevalue("redis_database"))
        return
    store = SqliteSimulationCheckpoints(tmp_path / "sessions.db")
    yield store
    store.database.close()


async def test_a_checkpoint_drops_the_journal_it_includes_and_never_goes_back(
    checkpoints: SimulationCheckpoints,
) -> None:
    store = checkpoints
    assert await store.claim("s1")  # the one process driving it (always, with SQLite)
    for position in range(1, 6):
        await store.append("s1", SimulationInput(position, InputKind.ACK, position))
    await store.save(checkpoint(3, 4))
    loaded = await store.load("s1")
    assert isinstance(loaded, StoredRun)
    assert loaded.checkpoint.position == 3
    assert [e.position for e in loaded.journal] == [4, 5]
    await store.save(checkpoint(2, 3))  # late, from before: ignored
    loaded = await store.load("s1")
    assert isinstance(loaded, StoredRun)
    assert loaded.checkpoint.state.sequence == 4
    assert await store.list() == ["s1"]
    await store.delete("s1")
    assert await store.load("s1") is None
    assert await store.list() == []


async def test_results_replace_the_checkpoint_and_journal(
    checkpoints: SimulationCheckpoints,
) -> None:
    store = checkpoints
    assert await store.claim("s1")
    await store.save(checkpoint(2, 3))
    await store.append("s1", SimulationInput(3, InputKind.ACK, 3))
    finished = await store.load("s1")
    assert isinstance(finished, StoredRun)
    done = CompletedRun(
        "s1",
        finished.checkpoint.principal,
        SimulationResults(
            compute_metrics(
                [Decimal(100), Decimal(101)],
                [],
                bars_total=3,
                bars_with_position=0,
                total_commission=ZERO,
                total_slippage=ZERO,
            ),
            (),
            (),
            0,
            3,
        ),
        FinishedSimulation(
            finished.checkpoint.state,
            AccountView(ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, (), ()),
            12,
        ),
    )
    await store.complete(done)
    assert await store.load("s1") == done
    assert await store.list() == ["s1"]
    await store.delete("s1")
    assert await store.load("s1") is None


async def test_touches_a_moment_apart_are_written_once(tmp_path: Path) -> None:
    repo = SqliteSessionRepository(tmp_path / "sessions.db")
    session = make("s1")  # a 60-minute idle timeout: touches within a second coalesce
    assert await repo.add_if_under_limit(session, 5, EPOCH)
    session.touch(EPOCH + timedelta(milliseconds=400))
    assert await repo.save(session)
    stored = await repo.get("s1")
    assert stored is not None
    assert stored.expires_at == EPOCH + timedelta(minutes=60)  # not written
    session.touch(EPOCH + timedelta(seconds=2))
    assert await repo.save(session)
    stored = await repo.get("s1")
    assert stored is not None
    assert stored.expires_at == EPOCH + timedelta(minutes=60, seconds=2)
    session.mark_ready()  # a state change is always written, however soon
    assert await repo.save(session)
    stored = await repo.get("s1")
    assert stored is not None
    assert stored.state is session.state
    await repo.remove("s1")
    assert not await repo.save(session)
    repo.database.close()


def test_one_statement_is_its_own_transaction_and_runs_after_what_was_deferred(
    tmp_path: Path,
) -> None:
    database = SqliteDatabase(tmp_path / "sessions.db")
    insert = "INSERT INTO rate_events (key, at) VALUES (?, ?)"
    other = sqlite3.connect(tmp_path / "sessions.db")
    try:
        database.write_one(insert, ("alone", 1.0))  # committed: another connection sees it
        assert other.execute("SELECT key FROM rate_events").fetchall() == [("alone",)]
        database.defer(insert, ("deferred", 2.0))
        database.write_one(insert, ("after", 3.0))
        rows = other.execute("SELECT key FROM rate_events ORDER BY rowid").fetchall()
        assert rows == [("alone",), ("deferred",), ("after",)]
    finally:
        other.close()
        database.close()
