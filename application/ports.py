"""What the use cases need from the outside world, as protocols; adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from application.records import Checkpoint, CompletedRun, SimulationInput, StoredRun
from domain.bars import BarSeries, Coverage, DataSource, Timeframe
from domain.limits import Plan
from domain.session import SessionState, SimulationSession
from domain.symbols import Instrument


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and rate limits)."""
        ...


class IdGenerator(Protocol):
    def session_id(self) -> str:
        """`sess_` + an unguessable URL-safe suffix."""
        ...

    def token_id(self) -> str: ...

    def api_key(self) -> tuple[str, str]:
        """A new (key id, secret `sk_…` key) pair."""
        ...


class SessionRepository(Protocol):
    """Where sessions live. Implementations are safe under threads and tasks."""

    async def add_if_under_limit(
        self, session: SimulationSession, max_active: int, now: datetime
    ) -> bool:
        """Store `session` only if its owner has fewer than `max_active` active, unexpired
        sessions; the check and the insert are one atomic step. True when stored."""
        ...

    async def get(self, session_id: str) -> SimulationSession | None: ...

    async def save(self, session: SimulationSession) -> bool:
        """Persist changes to a stored session; False if it is no longer stored."""
        ...

    async def touch(self, session: SimulationSession) -> bool:
        """Persist only the idle clock of `session` (`updated_at`, `expires_at`), never its
        state: a touch from one process cannot undo a state change made by another.
        False if it is no longer stored."""
        ...

    async def remove(self, session_id: str) -> SimulationSession | None: ...

    async def list_by_owner(self, owner: str) -> Sequence[SimulationSession]:
        """The owner's sessions in creation order, without scanning other users'."""
        ...

    async def remove_expired(self, now: datetime) -> Sequence[SimulationSession]:
        """Remove and return every session whose idle timeout has passed at `now`."""
        ...

    async def count(self) -> int: ...

    async def count_by_state(self) -> Mapping[SessionState, int]:
        """How many stored sessions are in each state (states without any may be left
        out): read when metrics are scraped, so it must stay cheap with many sessions."""
        ...


class SimulationHoldLost(Exception):
    """A write for a simulation that another server process has taken over (shared storage:
    this process was taken for dead); its copy here is stale and must be dropped."""


class SimulationCheckpoints(Protocol):
    """Where running simulations and finished results outlive the process: per session, a
    checkpoint (a whole `SimulationState`) plus a journal of the client requests applied
    since, or, once completed, its results. Safe under threads and tasks.

    When `shared`, several server processes use the store at once: a simulation is driven
    by the one process that `claim`ed it, and the writes of any other (`append`, `save`,
    `complete`) raise `SimulationHoldLost`."""

    @property
    def shared(self) -> bool:
        """True when other server processes use this store at the same time."""
        ...

    async def claim(self, session_id: str) -> bool:
        """Hold the simulation of `session_id` in this process: True unless another live
        process holds it. Always True for a store of one process."""
        ...

    async def release(self, session_id: str) -> None:
        """Let go of a simulation this process holds (it is paused; any process may take it)."""
        ...

    async def append(self, session_id: str, entry: SimulationInput) -> None:
        """Journal one applied request, durably (a process kill after the return loses
        nothing). Fast: it runs before every reply that changes a simulation."""
        ...

    async def save(self, checkpoint: Checkpoint) -> None:
        """Keep `checkpoint` as its session's, with the journal entries it already includes
        dropped; ignored when the stored one is newer (taken at a later journal position)."""
        ...

    async def complete(self, run: CompletedRun) -> None:
        """Keep a finished simulation's results; its checkpoint and journal go."""
        ...

    async def list(self) -> Sequence[str]:
        """The ids of the sessions with a checkpoint or with results."""
        ...

    async def load(self, session_id: str) -> StoredRun | CompletedRun | None: ...

    async def progress(self, session_id: str) -> tuple[int, int, datetime | None] | None:
        """(ticks delivered, total ticks, simulated time) as of the session's checkpoint,
        without reading it whole: for a process showing a simulation another one holds
        (None when not `shared`: the process holds every simulation it shows)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Drop everything kept for a session (deleted, expired or failed)."""
        ...


class ResultsStore(Protocol):
    """Where completed simulations' results live, out of the server's memory: the process
    keeps nothing of a completed simulation but a few numbers, and reads its results back
    from here when asked (`get_results`, a resume after completion, the dashboard).

    With durable checkpoints, `SimulationCheckpoints.complete` writes the same record (with
    the checkpoint dropped in the same step); `put` is for storage without checkpoints."""

    async def put(self, run: CompletedRun) -> None: ...

    async def get(self, session_id: str) -> CompletedRun | None:
        """The session's results, or None when none are kept."""
        ...

    async def delete(self, session_id: str) -> None: ...


class SymbolCatalog(Protocol):
    """The server's authoritative list of instruments, loaded at start-up."""

    def lookup(self, key: str) -> Instrument | None:
        """The instrument whose `symbol_key` is `key`."""
        ...

    def instruments(self) -> Sequence[Instrument]: ...

    def markets(self) -> Sequence[str]:
        """Exchange / market names the catalog covers, for error messages."""
        ...

    def add(self, instrument: Instrument) -> None:
        """Register an instrument the catalog lacks (kept apart from the shipped list)."""
        ...


class RateLimiter(Protocol):
    """Sliding-window counters shared by every connection of the process (of every process,
    with shared storage). `now` is the caller's monotonic clock, in seconds."""

    async def try_acquire(self, key: str, limit: int, window_seconds: float, now: float) -> float:
        """Take one slot; 0.0 when granted, otherwise seconds until one frees up."""
        ...

    async def release(self, key: str, now: float) -> None:
        """Give back the most recent slot (the action it guarded did not happen)."""
        ...


class ConnectionRegistry(Protocol):
    """Open connections per user, so that the per-plan connection limit holds across every
    connection of the process (of every process, with shared storage)."""

    async def try_open(self, user_id: str, max_connections: int) -> bool:
        """Count a new connection for `user_id` unless it already has `max_connections`."""
        ...

    async def close(self, user_id: str) -> None:
        """One of the user's connections closed (never below zero)."""
        ...

    async def count(self, user_id: str | None = None) -> int:
        """The user's open connections (in every process sharing the registry); without a
        user, every connection open on this process."""
        ...


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    key_hash: str
    user_id: str
    plan: Plan
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKeyStore(Protocol):
    async def add(self, record: ApiKeyRecord) -> None: ...

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def get(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list(self) -> Sequence[ApiKeyRecord]: ...

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyRecord | None: ...


class TokenCodec(Protocol):
    """Signs and verifies bearer tokens. `decode` raises `InvalidToken` for anything that is
    not a well-formed, correctly signed, unexpired token with every required claim."""

    def encode(self, claims: dict[str, Any]) -> str: ...

    def decode(self, token: str) -> dict[str, Any]: ...


class BarStore(Protocol):
    """The server's authoritative historical bars, one series per (symbol, timeframe).

    Symbols are canonical tickers. Times are bar-close instants in epoch seconds (UTC).
    Readers see each write whole or not at all, even while it runs in another process."""

    async def coverage(self) -> Sequence[Coverage]:
        """What is stored: one entry per (symbol, timeframe). Cheap enough to call per
        request; an adapter may cache it, but must notice writes made by other processes."""
        ...

    async def read(
        self, symbols: Sequence[str], timeframe: Timeframe, first: int, last: int
    ) -> dict[str, BarSeries]:
        """The bars of each symbol with close in [first, last], columnar, all from one
        consistent snapshot; a symbol without bars there maps to an empty series."""
        ...

    async def write(self, series: BarSeries, source: DataSource, *, replace: bool) -> Coverage:
        """Store `series` atomically and return the new coverage.

        Imported data always wins: writing imported bars drops a synthetic series, and
        synthetic bars never overwrite imported ones (`DataConflict`). Without `replace`,
        bars overlapping the span already stored are refused (`DataConflict`); with it, the
        stored bars inside the span of `series` are replaced by its bars."""
        ...

    async def remove(self, symbol: str, timeframe: Timeframe | None = None) -> int:
        """Delete a symbol's series (every timeframe when None); the number of bars removed."""
        ...


class BarGenerator(Protocol):
    """Makes synthetic daily bars for an instrument: deterministic for the same inputs."""

    def generate(self, instrument: Instrument, first: date, last: date) -> BarSeries:
        """Bars on the instrument's trading days from `first` to `last` (inclusive)."""
        ...


class ServiceMetrics(Protocol):
    """What the use cases and the transport report as they work, for whoever operates the
    server (an adapter turns it into Prometheus metrics). Each call is cheap, never raises,
    and carries nothing that identifies a user: codes and counts only."""

    def session_created(self) -> None: ...

    def session_refused(self, code: str) -> None:
        """A `create_session` refused, with the error code it was refused with."""
        ...

    def validation_timed(self, seconds: float) -> None:
        """How long the checks of one `create_session` took (parameters and market data)."""
        ...

    def validation_cache(self, hit: bool) -> None:
        """One market-data validation answered from the cache (`hit`) or computed."""
        ...

    def simulation_started(self) -> None: ...

    def simulation_completed(self) -> None: ...

    def simulation_failed(self) -> None: ...

    def ticks_processed(self, count: int) -> None:
        """Ticks delivered by running simulations (called on the hot path: must be cheap)."""
        ...

    def expiry_swept(self, removed: int) -> None:
        """One sweep of idle sessions ran and removed `removed` of them."""
        ...

    def connection_opened(self) -> None:
        """A WebSocket connection was admitted."""
        ...

    def connection_closed(self, code: int) -> None:
        """A WebSocket connection ended with close code `code` (admitted or refused)."""
        ...


class NoMetrics:
    """`ServiceMetrics` that records nothing: the default of every service, and what the
    server uses with SIMUTRADOR_METRICS=off."""

    def session_created(self) -> None:
        return None

    def session_refused(self, code: str) -> None:
        return None

    def validation_timed(self, seconds: float) -> None:
        return None

    def validation_cache(self, hit: bool) -> None:
        return None

    def simulation_started(self) -> None:
        return None

    def simulation_completed(self) -> None:
        return None

    def simulation_failed(self) -> None:
        return None

    def ticks_processed(self, count: int) -> None:
        return None

    def expiry_swept(self, removed: int) -> None:
        return None

    def connection_opened(self) -> None:
        return None

    def connection_closed(self, code: int) -> None:
        return None


NO_METRICS: ServiceMetrics = NoMetrics()


@dataclass(frozen=True, slots=True)
class ServerGauges:
    """What the server holds right now, read when metrics are scraped."""

    sessions_by_state: Mapping[SessionState, int]
    """Stored sessions per state (with shared storage: those of every process)."""
    running_simulations: int
    """Simulations this process holds (running or paused)."""
    open_connections: int
    """WebSocket connections open on this process."""
