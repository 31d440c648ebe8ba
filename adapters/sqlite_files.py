"""What every SQLite file of SimuTrador shares: opening it in WAL mode, and refusing or
migrating a file by the schema version kept in its `meta` table (never misreading it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

Migration = Callable[[sqlite3.Connection], None]


def open_wal(path: Path, error: type[Exception], what: str) -> sqlite3.Connection:
    """An autocommit connection usable from any thread, in WAL mode; `error` when `path`
    is not an SQLite file."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
    try:
        db.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise error(f"{path}: not a SimuTrador {what} ({exc})") from None
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def prepare_schema(
    db: sqlite3.Connection,
    path: Path,
    *,
    schema: str,
    version: int,
    error: type[Exception],
    what: str,
    migrations: Mapping[int, Migration] | None = None,
    elsewhere: str = "point SIMUTRADOR_HOME elsewhere",
) -> None:
    """In one transaction: refuse another program's database or a newer schema, migrate an
    older one step by step (refused when a step is missing), create what is missing and
    stamp the version. `schema` holds `;`-separated `CREATE … IF NOT EXISTS` statements."""
    db.execute("BEGIN IMMEDIATE")
    try:
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if tables and "meta" not in tables:
            raise error(
                f"{path} is another program's SQLite database (tables: "
                f"{', '.join(sorted(tables))}), not a SimuTrador {what}"
            )
        found = version
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = int(row[0]) if row is not None else version
        if found > version:
            raise error(
                f"{path} was written by a newer SimuTrador ({what} schema {found}; this "
                f"version reads schema {version}). Upgrade SimuTrador, or {elsewhere}"
            )
        steps = migrations or {}
        while found < version:
            step = steps.get(found)
            if step is None:
                raise error(
                    f"{path} holds {what} schema {found}, which this version (schema "
                    f"{version}) cannot migrate; move the file away to start afresh"
                )
            step(db)
            found += 1
        for statement in schema.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(version),),
        )
    except sqlite3.DatabaseError as exc:
        db.execute("ROLLBACK")
        raise error(f"{path}: not a usable {what} ({exc})") from None
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
