"""Simulations shared by every process: the checkpoint, journal and holder of each
(`RedisSimulationCheckpoints`, a write by any process but the holder refused) and the
results once completed (`RedisResultsStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from adapters.storage.codec import (
    decode_checkpoint,
    decode_completed,
    decode_input,
    encode_record,
)
from adapters.storage.redis.database import RedisDatabase, Script
from application.ports import SimulationHoldLost
from application.simulation import Checkpoint, CompletedRun, SimulationInput, StoredRun

_CLAIM = Script(
    """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 1
"""
)

_RELEASE = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
)

_APPEND = Script(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
)

_SAVE_CHECKPOINT = Script(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local stored = redis.call('HGET', KEYS[2], 'position')
if not stored or tonumber(stored) <= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'position', ARGV[2], 'data', ARGV[3], 'progress', ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
return 1
"""
)

_COMPLETE = Script(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SADD', KEYS[5], ARGV[3])
return 1
"""
)

_LOAD = Script(
    """
local done = redis.call('GET', KEYS[1])
if done then return {1, done} end
local found = redis.call('HMGET', KEYS[2], 'position', 'data')
if not found[2] then return {0} end
return {2, found[2], redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. found[1], '+inf')}
"""
)
"""One snapshot: the results, or the checkpoint and the journal after it."""


_progress_encoder = msgspec.json.Encoder()
_progress_decoder = msgspec.json.Decoder(tuple[int, int, datetime | None])


def _encode_progress(checkpoint: Checkpoint) -> bytes:
    state = checkpoint.state
    return _progress_encoder.encode(
        (state.sequence, checkpoint.total_ticks, state.broker.last_sim_time)
    )


class RedisSimulationCheckpoints:
    """`SimulationCheckpoints` shared by every process: per session a checkpoint hash, a
    journal (a sorted set by position), the results once completed, and the id of the
    process holding it; the writes of any other process are refused."""

    shared = True

    def __init__(self, database: RedisDatabase) -> None:
        self.database = database

    def _keys(self, session_id: str) -> tuple[str, str, str, str]:
        """holder, checkpoint, journal, result"""
        key = self.database.key
        return (
            key("holder", session_id),
            key("checkpoint", session_id),
            key("journal", session_id),
            key("result", session_id),
        )

    async def claim(self, session_id: str) -> bool:
        db = self.database
        claimed = await db.run(
            _CLAIM,
            [db.key("holder", session_id), db.presence_key],
            [db.process_id, db.key("process", ""), db.lease_ms],
        )
        return bool(claimed)

    async def release(self, session_id: str) -> None:
        db = self.database
        await db.run(_RELEASE, [db.key("holder", session_id)], [db.process_id])

    async def append(self, session_id: str, entry: SimulationInput) -> None:
        holder, _, journal, _ = self._keys(session_id)
        db = self.database
        if not await db.run(
            _APPEND, [holder, journal], [db.process_id, entry.position, encode_record(entry)]
        ):
            raise SimulationHoldLost(session_id)

    async def save(self, checkpoint: Checkpoint) -> None:
        sid = checkpoint.session_id
        holder, stored, journal, _ = self._keys(sid)
        db = self.database
        data = encode_record(checkpoint)
        if not await db.run(
            _SAVE_CHECKPOINT,
            [holder, stored, journal, db.key("simulations")],
            [db.process_id, checkpoint.position, data, sid, _encode_progress(checkpoint)],
        ):
            raise SimulationHoldLost(sid)

    async def complete(self, run: CompletedRun) -> None:
        sid = run.session_id
        holder, stored, journal, result = self._keys(sid)
        db = self.database
        if not await db.run(
            _COMPLETE,
            [holder, stored, journal, result, db.key("simulations")],
            [db.process_id, encode_record(run), sid],
        ):
            raise SimulationHoldLost(sid)

    async def list(self) -> Sequence[str]:
        members = await self.database.client().smembers(self.database.key("simulations"))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def load(self, session_id: str) -> StoredRun | CompletedRun | None:
        _, stored, journal, result = self._keys(session_id)
        found = await self.database.run(_LOAD, [result, stored, journal], [])
        kind = int(found[0])
        if kind == 1:
            return decode_completed(found[1])
        if kind == 0:
            return None
        entries = tuple(decode_input(data) for data in found[2])
        return StoredRun(decode_checkpoint(found[1]), entries)

    async def progress(self, session_id: str) -> tuple[int, int, datetime | None] | None:
        _, stored, _, _ = self._keys(session_id)
        found = await self.database.client().hget(stored, "progress")
        if found is None:
            return None
        sequence, total, sim_time = _progress_decoder.decode(found)
        return sequence, total, sim_time

    async def delete(self, session_id: str) -> None:
        db = self.database
        async with db.client().pipeline(transaction=True) as pipe:
            pipe.delete(*self._keys(session_id))
            pipe.srem(db.key("simulations"), session_id)
            await pipe.execute()


class RedisResultsStore:
    """`ResultsStore` on Redis, in the key `RedisSimulationCheckpoints.complete` writes:
    every process reads any completed simulation's results from there when asked, and
    none holds them."""

    def __init__(self, database: RedisDatabase) -> None:
        self.database = database

    def _key(self, session_id: str) -> str:
        return self.database.key("result", session_id)

    async def put(self, run: CompletedRun) -> None:
        db = self.database
        async with db.client().pipeline(transaction=True) as pipe:
            pipe.set(self._key(run.session_id), encode_record(run))
            pipe.sadd(db.key("simulations"), run.session_id)
            await pipe.execute()

    async def get(self, session_id: str) -> CompletedRun | None:
        data = await self.database.client().get(self._key(session_id))
        if data is None:
            return None
        return decode_completed(data.encode() if isinstance(data, str) else data)

    async def delete(self, session_id: str) -> None:
        await self.database.client().delete(self._key(session_id))
