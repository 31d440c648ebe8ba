"""API keys kept hashed in a JSON file under SIMUTRADOR_HOME; writes are atomic.

The server and the admin CLI are separate processes: the store notices when the file
changed on disk (a revocation by `simutrador keys revoke`) and reloads it."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import msgspec

from adapters.files import write_private_file
from application.ports import ApiKeyRecord
from domain.limits import Plan


class _StoredKey(msgspec.Struct, kw_only=True):
    key_id: str
    key_hash: str
    user_id: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None = None


class _StoreFile(msgspec.Struct):
    version: int = 1
    keys: list[_StoredKey] = msgspec.field(default_factory=list)


T = TypeVar("T")


class StoreCorrupted(Exception):
    """The key file exists but cannot be read; never silently replaced."""


def load_or_create_secret(home: Path, name: str = "jwt_secret") -> str:
    """The JWT signing secret kept in SIMUTRADOR_HOME (0600), made on first start."""
    path = home / name
    try:
        secret = path.read_text().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    write_private_file(path, secrets.token_urlsafe(48).encode())
    return path.read_text().strip()


class FileApiKeyStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._by_id: dict[str, ApiKeyRecord] = {}
        self._by_hash: dict[str, ApiKeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        with self._lock:
            self._reload_locked()

    @property
    def path(self) -> Path:
        return self._path

    async def add(self, record: ApiKeyRecord) -> None:
        await asyncio.to_thread(self._mutate, lambda: self._put(record))

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        self._refresh()
        return self._by_hash.get(key_hash)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        self._refresh()
        return self._by_id.get(key_id)

    async def list(self) -> Sequence[ApiKeyRecord]:
        self._refresh()
        return sorted(self._by_id.values(), key=lambda r: r.created_at)

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        def change() -> ApiKeyRecord | None:
            record = self._by_id.get(key_id)
            if record is None or record.is_revoked:
                return record
            revoked = ApiKeyRecord(
                record.key_id, record.key_hash, record.user_id, record.plan, record.created_at, at
            )
            self._put(revoked)
            return revoked

        return await asyncio.to_thread(self._mutate, change)

    def _put(self, record: ApiKeyRecord) -> None:
        self._by_id[record.key_id] = record
        self._by_hash[record.key_hash] = record

    def _mutate(self, change: Callable[[], T]) -> T:
        with self._lock:
            self._reload_locked()
            result = change()
            document = _StoreFile(
                keys=[
                    _StoredKey(
                        key_id=r.key_id,
                        key_hash=r.key_hash,
                        user_id=r.user_id,
                        plan=r.plan.value,
                        created_at=r.created_at,
                        revoked_at=r.revoked_at,
                    )
                    for r in self._by_id.values()
                ]
            )
            write_private_file(self._path, msgspec.json.format(msgspec.json.encode(document)))
            self._stamp = self._file_stamp()
            return result

    def _refresh(self) -> None:
        """Reload if another process changed the file (one stat: microseconds)."""
        if self._file_stamp() == self._stamp:
            return
        with self._lock:
            if self._file_stamp() != self._stamp:
                self._reload_locked()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _reload_locked(self) -> None:
        self._stamp = self._file_stamp()
        if self._stamp is None:
            self._by_id, self._by_hash = {}, {}
            return
        try:
            document = msgspec.json.decode(self._path.read_bytes(), type=_StoreFile)
            records = [
                ApiKeyRecord(
                    k.key_id, k.key_hash, k.user_id, Plan(k.plan), k.created_at, k.revoked_at
                )
                for k in document.keys
            ]
        except (msgspec.DecodeError, ValueError) as exc:
            raise StoreCorrupted(f"{self._path}: unreadable API key store ({exc})") from None
        self._by_id = {r.key_id: r for r in records}
        self._by_hash = {r.key_hash: r for r in records}
