"""The session core measured in-process with the real adapters, wired by the container:
validation (cold, cached, against a dict-lookup baseline), create/get latency, memory per
stored session, and whether get/list latency depends on how many sessions are stored.

Everything runs against a temporary SIMUTRADOR_HOME (never the user's ~/.simutrador) whose
bar store is seeded once, before anything is timed, with synthetic daily bars for exactly
the symbols the suite uses (`seed_home`, shared with `benchmarks.server`)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path

from dependency_injector import providers

from application.market_data import MarketDataValidator, coverage_index
from application.ports import BarStore, SymbolCatalog
from application.principal import Principal
from application.sessions import SessionService
from benchmarks.report import Figure
from domain.bars import Coverage, Timeframe, epoch_seconds
from domain.dates import DateRange
from domain.exchanges import hours_of, trading_day
from domain.limits import Plan
from domain.session import SessionParams
from entrypoints.container import Container
from entrypoints.settings import Settings

YEAR = DateRange.parse("2023-01-03", "2023-12-29")
VALIDATED_SYMBOLS = 50
SESSION_SYMBOLS = ("AAPL", "MSFT", "EUR/USD", "BTC-USD", "GC")
STORED = 10_000
SESSIONS_PER_USER = 10
CACHED_TARGET_US = 100.0
MEMORY_TARGET_BYTES = 2048
FLAT_RATIO_TARGET = 2.0

rng = random.Random(20240115)  # fixed seed: the same users and ids are sampled each run


# --- measuring --------------------------------------------------------------------------------


def median_us(samples_ns: Sequence[float]) -> float:
    return statistics.median(samples_ns) / 1_000


def p99_us(samples_ns: Sequence[float]) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 1_000


def per_call_ns(action: Callable[[], object], calls: int, batches: int) -> list[float]:
    """Per-call time of `action`, once per batch of `calls` calls (timer overhead amortised)."""
    samples = []
    for _ in range(batches):
        started = time.perf_counter_ns()
        for _ in range(calls):
            action()
        samples.append((time.perf_counter_ns() - started) / calls)
    return samples


async def per_call_async_ns(
    action: Callable[[], Awaitable[object]], calls: int, batches: int
) -> list[float]:
    """`per_call_ns` for a coroutine function, awaited on the running loop."""
    samples = []
    for _ in range(batches):
        started = time.perf_counter_ns()
        for _ in range(calls):
            await action()
        samples.append((time.perf_counter_ns() - started) / calls)
    return samples


# --- wiring -----------------------------------------------------------------------------------


def container(home: Path, catalog: SymbolCatalog | None = None) -> Container:
    """A container with laptop defaults (the process environment is not read) but its home,
    bar store included, in `home`, sharing an already-loaded catalog when given one."""
    built = Container()
    settings = dataclasses.replace(Settings.from_env({}), home=home)
    built.settings.override(providers.Object(settings))
    if catalog is not None:
        built.catalog.override(providers.Object(catalog))
    return built


def service_of(built: Container) -> SessionService:
    service: SessionService = built.session_service()
    return service


def roomy_principal(user_id: str) -> Principal:
    """Enterprise, with limits raised so that every benchmark session fits."""
    limits = dataclasses.replace(
        Settings.from_env({}).limits(Plan.ENTERPRISE),
        max_active_sessions=STORED,
        sessions_per_hour=STORED,
    )
    return Principal(user_id, Plan.ENTERPRISE, limits)


def wire_params() -> SessionParams:
    """Parameters built the way a request builds them: parsed from text, new objects each time."""
    return SessionParams(
        symbols=SESSION_SYMBOLS,
        date_range=DateRange.parse("2023-01-03", "2023-12-29"),
        initial_capital=Decimal("100000.00"),
        metadata={},
    )


def listed_by(catalog: SymbolCatalog, span: DateRange, count: int) -> list[str]:
    """The first `count` catalog symbols listed (when the catalog knows) by the span's first
    day: the ones whose synthetic sample, which starts at the listing date, covers it."""
    fits = [
        i.symbol.ticker
        for i in catalog.instruments()
        if i.listed is None or i.listed <= span.first_day
    ]
    if len(fits) < count:
        raise RuntimeError(f"the catalog has only {len(fits)} symbols listed by {span.first_day}")
    return fits[:count]


def covering(
    catalog: SymbolCatalog,
    coverage: Sequence[Coverage],
    span: DateRange,
    count: int,
    timeframe: Timeframe = Timeframe.D1,
) -> list[str]:
    """The first `count` catalog symbols whose stored bars cover the whole span (so a
    session over it is accepted with no coverage warning)."""
    stored = coverage_index(coverage)
    fits: list[str] = []
    for instrument in catalog.instruments():
        found = stored.get((instrument.symbol.ticker, timeframe))
        if found is None:
            continue
        hours = hours_of(instrument)
        if (
            trading_day(epoch_seconds(found.first), hours) <= span.first_day
            and trading_day(epoch_seconds(found.last), hours) >= span.last_day
        ):
            fits.append(instrument.symbol.ticker)
    if len(fits) < count:
        raise RuntimeError(f"the bar store has only {len(fits)} symbols covering {span}")
    return fits[:count]


@dataclasses.dataclass(frozen=True)
class SeededHome:
    """A benchmark home whose bar store holds synthetic bars for the suite's symbols."""

    home: Path
    symbols: list[str]
    """`count` symbols whose stored bars cover the span asked for."""
    seeded: int
    bars: int
    seconds: float

    @property
    def note(self) -> str:
        return (
            f"bars:   {self.seeded} symbols seeded with synthetic daily bars ({self.bars:,} "
            f"bars) into the temporary home {self.home} in {self.seconds:.1f} s, before "
            "anything is timed"
        )


def seed_home(home: Path, span: DateRange, count: int, also: Sequence[str]) -> SeededHome:
    """Seed the bar store of `home` with synthetic daily bars (from 2000 or the listing date
    to the end of last year) for `count` catalog symbols listed by `span` and for `also`,
    and return the `count` symbols whose stored coverage spans `span`. Done once per suite
    run, outside every timed section."""
    if home.resolve() == Settings.from_env({}).home.resolve():
        raise RuntimeError("benchmarks never write to the default SimuTrador home")
    built = container(home)
    catalog: SymbolCatalog = built.catalog()
    wanted = list(dict.fromkeys([*listed_by(catalog, span, count), *also]))

    async def seed() -> tuple[Sequence[Coverage], int, float]:
        service = built.market_data_service()
        started = time.perf_counter()
        written = await service.seed_sample(symbols=wanted)
        seconds = time.perf_counter() - started
        return await service.coverage(), sum(c.bars for c in written), seconds

    try:
        coverage, bars, seconds = asyncio.run(seed())
    finally:
        built.bar_store().close()
    return SeededHome(home, covering(catalog, coverage, span, count), len(wanted), bars, seconds)


# --- (a) validation ---------------------------------------------------------------------------


async def validation(built: Container, symbols: Sequence[str]) -> list[Figure]:
    catalog: SymbolCatalog = built.catalog()
    clock = built.clock()
    store: BarStore = built.bar_store()

    cold = []
    for _ in range(300):
        fresh = MarketDataValidator(catalog, store, clock)
        started = time.perf_counter_ns()
        check = await fresh.validate(symbols, YEAR)
        cold.append(time.perf_counter_ns() - started)
    if not check.result.valid:
        raise RuntimeError(f"benchmark request is invalid: {check.result.errors}")

    validator: MarketDataValidator = built.market_data_validator()
    await validator.validate(symbols, YEAR)
    cached = await per_call_async_ns(
        lambda: validator.validate(symbols, YEAR), calls=500, batches=21
    )
    coverage_reads = await per_call_async_ns(store.coverage, calls=500, batches=21)

    table = {i.key: i for i in catalog.instruments()}
    keys = [i.key for i in catalog.instruments() if i.symbol.ticker in set(symbols)]

    def dict_lookups() -> None:
        for key in keys:
            table[key]

    baseline = per_call_ns(dict_lookups, calls=500, batches=21)

    cold_us, cached_us, baseline_us = median_us(cold), median_us(cached), median_us(baseline)
    return [
        Figure(
            "validate 50 symbols, cold",
            cold_us,
            "µs",
            note="fresh validator, shared store, median of 300: reads coverage and the "
            f"year's bars of all {len(symbols)} from the store",
        ),
        Figure(
            "validate 50 symbols, cached",
            cached_us,
            "µs",
            f"< {CACHED_TARGET_US:.0f} µs",
            cached_us < CACHED_TARGET_US,
            "median per call of 21 batches x 500; includes the store coverage read below",
        ),
        Figure("cold / cached", cold_us / cached_us, "x"),
        Figure("baseline: 50 dict lookups", baseline_us, "µs", note="same run, same batching"),
        Figure(
            "cached / baseline",
            cached_us / baseline_us,
            "x",
            note="cost of keying 50 symbols + reading coverage",
        ),
        Figure(
            "store coverage read",
            median_us(coverage_reads),
            "µs",
            note="await store.coverage() (cached; data_version check in a worker thread), "
            "same batching: part of every validation",
        ),
    ]


# --- (b) create and get -----------------------------------------------------------------------


async def create_and_get(home: Path, catalog: SymbolCatalog) -> list[Figure]:
    service = service_of(container(home, catalog))
    users = [roomy_principal(f"user_{n:04d}") for n in range(STORED // 100)]
    await service.create(users[0], wire_params())  # warm the validation cache
    created_ns: list[float] = []
    stored: list[tuple[Principal, str]] = []
    for n in range(STORED - 1):
        user = users[n % len(users)]
        params = wire_params()
        started = time.perf_counter_ns()
        session = await service.create(user, params)
        created_ns.append(time.perf_counter_ns() - started)
        stored.append((user, session.id))

    got_ns: list[float] = []
    for user, session_id in rng.choices(stored, k=STORED):
        started = time.perf_counter_ns()
        await service.get(user, session_id)
        got_ns.append(time.perf_counter_ns() - started)

    note = f"{STORED:,} sessions, {len(users)} users; cached validation incl. coverage read"
    return [
        Figure("create session, median", median_us(created_ns), "µs", note=note),
        Figure("create session, p99", p99_us(created_ns), "µs", note=note),
        Figure("get session, median", median_us(got_ns), "µs", note=f"{STORED:,} random gets"),
        Figure("get session, p99", p99_us(got_ns), "µs", note=f"{STORED:,} random gets"),
    ]


# --- (c) memory -------------------------------------------------------------------------------


async def memory(home: Path, catalog: SymbolCatalog) -> list[Figure]:
    service = service_of(container(home, catalog))
    users = [roomy_principal(f"user_{n:04d}") for n in range(STORED // 100)]
    for user in users:  # warm caches and per-user structures before counting
        await service.create(user, wire_params())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(STORED):
            await service.create(users[n % len(users)], wire_params())
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_session = (after - before) / STORED
    return [
        Figure(
            "memory per stored session",
            per_session,
            "bytes",
            f"< {MEMORY_TARGET_BYTES:,} B",
            per_session < MEMORY_TARGET_BYTES,
            f"tracemalloc over {STORED:,} creates, {len(SESSION_SYMBOLS)} symbols, no metadata",
        )
    ]


# --- (d) does latency depend on how much is stored? -------------------------------------------


@dataclasses.dataclass
class Populated:
    service: SessionService
    owned: dict[str, tuple[Principal, list[str]]]  # user id -> (principal, their session ids)


async def populate(home: Path, catalog: SymbolCatalog, stored: int) -> Populated:
    service = service_of(container(home, catalog))
    owned: dict[str, tuple[Principal, list[str]]] = {}
    for n in range(stored // SESSIONS_PER_USER):
        user = roomy_principal(f"user_{n:05d}")
        ids = [(await service.create(user, wire_params())).id for _ in range(SESSIONS_PER_USER)]
        owned[user.user_id] = (user, ids)
    return Populated(service, owned)


async def medians(
    service: SessionService, working_set: list[tuple[Principal, list[str]]], ops: int
) -> tuple[float, float]:
    """Median ns of a get of a random session, and of a list by a random user, of the set."""
    pairs = [(user, sid) for user, ids in working_set for sid in ids]
    got: list[float] = []
    for user, session_id in rng.choices(pairs, k=ops):
        started = time.perf_counter_ns()
        await service.get(user, session_id)
        got.append(time.perf_counter_ns() - started)
    listed: list[float] = []
    for user, _ in rng.choices(working_set, k=ops):
        started = time.perf_counter_ns()
        await service.list(user)
        listed.append(time.perf_counter_ns() - started)
    return statistics.median(got), statistics.median(listed)


async def scaling(home: Path, catalog: SymbolCatalog) -> list[Figure]:
    """The same amount of work (gets and lists over 100 sessions of 10 users) against a store
    holding 100 sessions and one holding 10,000. Both stores live side by side and are measured
    in alternating rounds, so drift on a busy machine hits both alike. Touching the same
    number of sessions in both keeps CPU-cache effects out of the ratio with a target: what
    remains is the cost of the stored volume itself (dict and index sizes). A second,
    informative ratio spreads the same work over all 10,000 sessions, cache misses included."""
    small_n, large_n = 10 * SESSIONS_PER_USER, STORED
    small = await populate(home, catalog, small_n)
    large = await populate(home, catalog, large_n)
    working = len(small.owned)
    small_set = list(small.owned.values())
    large_set = rng.sample(list(large.owned.values()), working)
    everything = list(large.owned.values())
    gc.collect()
    rounds: dict[str, list[float]] = {k: [] for k in ("gs", "ls", "gl", "ll", "ga", "la")}
    for _ in range(7):
        for get_key, list_key, store, working_set in (
            ("gs", "ls", small, small_set),
            ("gl", "ll", large, large_set),
            ("ga", "la", large, everything),
        ):
            got, listed = await medians(store.service, working_set, 1_000)
            rounds[get_key].append(got)
            rounds[list_key].append(listed)
    m = {k: statistics.median(v) / 1_000 for k, v in rounds.items()}

    figures = []
    for what, at_small, at_large, at_random in (
        ("get", m["gs"], m["gl"], m["ga"]),
        (f"list ({SESSIONS_PER_USER} own)", m["ls"], m["ll"], m["la"]),
    ):
        ratio = at_large / at_small
        figures += [
            Figure(f"{what} with {small_n:,} stored", at_small, "µs", note="median of 7 rounds"),
            Figure(f"{what} with {large_n:,} stored", at_large, "µs", note="median of 7 rounds"),
            Figure(
                f"{what}: {large_n:,} / {small_n:,} stored",
                ratio,
                "x",
                f"~1 (< {FLAT_RATIO_TARGET:.0f})",
                ratio < FLAT_RATIO_TARGET,
                f"same {working * SESSIONS_PER_USER} sessions touched in both",
            ),
            Figure(
                f"{what}, random over all {large_n:,} / {small_n:,}",
                at_random / at_small,
                "x",
                note=f"{at_random:.2f} µs; 100x more memory touched (CPU-cache misses)",
            ),
        ]
    return figures


# --- entry point ------------------------------------------------------------------------------


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="simutrador-bench-core-") as directory:
        home = Path(directory)
        seeded = seed_home(home, YEAR, VALIDATED_SYMBOLS, SESSION_SYMBOLS)
        print(seeded.note)
        built = container(home)
        catalog: SymbolCatalog = built.catalog()

        async def in_loop() -> list[Figure]:
            figures = await validation(built, seeded.symbols)
            figures += await create_and_get(home, catalog)
            figures += await memory(home, catalog)
            figures += await scaling(home, catalog)
            return figures

        return asyncio.run(in_loop())
