"""The embedded bar store: one SQLite file (WAL) holding each series as columnar blocks.

A series is cut into chunks of up to `CHUNK_BARS` bar-lengths of time; a chunk is one row
whose blob is the six int64 columns of its bars back to back (little-endian). Reading a
year of minute bars is a few dozen blob fetches and `array.frombytes`, not 100,000 rows.
Every write is one `BEGIN IMMEDIATE` transaction, so readers (in any process) see the old
series or the new one, and a killed import leaves the old data as it was."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from adapters.sqlite_files import open_wal, prepare_schema
from domain.bars import (
    BarSeries,
    Coverage,
    DataSource,
    Timeframe,
    coverage_of,
    from_epoch,
    merge_series,
    plan_write,
)

SCHEMA_VERSION = 1
CHUNK_BARS = 4096
_COLUMNS = 6
_LITTLE_ENDIAN = sys.byteorder == "little"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    source TEXT NOT NULL,
    price_scale INTEGER NOT NULL,
    volume_scale INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    bars INTEGER NOT NULL,
    UNIQUE (symbol, timeframe)
);
CREATE TABLE IF NOT EXISTS chunks (
    series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    bucket INTEGER NOT NULL,
    bars INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
"""


class BarStoreError(Exception):
    """The store file cannot be used (another program's file, or a newer format)."""


def _bucket_span(timeframe: Timeframe) -> int:
    return CHUNK_BARS * timeframe.seconds


def _encode(series: BarSeries) -> bytes:
    block = array("q")
    for column in series.columns:
        block.extend(column)
    if not _LITTLE_ENDIAN:
        block.byteswap()
    return block.tobytes()


class SqliteBarStore:
    """`BarStore` over a SQLite file. Safe from many threads and processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._coverage_lock = threading.Lock()
        self._coverage: tuple[int, tuple[Coverage, ...]] | None = None
        self._watch = self._connect()
        with self._write_lock:
            self._migrate(self._watch)

    # ------------------------------------------------------------------ port (async)

    async def coverage(self) -> Sequence[Coverage]:
        # Asked on every session creation: when nothing was written since the last read
        # (a PRAGMA of a few µs), answer on the loop; a thread hop costs ~100 µs.
        cached = self._coverage
        if cached is not None and self._data_version() == cached[0]:
            return cached[1]
        return await asyncio.to_thread(self.coverage_sync)

    async def read(
        self, symbols: Sequence[str], timeframe: Timeframe, first: int, last: int
    ) -> dict[str, BarSeries]:
        return await asyncio.to_thread(self.read_sync, symbols, timeframe, first, last)

    async def write(self, series: BarSeries, source: DataSource, *, replace: bool) -> Coverage:
        return await asyncio.to_thread(self.write_sync, series, source, replace=replace)

    async def remove(self, symbol: str, timeframe: Timeframe | None = None) -> int:
        return await asyncio.to_thread(self.remove_sync, symbol, timeframe)

    # ------------------------------------------------------------------ the work (sync)

    def _data_version(self) -> int:
        """Changes whenever another connection (in any process) commits."""
        with self._coverage_lock:
            version: int = self._watch.execute("PRAGMA data_version").fetchone()[0]
            return version

    def coverage_sync(self) -> tuple[Coverage, ...]:
        """Cached; refreshed when any connection, in any process, has committed since."""
        with self._coverage_lock:
            version = self._watch.execute("PRAGMA data_version").fetchone()[0]
            if self._coverage is not None and self._coverage[0] == version:
                return self._coverage[1]
            rows = self._watch.execute(
                "SELECT symbol, timeframe, first, last, bars, source FROM series "
                "ORDER BY symbol, timeframe"
            ).fetchall()
            coverage = tuple(
                Coverage(
                    symbol,
                    Timeframe(timeframe),
                    from_epoch(first),
                    from_epoch(last),
                    bars,
                    DataSource(source),
                )
                for symbol, timeframe, first, last, bars, source in rows
            )
            self._coverage = (version, coverage)
            return coverage

    def read_sync(
        self, symbols: Sequence[str], timeframe: Timeframe, first: int, last: int
    ) -> dict[str, BarSeries]:
        span = _bucket_span(timeframe)
        result: dict[str, BarSeries] = {}
        with self._reading() as db:
            for symbol in symbols:
                row = db.execute(
                    "SELECT id, price_scale, volume_scale FROM series "
                    "WHERE symbol = ? AND timeframe = ?",
                    (symbol, timeframe.value),
                ).fetchone()
                if row is None or last < first:
                    result[symbol] = BarSeries.empty(symbol, timeframe)
                    continue
                series_id, price_scale, volume_scale = row
                chunks = db.execute(
                    "SELECT bars, data FROM chunks WHERE series_id = ? "
                    "AND bucket BETWEEN ? AND ? ORDER BY bucket",
                    (series_id, first // span, last // span),
                ).fetchall()
                series = _decode(symbol, timeframe, price_scale, volume_scale, chunks)
                result[symbol] = series.between(first, last)
        return result

    def write_sync(self, series: BarSeries, source: DataSource, *, replace: bool) -> Coverage:
        symbol, timeframe = series.symbol, series.timeframe
        with self._writing() as db:
            row = db.execute(
                "SELECT id, source, price_scale, volume_scale, first, last, bars FROM series "
                "WHERE symbol = ? AND timeframe = ?",
                (symbol, timeframe.value),
            ).fetchone()
            stored = None
            if row is not None:
                stored = Coverage(
                    symbol,
                    timeframe,
                    from_epoch(row[4]),
                    from_epoch(row[5]),
                    row[6],
                    DataSource(row[1]),
                )
            if plan_write(stored, series, source, replace=replace):
                db.execute("DELETE FROM series WHERE id = ?", (row[0],))
                row = None
            base = BarSeries.empty(symbol, timeframe)
            if row is None:
                series_id = db.execute(
                    "INSERT INTO series (symbol, timeframe, source, price_scale, volume_scale,"
                    " first, last, bars) VALUES (?, ?, ?, 0, 0, 0, 0, 0)",
                    (symbol, timeframe.value, source.value),
                ).lastrowid
            else:
                series_id = row[0]
                base = _decode(
                    symbol,
                    timeframe,
                    row[2],
                    row[3],
                    db.execute(
                        "SELECT bars, data FROM chunks WHERE series_id = ? ORDER BY bucket",
                        (series_id,),
                    ).fetchall(),
                )
            merged = merge_series(base, series)
            db.execute(
                "UPDATE series SET source = ?, price_scale = ?, volume_scale = ?, first = ?, "
                "last = ?, bars = ? WHERE id = ?",
                (
                    source.value,
                    merged.price_scale,
                    merged.volume_scale,
                    merged.times[0],
                    merged.times[-1],
                    len(merged),
                    series_id,
                ),
            )
            db.execute("DELETE FROM chunks WHERE series_id = ?", (series_id,))
            db.executemany(
                "INSERT INTO chunks (series_id, bucket, bars, data) VALUES (?, ?, ?, ?)",
                (
                    (series_id, bucket, len(chunk), _encode(chunk))
                    for bucket, chunk in _chunks(merged)
                ),
            )
        return coverage_of(merged, source)

    def remove_sync(self, symbol: str, timeframe: Timeframe | None = None) -> int:
        where, args = "symbol = ?", [symbol]
        if timeframe is not None:
            where, args = where + " AND timeframe = ?", [symbol, timeframe.value]
        with self._writing() as db:
            removed = db.execute(
                f"SELECT COALESCE(SUM(bars), 0) FROM series WHERE {where}", args
            ).fetchone()[0]
            db.execute(f"DELETE FROM series WHERE {where}", args)
        return int(removed)

    def close(self) -> None:
        self._watch.close()
        connection = getattr(self._local, "db", None)
        if connection is not None:
            connection.close()
            self._local.db = None

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> sqlite3.Connection:
        db = open_wal(self.path, BarStoreError, "bar store")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _thread_db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every SELECT inside sees the same snapshot."""
        db = self._thread_db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        db = self._thread_db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        prepare_schema(
            db,
            self.path,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            error=BarStoreError,
            what="bar store",
        )


def _chunks(series: BarSeries) -> Iterator[tuple[int, BarSeries]]:
    span = _bucket_span(series.timeframe)
    times = series.times
    start = 0
    while start < len(times):
        bucket = times[start] // span
        stop = bisect_left(times, (bucket + 1) * span, start)
        yield bucket, series.slice(start, stop)
        start = stop


def _decode(
    symbol: str,
    timeframe: Timeframe,
    price_scale: int,
    volume_scale: int,
    chunks: Sequence[tuple[int, bytes]],
) -> BarSeries:
    columns = [array("q") for _ in range(_COLUMNS)]
    for bars, data in chunks:
        view = memoryview(data)
        width = bars * 8
        for i, column in enumerate(columns):
            column.frombytes(view[i * width : (i + 1) * width])
    if not _LITTLE_ENDIAN:
        for column in columns:
            column.byteswap()
    times, opens, highs, lows, closes, volumes = columns
    return BarSeries(
        symbol, timeframe, price_scale, volume_scale, times, opens, highs, lows, closes, volumes
    )
