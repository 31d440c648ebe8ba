"""Storage shared by several server processes: one Redis database holds the sessions, the
hourly creation windows, the open connections of each user, and the checkpoints, journals
and results of simulations, so that `simutrador serve` processes behind a load balancer act
as one server (`SIMUTRADOR_STORAGE=redis`, `SIMUTRADOR_REDIS_URL`).

Every operation that reads and then writes is one Lua script, which Redis runs atomically:
the active-session limit is counted and the session inserted in one, as with SQLite, so
creates raced over any number of processes never exceed it. The journal and checkpoint
design is SQLite's (see `adapters/storage/sqlite.py`); an append is one round trip.

Processes. Each has an id and a presence key that lives `SIMUTRADOR_REDIS_LEASE_SECONDS`
unless renewed (`keep_alive`, every third of it, and on every connection it admits). A
process whose key lapsed — killed — is taken for dead: its connections stop counting
against their users' limits, and the simulations it held may be claimed by another process,
which builds them again from their checkpoint and journal. A simulation is held by one
process at a time; any other's write to it is refused (`SimulationHoldLost`), so a process
taken for dead too soon cannot overwrite what its successor does.

Clocks. Rate windows are kept at wall-clock instants (each process relates its monotonic
clock to its wall clock, as `SqliteRateLimiter` does): the hosts' clocks must agree (NTP).

Scripts compute the keys of other records (a user's sessions), so this is for one Redis
server (with replicas if wanted), not Redis Cluster. The bars stay in each process's local
SQLite bar store; nothing here is needed to read them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from adapters.storage.codec import (
    TENTH,
    decode_checkpoint,
    decode_completed,
    decode_input,
    decode_session,
    encode_record,
    encode_session,
    from_micros,
    micros,
)
from application.ports import Clock, SimulationHoldLost
from application.simulation import Checkpoint, CompletedRun, SimulationInput, StoredRun
from domain.session import SessionState, SimulationSession

DEFAULT_PREFIX = "simutrador:"
SOCKET_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0


class Script:
    """A Lua script run by its SHA1 (loaded into Redis on first use, and again after a
    restart of Redis forgot it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, client: redis.asyncio.Redis, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


class RedisDatabase:
    """One Redis database: the clients, the key prefix, this process's id and presence.

    redis-py's asyncio connections belong to the event loop that opened them, and a process
    may run several loops (the command line runs one per step, tests one per test, a thread
    its own): each loop gets its own client, closed when its loop shuts down."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_seconds: float = 10.0,
        process_id: str | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self.process_id = process_id or secrets.token_hex(8)
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def presence_key(self) -> str:
        return self.key("process", self.process_id)

    def client(self) -> redis.asyncio.Redis:
        """The client of the running event loop."""
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is not None:
            return found.client
        with self._lock:
            found = self._clients.get(loop)
            if found is None:
                found = self._clients[loop] = _LoopClient(
                    redis.asyncio.Redis.from_url(
                        self.url,
                        socket_timeout=SOCKET_TIMEOUT_SECONDS,
                        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    )
                )
        return found.client

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await script(self.client(), keys, args)

    async def keep_alive(self) -> None:
        """For as long as the server runs: renew this process's presence every third of its
        lease (a failure is retried at the next turn: the lease outlasts two of them)."""
        period = self.lease_ms / 3000
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.announce()
            await asyncio.sleep(period)

    async def announce(self) -> None:
        await self.client().set(self.presence_key, b"1", px=self.lease_ms)

    async def vanish(self) -> None:
        """This process stops: what it held may be taken up at once, not after its lease."""
        await self.client().delete(self.presence_key)

    async def aclose(self) -> None:
        """Close the running loop's client (the server's, at shutdown)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._clients.pop(loop, None)
        if found is not None:
            await found.client.aclose()

    def shared_secret(self, name: str) -> str:
        """A secret every process on this database shares, made by whichever asks first
        (the JWT signing key, when SIMUTRADOR_JWT_SECRET is not set). Synchronous: asked
        once, at start-up."""
        client = redis.Redis.from_url(
            self.url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        try:
            key = self.key("secret", name)
            client.set(key, secrets.token_urlsafe(48).encode(), nx=True)
            value = client.get(key)
        finally:
            client.close()
        assert isinstance(value, bytes)
        return value.decode()


class _LoopClient:
    """A client for the running loop, closed by the loop's own shutdown: an async generator
    started on a loop is closed by `shutdown_asyncgens` (which `asyncio.run` and pytest's
    loops call), so the client's connections close on their loop rather than being left
    to the garbage collector after it is gone."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._closer = self._close_at_shutdown()
        self._started = asyncio.ensure_future(anext(self._closer))

    async def _close_at_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await self.client.aclose()


def _int(value: bytes | str | int) -> int:
    return int(value)


# ---------------------------------------------------------------------- sessions

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


# ---------------------------------------------------------------------- simulations

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
