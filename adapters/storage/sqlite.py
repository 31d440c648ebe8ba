"""Durable, embedded storage: one SQLite file (WAL) holding the sessions, the rate-limit
windows, and the checkpoints, journals and results of simulations, so that a restart —
`kill -9` included — loses nothing a client has seen.

Why a journal as well as checkpoints. A checkpoint is the whole `SimulationState`; taken
every N ticks it is some ticks behind the live simulation, and a client that saw tick n
cannot be sent tick k < n again (its strategy would run twice on the same bars). Taking
one per tick would cost an encode of every report so far on every tick. Instead every
request that changes a simulation (`tick_ack`, `order_batch`, `cancel_order`) is appended
to a per-session journal — one small row, committed before the reply leaves the server —
and whole checkpoints come at start, every `SIMUTRADOR_CHECKPOINT_EVERY_TICKS` ticks and on
each pause (which also drops the journal rows they include). The engine is deterministic,
so the checkpoint plus its journal, applied again on the same bars, is exactly the state
after the last request the server answered: the tick a client last saw is the tick in
flight after recovery, and `resume_session` resends it if the client never got it. The
price is one SQLite commit (tens of µs) per tick on the event loop.

Writes are `BEGIN IMMEDIATE` transactions (the active-session limit is counted and the
session inserted in one, with a per-owner count of stored sessions so that the active ones
are only counted near the limit), serialised inside the process by a lock; each thread
has its own connection. Small operations run on the calling thread: a thread hop costs more than
they do, and no `await` between a repository read and write lets another task in between.
With `synchronous = NORMAL` a commit survives the process being killed; a power cut may
lose the last ones.

Stored records are msgspec JSON encodings of the domain and application dataclasses (JSON,
not msgpack: session metadata may hold integers of any size). The schema version in the
`meta` table covers both the tables and those encodings: a file from another version is
migrated, or refused with a message saying so, never misread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.sqlite_files import open_wal, prepare_schema
from adapters.storage.codec import (
    TENTH,
    StorageError,
    decode_checkpoint,
    decode_completed,
    decode_input,
    decode_session,
    encode_record,
    encode_session,
    micros,
)
from application.ports import Clock
from application.simulation import Checkpoint, CompletedRun, SimulationInput, StoredRun
from domain.session import SessionState, SimulationSession

__all__ = [
    "SCHEMA_VERSION",
    "SqliteDatabase",
    "SqliteRateLimiter",
    "SqliteResultsStore",
    "SqliteSessionRepository",
    "SqliteSimulationCheckpoints",
    "StorageError",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    active INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, seq);
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, stored INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_by_key ON rate_events (key, at);
CREATE TABLE IF NOT EXISTS checkpoints (
    session_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    session_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (session_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (session_id TEXT PRIMARY KEY, data BLOB NOT NULL);
"""

_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}
"""schema version n → the statements that bring a file from n to n + 1 (none yet)."""


class SqliteDatabase:
    """The sessions file: its connections (one per thread), the write lock, the schema."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._deferred: list[tuple[str, tuple[Any, ...]]] = []
        with self._write_lock:
            self._migrate(self.connection())

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: each statement outside `writing` is its
        own transaction)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            self._connections.append(db)
        return db

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before its first read (`BEGIN IMMEDIATE`); the
        statements deferred so far run first, inside it."""
        db = self.connection()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            deferred, self._deferred = self._deferred, []
            try:
                for statement, parameters in deferred:
                    db.execute(statement, parameters)
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                self._deferred[:0] = deferred
                raise
            db.execute("COMMIT")

    def write_one(self, statement: str, parameters: tuple[Any, ...]) -> None:
        """One statement as a transaction of its own: the connection's autocommit, half the
        cost of `BEGIN IMMEDIATE` … `COMMIT` around it (a journal entry per tick); in a
        `writing` transaction when statements wait to be run first."""
        with self._write_lock:
            if not self._deferred:
                self.connection().execute(statement, parameters)
                return
        with self.writing() as db:
            db.execute(statement, parameters)

    def defer(self, statement: str, parameters: tuple[Any, ...]) -> None:
        """Run `statement` at the start of the next write transaction, to share its commit
        (`close` runs what is left)."""
        with self._write_lock:
            self._deferred.append((statement, parameters))

    def flush(self) -> None:
        if self._deferred:
            with self.writing():
                pass

    def close(self) -> None:
        self.flush()
        for db in self._connections:
            db.close()
        self._connections.clear()
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        return open_wal(self.path, StorageError, "sessions file")

    def _migrate(self, db: sqlite3.Connection) -> None:
        prepare_schema(
            db,
            self.path,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            error=StorageError,
            what="sessions file",
            migrations=_MIGRATIONS,
            elsewhere="point SIMUTRADOR_HOME elsewhere (or set SIMUTRADOR_STORAGE=memory)",
        )


def _database(where: SqliteDatabase | Path | str) -> SqliteDatabase:
    return where if isinstance(where, SqliteDatabase) else SqliteDatabase(where)


# ---------------------------------------------------------------------- sessions


TOUCH_COALESCE_US = 1_000_000
"""A save that only moves a session's idle clock by less than this (and less than a tenth of
its idle timeout) is not written: a busy session is touched on every request, and its
stored expiry lagging that little behind is harmless."""


class SqliteSessionRepository:
    """`SessionRepository` over the sessions file: get by a unique index, a per-owner index
    for the list (and a per-owner count for the limit); the expiry sweep scans the table in
    a worker thread, so that a touch updates no index."""

    def __init__(self, database: SqliteDatabase | Path | str) -> None:
        self.database = _database(database)
        self._written: dict[str, tuple[SessionState, str | None, int]] = {}
        """Per session stored by this process: its state, error and expiry as last written."""

    def _remember(self, session: SimulationSession) -> None:
        self._written[session.id] = (
            session.state,
            session.error_reason,
            micros(session.expires_at),
        )

    async def add_if_under_limit(
        self, session: SimulationSession, max_active: int, now: datetime
    ) -> bool:
        if max_active <= 0:
            return False
        data = encode_session(session)
        owner = session.owner
        with self.database.writing() as db:
            row = db.execute("SELECT stored FROM owners WHERE owner = ?", (owner,)).fetchone()
            # Counting walks the owner's sessions; skip it when even counting every stored
            # one (finished and expired included) stays under the limit.
            if row is not None and row[0] >= max_active:
                (active,) = db.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM sessions WHERE owner = ? AND "
                    "active = 1 AND expires_us > ? LIMIT ?)",
                    (owner, micros(now), max_active),
                ).fetchone()
                if active >= max_active:
                    return False
            db.execute(
                "INSERT INTO sessions (id, owner, active, expires_us, data) VALUES (?, ?, ?, ?, ?)",
                (session.id, owner, session.is_active, micros(session.expires_at), data),
            )
            db.execute(
                "INSERT INTO owners (owner, stored) VALUES (?, 1) "
                "ON CONFLICT (owner) DO UPDATE SET stored = stored + 1",
                (owner,),
            )
        self._remember(session)
        return True

    async def get(self, session_id: str) -> SimulationSession | None:
        row = (
            self.database.connection()
            .execute("SELECT data FROM sessions WHERE id = ?", (session_id,))
            .fetchone()
        )
        return decode_session(row[0]) if row is not None else None

    async def save(self, session: SimulationSession) -> bool:
        expires = micros(session.expires_at)
        written = self._written.get(session.id)
        if (
            written is not None
            and written[0] is session.state
            and written[1] == session.error_reason
            and 0 <= expires - written[2] < min(TOUCH_COALESCE_US, session.idle_timeout // TENTH)
        ):
            return True  # only a touch, a moment after the last one written
        data = encode_session(session)
        with self.database.writing() as db:
            cursor = db.execute(
                "UPDATE sessions SET active = ?, expires_us = ?, data = ? WHERE id = ?",
                (session.is_active, expires, data, session.id),
            )
            stored = cursor.rowcount > 0
        if stored:
            self._remember(session)
        else:
            self._written.pop(session.id, None)
        return stored

    async def touch(self, session: SimulationSession) -> bool:
        return await self.save(session)  # a touch alone is coalesced by `save`

    async def remove(self, session_id: str) -> SimulationSession | None:
        with self.database.writing() as db:
            row = db.execute(
                "DELETE FROM sessions WHERE id = ? RETURNING owner, data", (session_id,)
            ).fetchone()
            if row is not None:
                _forget_owned(db, [row[0]])
        self._written.pop(session_id, None)
        return decode_session(row[1]) if row is not None else None

    async def list_by_owner(self, owner: str) -> Sequence[SimulationSession]:
        rows = (
            self.database.connection()
            .execute("SELECT data FROM sessions WHERE owner = ? ORDER BY seq", (owner,))
            .fetchall()
        )
        return [decode_session(data) for (data,) in rows]

    async def remove_expired(self, now: datetime) -> Sequence[SimulationSession]:
        # A scan of the table (no expiry index to update on every touch), in a worker thread.
        return await asyncio.to_thread(self._remove_expired, now)

    def _remove_expired(self, now: datetime) -> list[SimulationSession]:
        with self.database.writing() as db:
            rows = db.execute(
                "DELETE FROM sessions WHERE expires_us <= ? RETURNING owner, data", (micros(now),)
            ).fetchall()
            _forget_owned(db, [owner for owner, _ in rows])
        removed = [decode_session(data) for _, data in rows]
        for session in removed:
            self._written.pop(session.id, None)
        return removed

    async def count(self) -> int:
        (count,) = self.database.connection().execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)

    async def count_by_state(self) -> Mapping[SessionState, int]:
        # The state is read out of each record's JSON by SQLite itself: no column (and no
        # schema change) for a figure read once per scrape.
        rows = (
            self.database.connection()
            .execute(
                "SELECT json_extract(CAST(data AS TEXT), '$.state'), count(*) FROM sessions "
                "GROUP BY 1"
            )
            .fetchall()
        )
        return {SessionState(state): int(n) for state, n in rows if state in _STATES}


_STATES = frozenset(s.value for s in SessionState)


def _forget_owned(db: sqlite3.Connection, owners: Sequence[str]) -> None:
    """Keep `owners.stored` equal to each owner's stored sessions after deletes."""
    counts: dict[str, int] = {}
    for owner in owners:
        counts[owner] = counts.get(owner, 0) + 1
    db.executemany(
        "UPDATE owners SET stored = stored - ? WHERE owner = ?",
        [(n, owner) for owner, n in counts.items()],
    )
    db.executemany(
        "DELETE FROM owners WHERE owner = ? AND stored <= 0", [(owner,) for owner in counts]
    )


# ---------------------------------------------------------------------- rate limits


class SqliteRateLimiter:
    """`RateLimiter` whose windows outlive the process. The port's `now` is monotonic
    time, which starts afresh after a reboot; each event is stored at the wall-clock
    instant it stands for (`clock` relates the two), in whole microseconds, so a restart
    resets no window.

    The windows are decided in memory (a key's events are read from the file the first time
    it is used: one server process per home) and each slot taken is written with the next
    write transaction, which is the insert of the session it was taken for."""

    def __init__(self, database: SqliteDatabase | Path | str, clock: Clock) -> None:
        self.database = _database(database)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[int]] = {}

    def _wall_us(self, now: float) -> int:
        clock = self._clock
        offset = micros(clock.now()) - round(clock.monotonic() * 1e6)
        return round(now * 1e6) + offset

    def _window(self, key: str) -> deque[int]:
        window = self._windows.get(key)
        if window is None:
            rows = (
                self.database.connection()
                .execute("SELECT at FROM rate_events WHERE key = ? ORDER BY at", (key,))
                .fetchall()
            )
            window = self._windows[key] = deque(at for (at,) in rows)
        return window

    async def try_acquire(self, key: str, limit: int, window_seconds: float, now: float) -> float:
        at = self._wall_us(now)
        horizon = at - round(window_seconds * 1e6)
        with self._lock:
            window = self._window(key)
            expired = False
            while window and window[0] <= horizon:
                window.popleft()
                expired = True
            if expired:
                self.database.defer(
                    "DELETE FROM rate_events WHERE key = ? AND at <= ?", (key, horizon)
                )
            if len(window) >= limit:
                return (window[0] - horizon) / 1e6 if window else window_seconds
            window.append(at)
            # Written with the next transaction: the session insert this slot is taken for,
            # so that both are committed together, or neither.
            self.database.defer("INSERT INTO rate_events (key, at) VALUES (?, ?)", (key, at))
            return 0.0

    async def release(self, key: str, now: float) -> None:
        with self._lock:
            window = self._window(key)
            if not window:
                return
            at = window.pop()
            self.database.defer(
                "DELETE FROM rate_events WHERE rowid = (SELECT rowid FROM rate_events "
                "WHERE key = ? AND at = ? ORDER BY rowid DESC LIMIT 1)",
                (key, at),
            )


# ---------------------------------------------------------------------- simulations


class SqliteSimulationCheckpoints:
    """`SimulationCheckpoints` in the sessions file (see the module docstring). One server
    process per file: every claim succeeds."""

    shared = False

    def __init__(self, database: SqliteDatabase | Path | str) -> None:
        self.database = _database(database)

    async def claim(self, session_id: str) -> bool:
        return True

    async def release(self, session_id: str) -> None:
        return None

    async def append(self, session_id: str, entry: SimulationInput) -> None:
        # On the calling thread: one small commit costs less than a hop to a worker thread.
        self.append_sync(session_id, entry)

    def append_sync(self, session_id: str, entry: SimulationInput) -> None:
        self.database.write_one(
            "INSERT OR REPLACE INTO journal (session_id, position, data) VALUES (?, ?, ?)",
            (session_id, entry.position, encode_record(entry)),
        )

    async def save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self.save_sync, checkpoint)

    def save_sync(self, checkpoint: Checkpoint) -> None:
        data = encode_record(checkpoint)  # outside the lock: the encode is the long part
        sid = checkpoint.session_id
        with self.database.writing() as db:
            db.execute(
                "INSERT INTO checkpoints (session_id, position, sequence, data) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                "position = excluded.position, sequence = excluded.sequence, "
                "data = excluded.data WHERE excluded.position >= checkpoints.position",
                (sid, checkpoint.position, checkpoint.state.sequence, data),
            )
            db.execute(
                "DELETE FROM journal WHERE session_id = ? AND position <= ?",
                (sid, checkpoint.position),
            )

    async def complete(self, run: CompletedRun) -> None:
        await asyncio.to_thread(self._complete, run)

    def _complete(self, run: CompletedRun) -> None:
        data = encode_record(run)
        sid = run.session_id
        with self.database.writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (session_id, data) VALUES (?, ?)", (sid, data)
            )
            db.execute("DELETE FROM checkpoints WHERE session_id = ?", (sid,))
            db.execute("DELETE FROM journal WHERE session_id = ?", (sid,))

    async def list(self) -> Sequence[str]:
        rows = (
            self.database.connection()
            .execute(
                "SELECT session_id FROM checkpoints UNION SELECT session_id FROM results "
                "ORDER BY session_id"
            )
            .fetchall()
        )
        return [sid for (sid,) in rows]

    async def load(self, session_id: str) -> StoredRun | CompletedRun | None:
        return await asyncio.to_thread(self.load_sync, session_id)

    def load_sync(self, session_id: str) -> StoredRun | CompletedRun | None:
        db = self.database.connection()
        db.execute("BEGIN")  # one snapshot: a checkpoint and the journal after it
        try:
            done = db.execute(
                "SELECT data FROM results WHERE session_id = ?", (session_id,)
            ).fetchone()
            if done is not None:
                return decode_completed(done[0])
            row = db.execute(
                "SELECT position, data FROM checkpoints WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            entries = db.execute(
                "SELECT data FROM journal WHERE session_id = ? AND position > ? ORDER BY position",
                (session_id, row[0]),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        journal = tuple(decode_input(data) for (data,) in entries)
        return StoredRun(decode_checkpoint(row[1]), journal)

    async def progress(self, session_id: str) -> tuple[int, int, datetime | None] | None:
        return None  # one process per file: it holds every simulation, with its progress

    async def delete(self, session_id: str) -> None:
        self.delete_sync(session_id)

    def delete_sync(self, session_id: str) -> None:
        with self.database.writing() as db:
            for table in ("checkpoints", "journal", "results"):
                db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))


class SqliteResultsStore:
    """`ResultsStore` in the sessions file's `results` table, where
    `SqliteSimulationCheckpoints.complete` writes them too: a completed simulation's
    results are read from the file when asked, never held by the process."""

    def __init__(self, database: SqliteDatabase | Path | str) -> None:
        self.database = _database(database)

    async def put(self, run: CompletedRun) -> None:
        await asyncio.to_thread(self._put, run)

    def _put(self, run: CompletedRun) -> None:
        data = encode_record(run)
        with self.database.writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (session_id, data) VALUES (?, ?)",
                (run.session_id, data),
            )

    async def get(self, session_id: str) -> CompletedRun | None:
        return await asyncio.to_thread(self.get_sync, session_id)

    def get_sync(self, session_id: str) -> CompletedRun | None:
        row = (
            self.database.connection()
            .execute("SELECT data FROM results WHERE session_id = ?", (session_id,))
            .fetchone()
        )
        return decode_completed(row[0]) if row is not None else None

    async def delete(self, session_id: str) -> None:
        with self.database.writing() as db:
            db.execute("DELETE FROM results WHERE session_id = ?", (session_id,))
