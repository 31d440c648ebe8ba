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
SQLite bar store; nothing here is needed to read them.

In rooms of its own: `database` (clients, keys, presence, scripts), `sessions`, `limits`
(rate windows and connections) and `simulations` (checkpoints, journals, results). The
public names are here."""

from adapters.storage.redis.database import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_PREFIX,
    SOCKET_TIMEOUT_SECONDS,
    RedisDatabase,
    Script,
)
from adapters.storage.redis.limits import RedisConnectionRegistry, RedisRateLimiter
from adapters.storage.redis.sessions import (
    EXPIRY_BATCH,
    TOUCH_COALESCE_US,
    RedisSessionRepository,
)
from adapters.storage.redis.simulations import RedisResultsStore, RedisSimulationCheckpoints

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_PREFIX",
    "EXPIRY_BATCH",
    "SOCKET_TIMEOUT_SECONDS",
    "TOUCH_COALESCE_US",
    "RedisConnectionRegistry",
    "RedisDatabase",
    "RedisRateLimiter",
    "RedisResultsStore",
    "RedisSessionRepository",
    "RedisSimulationCheckpoints",
    "Script",
]
