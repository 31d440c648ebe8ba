"""The Redis database every process shares: its clients (one per event loop), the key
prefix, this process's id and presence lease, and `Script`, a Lua script run atomically."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

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
