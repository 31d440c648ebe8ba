"""API keys kept hashed in the Redis database the server processes share
(`SIMUTRADOR_STORAGE=redis`): a key created or revoked by `simutrador keys …` on any machine
is seen by every process on its next check, so a revoked key's open connections close
within `SIMUTRADOR_AUTH_RECHECK_SECONDS` wherever they are."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from adapters.storage.redis import RedisDatabase, Script
from application.ports import ApiKeyRecord
from domain.limits import Plan


class _StoredKey(msgspec.Struct, kw_only=True):
    key_id: str
    key_hash: str
    user_id: str
    plan: str
    created_at: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_StoredKey)

# The records never change once added; a revocation is the key's entry in a separate hash,
# set once (HSETNX), so that revoking twice keeps the first instant.

_FIND = Script(
    """
local key_id = redis.call('HGET', KEYS[1], ARGV[1])
if not key_id then return false end
return {redis.call('HGET', KEYS[2], key_id), redis.call('HGET', KEYS[3], key_id)}
"""
)

_REVOKE = Script(
    """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return {record, redis.call('HGET', KEYS[2], ARGV[1])}
"""
)


def _record(data: bytes, revoked: bytes | None) -> ApiKeyRecord:
    return _from_stored(_decoder.decode(data), revoked)


def _from_stored(stored: _StoredKey, revoked: bytes | None) -> ApiKeyRecord:
    return ApiKeyRecord(
        stored.key_id,
        stored.key_hash,
        stored.user_id,
        Plan(stored.plan),
        stored.created_at,
        datetime.fromisoformat(revoked.decode()) if revoked is not None else None,
    )


class RedisApiKeyStore:
    """`ApiKeyStore` on Redis: records by id, ids by hash (found in O(1) at every token
    request), revocation instants by id."""

    def __init__(self, database: RedisDatabase) -> None:
        self.database = database
        key = database.key
        self._records, self._hashes, self._revoked = (
            key("api-keys"),
            key("api-key-hashes"),
            key("api-keys-revoked"),
        )

    async def add(self, record: ApiKeyRecord) -> None:
        data = _encoder.encode(
            _StoredKey(
                key_id=record.key_id,
                key_hash=record.key_hash,
                user_id=record.user_id,
                plan=record.plan.value,
                created_at=record.created_at,
            )
        )
        async with self.database.client().pipeline(transaction=True) as pipe:
            pipe.hset(self._records, record.key_id, data)
            pipe.hset(self._hashes, record.key_hash, record.key_id)
            if record.revoked_at is not None:
                pipe.hset(self._revoked, record.key_id, record.revoked_at.isoformat())
            await pipe.execute()

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        found = await self.database.run(
            _FIND, [self._hashes, self._records, self._revoked], [key_hash]
        )
        if not found or found[0] is None:
            return None
        return _record(found[0], found[1])

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        async with self.database.client().pipeline(transaction=False) as pipe:
            pipe.hget(self._records, key_id)
            pipe.hget(self._revoked, key_id)
            data, revoked = await pipe.execute()
        return _record(data, revoked) if data is not None else None

    async def list(self) -> Sequence[ApiKeyRecord]:
        async with self.database.client().pipeline(transaction=True) as pipe:
            pipe.hvals(self._records)
            pipe.hgetall(self._revoked)
            records, revoked = await pipe.execute()
        stored = [_decoder.decode(data) for data in records]
        listed = [_from_stored(k, revoked.get(k.key_id.encode())) for k in stored]
        return sorted(listed, key=lambda r: r.created_at)

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        found = await self.database.run(
            _REVOKE, [self._records, self._revoked], [key_id, at.isoformat()]
        )
        if not found:
            return None
        return _record(found[0], found[1])
