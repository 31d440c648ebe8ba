"""SqliteBarStore on a real file: exact round trips, ranges, the write rules, removal, a
coverage cache that notices other processes, atomic writes, and files it must refuse."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.bars import sqlite_store
from adapters.bars.sqlite_store import CHUNK_BARS, SCHEMA_VERSION, BarStoreError, SqliteBarStore
from domain.bars import (
    Bar,
    BarSeries,
    Coverage,
    DataSource,
    Timeframe,
    coverage_of,
    epoch_seconds,
    from_epoch,
)
from domain.errors import DataConflict
from tests.fakes import BARS_START, bars_of

DAY = 86_400
T0 = epoch_seconds(BARS_START)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "bars.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteBarStore]:
    opened = SqliteBarStore(path)
    yield opened
    opened.close()


def read_all(store: SqliteBarStore, symbol: str, timeframe: Timeframe = Timeframe.D1) -> BarSeries:
    return store.read_sync([symbol], timeframe, 0, 2**62)[symbol]


def assert_same(a: BarSeries, b: BarSeries) -> None:
    """Identical bars, compared as exact values (scales may legitimately differ)."""
    assert (a.symbol, a.timeframe) == (b.symbol, b.timeframe)
    assert a.bars() == b.bars()


def closes(series: BarSeries) -> list[Decimal]:
    return [series.price(c) for c in series.closes]


def day_numbers(series: BarSeries) -> list[int]:
    return [(t - T0) // DAY for t in series.times]


# --- round trips ------------------------------------------------------------------------------


def test_round_trip_is_exact_column_by_column(store: SqliteBarStore) -> None:
    d = Decimal
    rows = [
        Bar(
            BARS_START,
            d("0.000012345"),
            d("0.000012400"),
            d("0.0000123"),
            d("0.00001239"),
            d("123456.789"),
        ),
        Bar(BARS_START + timedelta(days=1), d("1"), d("2"), d("0.5"), d("1.5"), d(0)),
    ]
    series = BarSeries.from_bars("SHIB-USD", Timeframe.D1, rows)
    coverage = store.write_sync(series, DataSource.IMPORTED, replace=False)

    assert coverage == Coverage(
        "SHIB-USD", Timeframe.D1, rows[0].time, rows[1].time, 2, DataSource.IMPORTED
    )
    back = read_all(store, "SHIB-USD")
    assert (back.price_scale, back.volume_scale) == (series.price_scale, series.volume_scale)
    for mine, theirs in zip(series.columns, back.columns, strict=True):
        assert list(mine) == list(theirs)
    assert back.bars() == rows
    assert back.bar(0).open.as_tuple() == Decimal("0.000012345").as_tuple()


def test_a_series_over_many_chunks_comes_back_whole(store: SqliteBarStore) -> None:
    # Minute bars are cut into blobs of CHUNK_BARS minutes: 10,000 bars span three of them.
    prices = [f"{100 + (i % 997) / 100:.2f}" for i in range(10_000)]
    series = bars_of("AAPL", *prices, timeframe=Timeframe.M1)
    assert (series.times[-1] - series.times[0]) // 60 >= 2 * CHUNK_BARS
    store.write_sync(series, DataSource.IMPORTED, replace=False)
    back = read_all(store, "AAPL", Timeframe.M1)
    assert list(back.times) == list(series.times)
    assert list(back.closes) == list(series.closes)
    # A window straddling a chunk boundary.
    first, last = series.times[4000], series.times[4200]
    window = store.read_sync(["AAPL"], Timeframe.M1, first, last)["AAPL"]
    assert list(window.times) == list(series.times[4000:4201])


def test_read_several_symbols_from_one_snapshot(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", "1", "2", "3"), DataSource.IMPORTED, replace=False)
    store.write_sync(bars_of("MSFT", "7.5", "8.25"), DataSource.SYNTHETIC, replace=False)
    got = store.read_sync(["MSFT", "NOPE", "AAPL"], Timeframe.D1, 0, 2**62)
    assert list(got) == ["MSFT", "NOPE", "AAPL"]
    assert closes(got["AAPL"]) == [Decimal(1), Decimal(2), Decimal(3)]
    assert closes(got["MSFT"]) == [Decimal("7.5"), Decimal("8.25")]
    assert len(got["NOPE"]) == 0
    assert got["NOPE"].symbol == "NOPE"
    # Other timeframes are other series.
    assert len(store.read_sync(["AAPL"], Timeframe.H1, 0, 2**62)["AAPL"]) == 0


def test_read_filters_by_close_instant_inclusive(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", *map(str, range(1, 11))), DataSource.IMPORTED, replace=False)

    def window(first: int, last: int) -> list[int]:
        return day_numbers(store.read_sync(["AAPL"], Timeframe.D1, first, last)["AAPL"])

    assert window(T0 + 2 * DAY, T0 + 5 * DAY) == [2, 3, 4, 5]
    assert window(T0 + 2 * DAY + 1, T0 + 5 * DAY - 1) == [3, 4]
    assert window(T0 - 100 * DAY, T0) == [0]
    assert window(T0 + 10 * DAY, T0 + 20 * DAY) == []
    assert window(T0 + 5 * DAY, T0 + 2 * DAY) == []


# --- the write rules ----------------------------------------------------------------------------


def test_replace_overwrites_the_span_and_keeps_the_rest(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", *["10"] * 10), DataSource.IMPORTED, replace=False)
    patch = bars_of("AAPL", "1.125", "1.125", start=BARS_START + timedelta(days=4))
    coverage = store.write_sync(patch, DataSource.IMPORTED, replace=True)
    back = read_all(store, "AAPL")
    assert closes(back) == [Decimal(10)] * 4 + [Decimal("1.125")] * 2 + [Decimal(10)] * 4
    assert back.price_scale == 3
    assert coverage == coverage_of(back, DataSource.IMPORTED)
    assert store.coverage_sync() == (coverage,)


def test_appending_next_to_stored_bars_needs_no_replace(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", "1", "2"), DataSource.IMPORTED, replace=False)
    later = bars_of("AAPL", "3", start=BARS_START + timedelta(days=2))
    coverage = store.write_sync(later, DataSource.IMPORTED, replace=False)
    assert (coverage.bars, coverage.last) == (3, later.bar(0).time)
    assert closes(read_all(store, "AAPL")) == [Decimal(1), Decimal(2), Decimal(3)]


def test_overlap_without_replace_is_a_conflict_and_changes_nothing(
    store: SqliteBarStore,
) -> None:
    original = bars_of("AAPL", "1", "2", "3")
    store.write_sync(original, DataSource.IMPORTED, replace=False)
    before = store.coverage_sync()
    overlapping = bars_of("AAPL", "9", "9", start=BARS_START + timedelta(days=2))
    with pytest.raises(DataConflict) as caught:
        store.write_sync(overlapping, DataSource.IMPORTED, replace=False)
    assert caught.value.details["stored_last"] == original.bar(2).time.isoformat()
    assert_same(read_all(store, "AAPL"), original)
    assert store.coverage_sync() == before


def test_imported_bars_drop_the_synthetic_series(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", *["5"] * 10), DataSource.SYNTHETIC, replace=False)
    imported = bars_of("AAPL", "1", "2", start=BARS_START + timedelta(days=20))
    # No replace asked, no overlap: still, not one synthetic bar survives next to real ones.
    coverage = store.write_sync(imported, DataSource.IMPORTED, replace=False)
    assert coverage.source is DataSource.IMPORTED
    assert coverage.bars == 2
    assert_same(read_all(store, "AAPL"), imported)
    assert [c.source for c in store.coverage_sync()] == [DataSource.IMPORTED]


def test_synthetic_bars_over_imported_ones_are_refused(store: SqliteBarStore) -> None:
    imported = bars_of("AAPL", "1", "2")
    store.write_sync(imported, DataSource.IMPORTED, replace=False)
    synthetic = bars_of("AAPL", "5", start=BARS_START + timedelta(days=30))
    with pytest.raises(DataConflict, match="never replace"):
        store.write_sync(synthetic, DataSource.SYNTHETIC, replace=True)
    assert_same(read_all(store, "AAPL"), imported)


def test_an_empty_write_is_refused(store: SqliteBarStore) -> None:
    with pytest.raises(DataConflict):
        store.write_sync(BarSeries.empty("AAPL", Timeframe.D1), DataSource.IMPORTED, replace=True)
    assert store.coverage_sync() == ()


def test_remove_one_timeframe_or_all(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", "1", "2", "3"), DataSource.IMPORTED, replace=False)
    store.write_sync(
        bars_of("AAPL", "1", "2", timeframe=Timeframe.H1), DataSource.IMPORTED, replace=False
    )
    store.write_sync(bars_of("MSFT", "1"), DataSource.IMPORTED, replace=False)

    assert store.remove_sync("AAPL", Timeframe.H1) == 2
    assert [(c.symbol, c.timeframe) for c in store.coverage_sync()] == [
        ("AAPL", Timeframe.D1),
        ("MSFT", Timeframe.D1),
    ]
    store.write_sync(
        bars_of("AAPL", "1", timeframe=Timeframe.M5), DataSource.IMPORTED, replace=False
    )
    assert store.remove_sync("AAPL") == 3 + 1
    assert [c.symbol for c in store.coverage_sync()] == ["MSFT"]
    assert len(read_all(store, "AAPL")) == 0
    assert store.remove_sync("AAPL") == 0
    # The chunks went with their series (no orphans left to be read back by a new series).
    store.write_sync(bars_of("AAPL", "4"), DataSource.IMPORTED, replace=False)
    assert closes(read_all(store, "AAPL")) == [Decimal(4)]


async def test_the_async_port_does_the_same_work(store: SqliteBarStore) -> None:
    series = bars_of("AAPL", "1.5", "2.5")
    coverage = await store.write(series, DataSource.IMPORTED, replace=False)
    assert await store.coverage() == (coverage,)
    got = await store.read(["AAPL"], Timeframe.D1, T0, T0 + DAY)
    assert_same(got["AAPL"], series)
    assert await store.remove("AAPL") == 2
    assert await store.coverage() == ()


# --- several processes on one file ------------------------------------------------------------


def test_coverage_sees_a_write_made_through_another_store_on_the_same_file(
    store: SqliteBarStore, path: Path
) -> None:
    store.write_sync(bars_of("AAPL", "1"), DataSource.SYNTHETIC, replace=False)
    cached = store.coverage_sync()
    assert store.coverage_sync() is cached  # unchanged file: the cached tuple itself

    other = SqliteBarStore(path)  # e.g. `simutrador data import` in another process
    try:
        written = other.write_sync(bars_of("MSFT", "2", "3"), DataSource.IMPORTED, replace=False)
        fresh = store.coverage_sync()
        assert fresh is not cached
        assert [c.symbol for c in fresh] == ["AAPL", "MSFT"]
        assert fresh[1] == written
        assert closes(read_all(store, "MSFT")) == [Decimal(2), Decimal(3)]

        other.remove_sync("AAPL")
        assert [c.symbol for c in store.coverage_sync()] == ["MSFT"]
    finally:
        other.close()


def test_data_survives_reopening(path: Path) -> None:
    first = SqliteBarStore(path)
    series = bars_of("EUR/USD", "1.08765", "1.09001")
    first.write_sync(series, DataSource.IMPORTED, replace=True)
    first.close()
    again = SqliteBarStore(path)
    try:
        assert_same(read_all(again, "EUR/USD"), series)
        assert again.coverage_sync() == (coverage_of(series, DataSource.IMPORTED),)
    finally:
        again.close()


# --- atomic writes ------------------------------------------------------------------------------


def test_a_write_failing_half_way_leaves_the_old_data(
    store: SqliteBarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = bars_of("AAPL", *["1"] * 9000, timeframe=Timeframe.M1)
    store.write_sync(old, DataSource.IMPORTED, replace=False)
    before = store.coverage_sync()

    encode = sqlite_store._encode
    calls = 0

    def encode_then_die(series: BarSeries) -> bytes:
        # Fails on the second chunk: the series row is updated, old chunks are deleted, and
        # the first new chunk is inserted when the failure strikes.
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk on fire")
        return encode(series)

    monkeypatch.setattr(sqlite_store, "_encode", encode_then_die)
    new = bars_of("AAPL", *["2"] * 9500, timeframe=Timeframe.M1)
    with pytest.raises(OSError, match="disk on fire"):
        store.write_sync(new, DataSource.IMPORTED, replace=True)
    assert calls == 2
    monkeypatch.undo()

    assert store.coverage_sync() == before
    back = read_all(store, "AAPL", Timeframe.M1)
    assert list(back.times) == list(old.times)
    assert set(back.closes) == {1}
    # The store is still usable: the same write now succeeds.
    store.write_sync(new, DataSource.IMPORTED, replace=True)
    assert set(read_all(store, "AAPL", Timeframe.M1).closes) == {2}


# --- files it must refuse -----------------------------------------------------------------------


def test_a_newer_schema_is_refused_with_a_clear_error(path: Path) -> None:
    SqliteBarStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(BarStoreError) as caught:
        SqliteBarStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "schema 99" in message
    assert f"reads schema {SCHEMA_VERSION}" in message


@pytest.mark.parametrize("content", [b"this is not a database\n" * 200, b"\x00" * 4096])
def test_a_file_that_is_not_sqlite_is_refused(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(BarStoreError) as caught:
        SqliteBarStore(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content  # and left alone


def test_another_programs_sqlite_file_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE series (name TEXT, episodes INTEGER)")
    db.close()
    with pytest.raises(BarStoreError) as caught:
        SqliteBarStore(path)
    assert str(path) in str(caught.value)
    assert "another program" in str(caught.value)
    db = sqlite3.connect(path)
    try:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        db.close()
    assert tables == [("series",)]  # not adopted: no meta, no chunks added


def test_the_file_and_its_directory_are_created(path: Path) -> None:
    assert not path.parent.exists()
    SqliteBarStore(path).close()
    assert path.is_file()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    finally:
        db.close()


def test_coverage_instants_are_utc(store: SqliteBarStore) -> None:
    store.write_sync(bars_of("AAPL", "1"), DataSource.IMPORTED, replace=False)
    (coverage,) = store.coverage_sync()
    assert coverage.first == from_epoch(T0) == BARS_START
