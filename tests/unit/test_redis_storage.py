"""What one Redis shared by several server processes adds to the storage contracts, against a
real redis-server: connection counts and API keys that every process sees (and a killed
process's connections that stop counting), one process holding a simulation at a time, and
simulations that move between processes — paused on one and resumed on another at once, or
taken up from their checkpoint and journal once the process that ran them died — always
ending with the results of an uninterrupted run.

A "process" here is a set of services over its own `RedisDatabase` (its own process id and
clients); a process dies when its presence key goes (`vanish`, what its lease lapsing
does), without anything of it being closed or flushed."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio

from adapters.auth.file_store import FileApiKeyStore
from adapters.auth.jwt_codec import JwtTokenCodec
from adapters.auth.redis_store import RedisApiKeyStore
from adapters.connections import InMemoryConnectionRegistry
from adapters.ids import SecureIdGenerator
from adapters.storage.redis import (
    RedisConnectionRegistry,
    RedisDatabase,
    RedisRateLimiter,
    RedisSessionRepository,
    RedisSimulationCheckpoints,
)
from application.auth import AuthService
from application.ports import ApiKeyStore, ConnectionRegistry, SimulationHoldLost
from application.simulation import InputKind, PauseReason, SimulationInput, SimulationService
from domain.errors import InvalidState, InvalidToken, SessionBusy, SessionLimitExceeded
from domain.limits import PLAN_DEFAULTS, Plan
from domain.session import SessionState
from tests.fakes import (
    FakeClock,
    FakeIds,
    InMemoryBarStore,
    InMemoryCatalog,
    limits_for,
    make_service,
    make_validator,
    principal,
    session_params,
)
from tests.redis_server import RedisServer
from tests.unit.test_durable_simulation import (
    ALICE,
    DRIVER,
    END,
    START,
    drive,
    finish,
    orders_for,
    same_run,
    start,
    uninterrupted,
    wavy_aapl,
)

JWT_SECRET = "redis-storage-tests-secret-0123456789abcdef"


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(6)}:"


def process_database(server: RedisServer, prefix: str, name: str, **kw: float) -> RedisDatabase:
    return RedisDatabase(server.url(0), prefix=prefix, process_id=name, **kw)


# ---------------------------------------------------------------- connections


@pytest.fixture(params=["memory", "redis"])
def registry(request: pytest.FixtureRequest) -> ConnectionRegistry:
    if request.param == "memory":
        return InMemoryConnectionRegistry()
    return RedisConnectionRegistry(request.getfixturevalue("redis_database"))


async def test_connections_count_per_user_up_to_the_limit(registry: ConnectionRegistry) -> None:
    assert await registry.try_open("alice", 2)
    assert await registry.try_open("alice", 2)
    assert not await registry.try_open("alice", 2)
    assert await registry.try_open("bob", 1)
    assert (await registry.count("alice"), await registry.count("bob")) == (2, 1)
    assert await registry.count() == 3
    await registry.close("alice")
    assert await registry.try_open("alice", 2)
    for _ in range(4):  # more closes than opens never go below zero
        await registry.close("bob")
    assert await registry.count("bob") == 0
    assert await registry.try_open("bob", 1)
    assert await registry.count("nobody") == 0


async def test_processes_share_the_connection_limit_and_a_dead_ones_stop_counting(
    redis_server: RedisServer, prefix: str
) -> None:
    a_db, b_db = (process_database(redis_server, prefix, name) for name in ("a", "b"))
    a, b = RedisConnectionRegistry(a_db), RedisConnectionRegistry(b_db)
    assert await a.try_open("alice", 3)
    assert await a.try_open("alice", 3)
    assert await b.try_open("alice", 3)
    assert not await b.try_open("alice", 3)
    assert not await a.try_open("alice", 3)
    assert (await a.count("alice"), await b.count("alice")) == (3, 3)
    assert (await a.count(), await b.count()) == (2, 1)  # without a user: this process's

    await a_db.vanish()  # process a is killed: its lease lapses, its sockets are gone
    assert await b.count("alice") == 1
    assert await b.try_open("alice", 3)
    assert await b.try_open("alice", 3)
    assert not await b.try_open("alice", 3)


async def test_a_live_process_keeps_its_presence_and_a_silent_one_loses_it(
    redis_server: RedisServer, prefix: str
) -> None:
    a_db = process_database(redis_server, prefix, "a", lease_seconds=0.6)
    b_db = process_database(redis_server, prefix, "b")
    a, b = RedisConnectionRegistry(a_db), RedisConnectionRegistry(b_db)
    assert await a.try_open("alice", 1)
    keeping = asyncio.create_task(a_db.keep_alive())
    await asyncio.sleep(1.2)  # twice the lease: kept alive, a's connection still counts
    assert not await b.try_open("alice", 1)
    keeping.cancel()
    await asyncio.sleep(0.8)  # a stops renewing (hung or killed): its lease lapses
    assert await b.try_open("alice", 1)


# ---------------------------------------------------------------- API keys


KeyStoreFactory = Callable[[], ApiKeyStore]


@pytest.fixture(params=["file", "redis"])
def new_key_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer, prefix: str
) -> KeyStoreFactory:
    """Makes a key store as another process would open it, on the same storage."""
    names = itertools.count()
    if request.param == "file":
        return lambda: FileApiKeyStore(tmp_path / "api_keys.json")
    return lambda: RedisApiKeyStore(process_database(redis_server, prefix, f"p{next(names)}"))


def auth_over(store: ApiKeyStore, clock: FakeClock) -> AuthService:
    tokens = JwtTokenCodec(JWT_SECRET)
    return AuthService(store, tokens, clock, SecureIdGenerator(), PLAN_DEFAULTS, 3600)


@pytest.fixture
def real_time() -> FakeClock:
    """pyjwt checks `exp` against the real clock."""
    return FakeClock(datetime.fromtimestamp(int(time.time()), UTC))


async def test_keys_and_revocations_are_seen_by_every_process(
    new_key_store: KeyStoreFactory, real_time: FakeClock
) -> None:
    server = auth_over(new_key_store(), real_time)
    created = await server.create_api_key("alice", Plan.PROFESSIONAL)
    other = auth_over(new_key_store(), real_time)  # another server process
    token = (await other.issue_token(created.secret)).access_token
    alice = await server.authenticate(token)
    assert alice.user_id == "alice"

    admin = auth_over(new_key_store(), real_time)  # `simutrador keys revoke`, elsewhere
    revocation = await admin.revoke_key(created.record.key_id)
    assert revocation is not None
    assert not revocation.already_revoked
    for process in (server, other):
        with pytest.raises(InvalidToken, match="revoked"):
            await process.recheck(alice)  # an open connection closes on its next check
    real_time.advance(1)
    again = await other.revoke_key(created.record.key_id)
    assert again is not None
    assert again.already_revoked
    assert again.record.revoked_at == revocation.record.revoked_at
    assert await admin.revoke_key("key_missing") is None


async def test_keys_are_listed_in_creation_order_and_never_kept_in_clear(
    new_key_store: KeyStoreFactory, real_time: FakeClock, redis_server: RedisServer
) -> None:
    auth = auth_over(new_key_store(), real_time)
    secrets_made = []
    for user, plan in (("a", Plan.FREE), ("b", Plan.ENTERPRISE), ("c", Plan.FREE)):
        secrets_made.append((await auth.create_api_key(user, plan)).secret)
        real_time.advance(1)
    listed = await auth_over(new_key_store(), real_time).list_keys()
    assert [(r.user_id, r.plan) for r in await auth.list_keys()] == [
        ("a", Plan.FREE),
        ("b", Plan.ENTERPRISE),
        ("c", Plan.FREE),
    ]
    assert [r.key_id for r in listed] == [r.key_id for r in await auth.list_keys()]
    dump = await redis_dump(redis_server)
    assert not any(secret.encode() in dump for secret in secrets_made)


async def redis_dump(server: RedisServer) -> bytes:
    """Every key and value of database 0, for looking for what must not be there."""
    client = redis.asyncio.Redis.from_url(server.url(0))
    try:
        out = []
        async for key in client.scan_iter(count=1000):
            raw = await client.type(key)
            kind = raw.decode() if isinstance(raw, bytes) else raw
            value = {
                "string": client.get,
                "hash": client.hgetall,
                "zset": lambda k: client.zrange(k, 0, -1),
                "set": client.smembers,
            }[kind](key)
            out.append(repr(await value).encode())
        return b"".join(out)
    finally:
        await client.aclose()


# ---------------------------------------------------------------- holding a simulation


async def test_one_process_holds_a_simulation_until_it_lets_go_or_dies(
    redis_server: RedisServer, prefix: str
) -> None:
    a = RedisSimulationCheckpoints(process_database(redis_server, prefix, "a"))
    b = RedisSimulationCheckpoints(process_database(redis_server, prefix, "b"))
    entry = SimulationInput(1, InputKind.ACK, 1)
    assert await a.claim("s1")
    assert await a.claim("s1")  # again: still a's
    assert not await b.claim("s1")
    await a.append("s1", entry)
    with pytest.raises(SimulationHoldLost):
        await b.append("s1", entry)

    await a.release("s1")
    assert await b.claim("s1")  # let go of: anyone's
    assert not await a.claim("s1")
    await b.database.vanish()  # b is killed holding it
    assert await a.claim("s1")
    with pytest.raises(SimulationHoldLost):  # b was only taken for dead: its writes bounce
        await b.append("s1", entry)
    await b.release("s1")  # not b's any more: nothing happens
    assert not await RedisSimulationCheckpoints(process_database(redis_server, prefix, "c")).claim(
        "s1"
    )


# ---------------------------------------------------------------- simulations between processes


class Process:
    """The services of one server process on the shared Redis."""

    def __init__(
        self,
        server: RedisServer,
        prefix: str,
        name: str,
        bars: InMemoryBarStore,
        clock: FakeClock,
        ids: FakeIds,
        every: int = 25,
    ) -> None:
        self.database = process_database(server, prefix, name)
        catalog = InMemoryCatalog()
        self.sessions = make_service(
            clock=clock,
            catalog=catalog,
            ids=ids,
            repository=RedisSessionRepository(self.database),
            rate_limiter=RedisRateLimiter(self.database, clock),
            validator=make_validator(catalog, clock, store=bars),
        )
        self.checkpoints = RedisSimulationCheckpoints(self.database)
        self.simulations = SimulationService(
            self.sessions, catalog, bars, clock, self.checkpoints, checkpoint_every_ticks=every
        )

    async def die(self) -> None:
        """Killed: nothing closed, nothing flushed; its lease lapses."""
        await self.database.vanish()


ProcessFactory = Callable[[str], Process]


@pytest.fixture
def bars() -> InMemoryBarStore:
    store = InMemoryBarStore.with_defaults()
    store.put(wavy_aapl())
    return store


@pytest.fixture
def processes(redis_server: RedisServer, prefix: str, bars: InMemoryBarStore) -> ProcessFactory:
    """`processes("a")`: one more server process on the same Redis, bars and clock."""
    clock, ids = FakeClock(), FakeIds()
    return lambda name: Process(redis_server, prefix, name, bars, clock, ids)


@pytest.mark.parametrize("crash_at", [1, 26, 61])
async def test_a_simulation_whose_process_died_is_taken_up_by_another(
    processes: ProcessFactory, tmp_path: Path, bars: InMemoryBarStore, crash_at: int
) -> None:
    a, b = processes("a"), processes("b")
    sid, sequence = await start(a)
    assert await drive(a, sid, sequence, stop_after=crash_at) == crash_at
    with pytest.raises(SessionBusy):  # a is alive and drives it
        await b.simulations.resume(ALICE, sid, DRIVER)
    await a.die()

    assert (await b.sessions.get(ALICE, sid)).state is SessionState.RUNNING
    run = await b.simulations.run_of(ALICE, sid)  # the client asks b about it
    assert run.paused is PauseReason.RESTART
    assert run.simulation.in_flight == crash_at == run.simulation.sequence
    assert (await b.sessions.get(ALICE, sid)).state is SessionState.PAUSED
    assert b.simulations.running_count() == 0  # read, not held: any process may resume it

    simulation = await b.simulations.resume(ALICE, sid, DRIVER)
    assert simulation.in_flight == crash_at
    await drive(b, sid, crash_at)
    same_run(await finish(b, sid), await uninterrupted(tmp_path, bars))


async def test_a_run_whose_process_died_after_its_last_ack_completes_on_another(
    processes: ProcessFactory, tmp_path: Path, bars: InMemoryBarStore
) -> None:
    a, b = processes("a"), processes("b")
    sid, sequence = await start(a)
    await drive(a, sid, sequence)  # the last ack is journaled; the completion never runs
    await a.die()
    # The client reconnects to b and resumes: b finds it finished, and completes it.
    finished = await b.simulations.finished_of(ALICE, sid)
    assert finished is not None
    assert (await b.sessions.get(ALICE, sid)).state is SessionState.COMPLETED
    expected, expected_state = await uninterrupted(tmp_path, bars)
    assert (await b.simulations.results(ALICE, sid)).metrics == expected.metrics
    assert finished.state.reports == expected_state.reports


async def test_a_paused_simulation_is_let_go_and_resumed_on_another_at_once(
    processes: ProcessFactory, tmp_path: Path, bars: InMemoryBarStore
) -> None:
    a, b = processes("a"), processes("b")
    sid, sequence = await start(a)
    await drive(a, sid, sequence, stop_after=37)
    simulation = await a.simulations.simulation(ALICE, sid)
    expected = simulation.state()
    progress = (37, simulation.total_ticks, simulation.sim_time)
    assert await a.simulations.disconnect(DRIVER) == [sid]
    assert a.simulations.running_count() == 0  # let go of: a holds nothing
    for process in (a, b):  # held by none, its progress is still shown, by any process
        session = await process.sessions.get(ALICE, sid)
        assert await process.simulations.progress_of(session) == progress

    # a is alive, b takes it up at once (no lease to wait for).
    resumed = await b.simulations.resume(ALICE, sid, "conn_on_b")
    assert resumed.state() == expected
    await drive_as(b, sid, 37, "conn_on_b")
    got = await finish(b, sid)
    same_run(got, await uninterrupted(tmp_path, bars))
    # Completed on b: the results are read on a as well.
    assert await a.simulations.results(ALICE, sid) == got[0]
    total = got[0].total_ticks
    completed = await a.sessions.get(ALICE, sid)
    assert await a.simulations.progress_of(completed) == (total, total, got[0].last_sim_time)
    finished = await a.simulations.finished_of(ALICE, sid)
    assert finished is not None
    assert finished.state == got[1]


async def drive_as(process: Process, sid: str, sequence: int, driver: str) -> None:
    while True:
        orders, cancels, refused = orders_for(sequence)
        _, _, step = await process.simulations.acknowledge(
            ALICE, sid, driver, sequence, orders, cancels, refused
        )
        if step is None:
            return
        sequence = step.tick.sequence_id


async def test_a_process_taken_for_dead_cannot_overwrite_its_successor(
    processes: ProcessFactory, tmp_path: Path, bars: InMemoryBarStore
) -> None:
    a, b = processes("a"), processes("b")
    sid, sequence = await start(a)
    sequence = await drive(a, sid, sequence, stop_after=10)
    await a.die()  # a hangs past its lease: taken for dead, though it still runs
    await b.simulations.resume(ALICE, sid, DRIVER)

    with pytest.raises(SessionBusy):  # a's next ack: its journal write is refused
        await drive(a, sid, sequence)
    assert a.simulations.running_count() == 0  # its stale copy is dropped
    await drive(b, sid, sequence)
    same_run(await finish(b, sid), await uninterrupted(tmp_path, bars))


async def test_limits_and_reads_hold_across_processes(processes: ProcessFactory) -> None:
    a, b = processes("a"), processes("b")
    one_running = principal(
        Plan.PROFESSIONAL,
        "alice",
        limits=limits_for(Plan.PROFESSIONAL, max_running_simulations=1),
    )
    first = await a.sessions.create(one_running, session_params(("AAPL",), START, END))
    second = await b.sessions.create(one_running, session_params(("AAPL",), START, END))
    await a.simulations.start(one_running, first.id, driver="c1")
    with pytest.raises(SessionLimitExceeded) as refused:
        await b.simulations.start(one_running, second.id, driver="c2")
    assert refused.value.details["limit"] == "running_simulations"
    with pytest.raises(InvalidState):  # already running (on a)
        await b.simulations.start(one_running, first.id, driver="c2")
    with pytest.raises(SessionBusy):  # reading it too: a holds it
        await b.simulations.simulation(one_running, first.id)
    assert await b.simulations.recover() == await a.simulations.recover()  # nothing, shared
    assert b.simulations.running_count() == 0
    assert [s.id for s in await b.sessions.list(one_running)] == [first.id, second.id]


async def test_touches_from_another_process_never_undo_a_state_change(
    processes: ProcessFactory,
) -> None:
    a, b = processes("a"), processes("b")
    session = await a.sessions.create(ALICE, session_params())
    # b reads the session (ready), a changes its state, then b's touch lands.
    seen_by_b = await b.sessions.get(ALICE, session.id)
    await a.sessions.change_state(ALICE, session.id, SessionState.RUNNING)
    repository = RedisSessionRepository(b.database)
    seen_by_b.touch(seen_by_b.updated_at + (seen_by_b.expires_at - seen_by_b.updated_at))
    assert await repository.touch(seen_by_b)
    stored = await a.sessions.get(ALICE, session.id)
    assert stored.state is SessionState.RUNNING
    assert stored.expires_at >= seen_by_b.expires_at
