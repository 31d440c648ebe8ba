"""`SessionRepository` on Redis: the session hashes, the per-owner and expiry indexes, and
the Lua scripts that read and write them atomically (the active-session limit included)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from adapters.storage.codec import TENTH, decode_session, encode_session, from_micros, micros
from adapters.storage.redis.database import RedisDatabase, Script
from domain.session import SessionState, SimulationSession


def _int(value: bytes | str | int) -> int:
    return int(value)


# A session is a hash: owner, active (0/1), exp and upd (the idle clock, in µs since the
# epoch) and data (the whole session as last saved). The idle clock is kept apart from data
# so that a touch (any process) rewrites only it, never the state (the holder's).
# Per owner, a sorted set of session ids by creation; one sorted set of ids by expiry.

_ADD = Script(
    """
local max = tonumber(ARGV[7])
if max <= 0 then return 0 end
if redis.call('ZCARD', KEYS[2]) >= max then
  -- Counting walks the owner's sessions; skipped while even every stored one is fewer.
  local now = tonumber(ARGV[8])
  local active = 0
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local f = redis.call('HMGET', ARGV[9] .. sid, 'active', 'exp')
    if f[1] == '1' and tonumber(f[2]) > now then
      active = active + 1
      if active >= max then return 0 end
    end
  end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'active', ARGV[3], 'exp', ARGV[4],
           'upd', ARGV[5], 'data', ARGV[6])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
"""
)

_SAVE = Script(
    """
local old = redis.call('HMGET', KEYS[1], 'exp', 'upd')
if not old[1] then return 0 end
local exp, upd = ARGV[3], ARGV[4]
if tonumber(old[1]) > tonumber(exp) then exp, upd = old[1], old[2] end
if ARGV[5] == '' then
  if exp == old[1] then return 1 end
  redis.call('HSET', KEYS[1], 'exp', exp, 'upd', upd)
else
  redis.call('HSET', KEYS[1], 'active', ARGV[2], 'exp', exp, 'upd', upd, 'data', ARGV[5])
end
redis.call('ZADD', KEYS[2], exp, ARGV[1])
return 1
"""
)
"""A save (with data) or a touch (without); the idle clock never goes back: two processes
touching one session at once both leave the later expiry."""

_REMOVE = Script(
    """
local f = redis.call('HMGET', KEYS[1], 'owner', 'data', 'exp', 'upd')
if not f[2] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[2] .. f[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {f[2], f[3], f[4]}
"""
)

_LIST = Script(
    """
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. sid, 'data', 'exp', 'upd')
  if f[1] then
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
    out[#out + 1] = f[3]
  end
end
return out
"""
)

_REMOVE_EXPIRED = Script(
    """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {#ids}
for _, sid in ipairs(ids) do
  local key = ARGV[3] .. sid
  local f = redis.call('HMGET', key, 'owner', 'data', 'exp', 'upd')
  redis.call('ZREM', KEYS[1], sid)
  if f[2] then
    redis.call('DEL', key)
    redis.call('ZREM', ARGV[4] .. f[1], sid)
    out[#out + 1] = f[2]
    out[#out + 1] = f[3]
    out[#out + 1] = f[4]
  end
end
return out
"""
)

_COUNT_BY_STATE = Script(
    """
local counts = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local data = redis.call('HGET', ARGV[1] .. sid, 'data')
  if data then
    local state = nil
    -- The session's own state follows its metadata in the record: the last match is it.
    for found in string.gmatch(data, '"state":"(%a+)","updated_at":') do state = found end
    if state then counts[state] = (counts[state] or 0) + 1 end
  end
end
local out = {}
for state, n in pairs(counts) do
  out[#out + 1] = state
  out[#out + 1] = n
end
return out
"""
)
"""Stored sessions per state, read in Redis (one pass, no record leaves the server)."""

EXPIRY_BATCH = 500
TOUCH_COALESCE_US = 1_000_000
"""As with SQLite: a touch that moves a session's expiry by less than this (and less than a
tenth of its idle timeout) since this process last wrote it is not written."""
_TOUCHES_REMEMBERED = 100_000


def _session_of(data: Any, expires_us: Any, updated_us: Any) -> SimulationSession:
    """A session from its stored fields (bytes: the client does not decode replies)."""
    session = decode_session(data)
    session.expires_at = from_micros(_int(expires_us))
    session.updated_at = from_micros(_int(updated_us))
    return session


def _sessions_of(flat: Sequence[bytes]) -> list[SimulationSession]:
    return [_session_of(*flat[i : i + 3]) for i in range(0, len(flat), 3)]


class RedisSessionRepository:
    """`SessionRepository` on Redis: get by key, a per-owner index for the list and the
    limit, an expiry index for the sweep (which any process may run: each session is
    removed, and returned, once)."""

    def __init__(self, database: RedisDatabase) -> None:
        self.database = database
        self._touched: dict[str, int] = {}
        """Per session: the expiry this process last wrote."""

    def _key(self, session_id: str) -> str:
        return self.database.key("session", session_id)

    async def add_if_under_limit(
        self, session: SimulationSession, max_active: int, now: datetime
    ) -> bool:
        db = self.database
        expires = micros(session.expires_at)
        stored = await db.run(
            _ADD,
            [
                self._key(session.id),
                db.key("owner", session.owner),
                db.key("expiry"),
                db.key("sequence"),
            ],
            [
                session.id,
                session.owner,
                int(session.is_active),
                expires,
                micros(session.updated_at),
                encode_session(session),
                max_active,
                micros(now),
                db.key("session", ""),
            ],
        )
        if stored:
            self._remember(session.id, expires)
        return bool(stored)

    async def get(self, session_id: str) -> SimulationSession | None:
        found = await self.database.client().hmget(self._key(session_id), ["data", "exp", "upd"])
        if found[0] is None:
            return None
        return _session_of(*found)

    async def save(self, session: SimulationSession) -> bool:
        return await self._write(session, encode_session(session))

    async def touch(self, session: SimulationSession) -> bool:
        expires = micros(session.expires_at)
        last = self._touched.get(session.id)
        if last is not None and 0 <= expires - last < min(
            TOUCH_COALESCE_US, session.idle_timeout // TENTH
        ):
            return True  # a moment after the last one written
        return await self._write(session, b"")

    async def _write(self, session: SimulationSession, data: bytes) -> bool:
        expires = micros(session.expires_at)
        stored = await self.database.run(
            _SAVE,
            [self._key(session.id), self.database.key("expiry")],
            [session.id, int(session.is_active), expires, micros(session.updated_at), data],
        )
        if stored:
            self._remember(session.id, expires)
        else:
            self._touched.pop(session.id, None)
        return bool(stored)

    def _remember(self, session_id: str, expires: int) -> None:
        if len(self._touched) >= _TOUCHES_REMEMBERED:
            self._touched.clear()  # sessions removed by other processes leave entries here
        self._touched[session_id] = expires

    async def remove(self, session_id: str) -> SimulationSession | None:
        db = self.database
        found = await db.run(
            _REMOVE, [self._key(session_id), db.key("expiry")], [session_id, db.key("owner", "")]
        )
        self._touched.pop(session_id, None)
        return _session_of(*found) if found else None

    async def list_by_owner(self, owner: str) -> Sequence[SimulationSession]:
        db = self.database
        flat = await db.run(_LIST, [db.key("owner", owner)], [db.key("session", "")])
        return _sessions_of(flat)

    async def remove_expired(self, now: datetime) -> Sequence[SimulationSession]:
        db = self.database
        removed: list[SimulationSession] = []
        while True:
            found = await db.run(
                _REMOVE_EXPIRED,
                [db.key("expiry")],
                [micros(now), EXPIRY_BATCH, db.key("session", ""), db.key("owner", "")],
            )
            batch = _sessions_of(found[1:])
            removed += batch
            for session in batch:
                self._touched.pop(session.id, None)
            if _int(found[0]) < EXPIRY_BATCH:
                return removed

    async def count(self) -> int:
        return int(await self.database.client().zcard(self.database.key("expiry")))

    async def count_by_state(self) -> Mapping[SessionState, int]:
        db = self.database
        flat = await db.run(_COUNT_BY_STATE, [db.key("expiry")], [db.key("session", "")])
        known = {s.value for s in SessionState}
        counts: dict[SessionState, int] = {}
        for i in range(0, len(flat), 2):
            state = flat[i].decode() if isinstance(flat[i], bytes) else str(flat[i])
            if state in known:
                counts[SessionState(state)] = _int(flat[i + 1])
        return counts
