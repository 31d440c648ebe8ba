"""The per-user limits every process shares: the rate windows (`RedisRateLimiter`) and the
open connections counted per process (`RedisConnectionRegistry`)."""

from __future__ import annotations

import threading

from adapters.storage.codec import micros
from adapters.storage.redis.database import RedisDatabase, Script
from application.ports import Clock

# ---------------------------------------------------------------------- rate limits

_TRY_ACQUIRE = Script(
    """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  if n == 0 then return -1 end
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) - tonumber(ARGV[2])
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. redis.call('INCR', KEYS[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"""
)
"""0 when granted; else µs until the oldest slot leaves the window (-1: a zero limit)."""


class RedisRateLimiter:
    """`RateLimiter` whose windows every process shares: per key, a sorted set of the
    instants (wall clock, µs) slots were taken at, which expires with its window."""

    def __init__(self, database: RedisDatabase, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def _wall_us(self, now: float) -> int:
        clock = self._clock
        offset = micros(clock.now()) - round(clock.monotonic() * 1e6)
        return round(now * 1e6) + offset

    async def try_acquire(self, key: str, limit: int, window_seconds: float, now: float) -> float:
        at = self._wall_us(now)
        window_us = round(window_seconds * 1e6)
        db = self.database
        wait = await db.run(
            _TRY_ACQUIRE,
            [db.key("rate", key), db.key("rate-slots")],
            [at, at - window_us, limit, max(1, -(-window_us // 1000))],
        )
        wait = int(wait)
        return window_seconds if wait < 0 else wait / 1e6

    async def release(self, key: str, now: float) -> None:
        await self.database.client().zpopmax(self.database.key("rate", key))


# ---------------------------------------------------------------------- connections

_OPEN = Script(
    """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local pid = fields[i]
  if pid ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. pid) == 0 then
    redis.call('HDEL', KEYS[1], pid)  -- a dead process's connections are gone with it
  else
    total = total + tonumber(fields[i + 1])
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""
)

_CLOSE = Script(
    """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""
)

_COUNT = Script(
    """
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if fields[i] == ARGV[1] or redis.call('EXISTS', ARGV[2] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  end
end
return total
"""
)


class RedisConnectionRegistry:
    """`ConnectionRegistry` across processes: per user, a hash of process id → its open
    connections; those of a process whose presence lapsed (killed) no longer count."""

    def __init__(self, database: RedisDatabase) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._local = 0

    async def try_open(self, user_id: str, max_connections: int) -> bool:
        db = self.database
        opened = await db.run(
            _OPEN,
            [db.key("connections", user_id), db.presence_key],
            [db.process_id, max_connections, db.key("process", ""), db.lease_ms],
        )
        if opened:
            with self._lock:
                self._local += 1
        return bool(opened)

    async def close(self, user_id: str) -> None:
        db = self.database
        await db.run(_CLOSE, [db.key("connections", user_id)], [db.process_id])
        with self._lock:
            self._local = max(0, self._local - 1)

    async def count(self, user_id: str | None = None) -> int:
        if user_id is None:
            return self._local
        db = self.database
        return int(
            await db.run(
                _COUNT, [db.key("connections", user_id)], [db.process_id, db.key("process", "")]
            )
        )
