"""SessionService over the real in-memory adapters: creation and every refusal, per-user limits,
ownership, state changes, idle expiry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.auth.file_store import FileApiKeyStore
from adapters.auth.jwt_codec import JwtTokenCodec
from adapters.bars.synthetic import RandomWalkBarGenerator
from adapters.storage.memory import InMemorySessionRepository
from application.auth import AuthService
from application.bars import MarketDataService
from application.principal import Principal
from application.sessions import SessionService
from domain import errors
from domain.bars import Bar, BarSeries, DataSource, Timeframe
from domain.errors import (
    AccessDenied,
    DomainError,
    InvalidDateRange,
    InvalidState,
    InvalidSymbol,
    SessionLimitExceeded,
    SessionNotFound,
    ValidationFailed,
)
from domain.limits import PLAN_DEFAULTS, Plan, SessionPolicy
from domain.session import EngineSettings, SessionState
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

ALICE = principal(Plan.PROFESSIONAL, "alice")
BOB = principal(Plan.PROFESSIONAL, "bob")
TIMEOUT = SessionPolicy().session_timeout


# --- create -----------------------------------------------------------------------------------


async def test_create_stores_a_ready_session(
    service: SessionService, clock: FakeClock, repository: InMemorySessionRepository
) -> None:
    params = session_params(
        symbols=["aapl", "eur-usd", "btcusd"],
        initial_capital="25000.50",
        metadata={"strategy": "momentum"},
        engine=EngineSettings(Decimal("0.005"), Decimal("2")),
    )
    session = await service.create(ALICE, params)
    assert session.id == "sess_0001"
    assert session.owner == "alice"
    assert session.state is SessionState.READY
    assert [s.ticker for s in session.symbols] == ["AAPL", "EUR/USD", "BTC-USD"]
    assert session.initial_capital == Decimal("25000.50")
    assert session.created_at == session.updated_at == clock.now()
    assert session.expires_at == clock.now() + TIMEOUT
    assert session.metadata == {"strategy": "momentum"}
    assert session.engine.slippage_bps == Decimal("2")
    assert session.timeframe is Timeframe.D1
    assert session.estimated_trading_days == 361  # BTC-USD trades every day of the range
    # Stocks close at 16:00 New York, forex at 17:00, crypto at midnight UTC: no two bars of
    # the three share a tick, so the session steps through 250 + 259 + 361 bars.
    assert session.total_bars == 250 + 259 + 361
    assert session.warnings == (  # spellings other than the canonical one are pointed out
        "eur-usd is written EUR/USD here (its canonical form)",
        "btcusd is written BTC-USD here (its canonical form)",
    )
    assert session.currency == "USD"  # all three are quoted in US dollars
    assert await repository.get(session.id) is session
    assert await service.stored_count() == 1


async def test_create_carries_warnings(service: SessionService) -> None:
    session = await service.create(ALICE, session_params(symbols=["KVUE"]))
    assert session.warnings == (
        "KVUE has no data before 2023-05-04; the session starts 2023-01-03",
    )
    assert session.total_bars == 166  # KVUE's bars from 2023-05-04 to 2023-12-29


async def test_create_on_synthetic_bars_says_so(clock: FakeClock) -> None:
    store = InMemoryBarStore.with_defaults(DataSource.SYNTHETIC)
    service = make_service(clock=clock, validator=make_validator(clock=clock, store=store))
    session = await service.create(ALICE, session_params())
    (warning,) = session.warnings
    assert warning.startswith("AAPL runs on synthetic data")


@pytest.mark.parametrize(
    ("params_kwargs", "error", "details"),
    [
        ({"symbols": []}, errors.MissingSymbols, {"field": "symbols"}),
        (
            {"symbols": ["AAPL", "XXXX", "A$B"]},
            InvalidSymbol,
            {
                "invalid_symbols": ["XXXX", "A$B"],
                "supported_markets": ["COMEX", "CRYPTO", "FOREX", "NASDAQ", "NYSE"],
            },
        ),
        (
            {"symbols": ["AAPL", "OLD"], "start": "2021-01-04", "end": "2021-06-30"},
            InvalidDateRange,
            {
                "field": "start_date",
                "fields": ["start_date", "end_date"],
                "reason": "after_data",
                "symbol": "OLD",
                "timeframe": "1d",
                "available_from": "1990-01-02",
                "available_to": "2020-06-30",
            },
        ),
        (
            {"symbols": ["AAPL", "NODATA"]},
            errors.DataUnavailable,
            {"symbol": "NODATA", "timeframe": "1d"},
        ),
        (
            {"timeframe": Timeframe.M5},
            errors.DataUnavailable,
            {"symbol": "AAPL", "timeframe": "5m"},
        ),
        (
            {"initial_capital": "999.99"},
            errors.InsufficientCapital,
            {"initial_capital": "999.99", "min_capital": "1000.00"},
        ),
        (
            {"initial_capital": "10000000.01"},
            errors.ExcessiveCapital,
            {"initial_capital": "10000000.01", "max_capital": "10000000.00"},
        ),
        (
            {"symbols": ["EUR/USD", "AAPL", "eurusd"]},
            ValidationFailed,
            {"field": "symbols", "duplicates": ["eurusd"]},
        ),
        (
            {"metadata": {"blob": "x" * 5000}},
            ValidationFailed,
            {"field": "metadata", "size": len('{"blob":""}') + 5000, "max_bytes": 4096},
        ),
        (
            {"metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}},
            ValidationFailed,
            {"field": "metadata", "max_depth": 8},
        ),
        ({"metadata": {"n": float("nan")}}, ValidationFailed, {"field": "metadata"}),
    ],
)
async def test_create_refusals_store_nothing(
    service: SessionService,
    params_kwargs: dict[str, object],
    error: type[DomainError],
    details: dict[str, object],
) -> None:
    with pytest.raises(error) as caught:
        await service.create(ALICE, session_params(**params_kwargs))  # type: ignore[arg-type]
    assert caught.value.details == details
    assert await service.stored_count() == 0


async def test_too_many_symbols_for_the_plan(service: SessionService) -> None:
    free = principal(Plan.FREE, "alice")
    symbols = ["AAPL", "MSFT", "JPM", "BRK.B", "EUR/USD", "GBP/USD"]
    with pytest.raises(errors.TooManySymbols) as caught:
        await service.create(free, session_params(symbols=symbols))
    assert caught.value.details == {"requested": 6, "max_symbols": 5}
    session = await service.create(ALICE, session_params(symbols=symbols))  # professional: 50
    assert len(session.symbols) == 6


async def test_refused_requests_do_not_use_the_hourly_allowance(service: SessionService) -> None:
    user = principal(limits=limits_for(sessions_per_hour=1))
    for _ in range(5):
        with pytest.raises(InvalidSymbol):
            await service.create(user, session_params(symbols=["NOPE"]))
    await service.create(user, session_params())


# --- per-user limits --------------------------------------------------------------------------


async def test_active_session_limit(service: SessionService) -> None:
    free = principal(Plan.FREE, "alice")
    first = await service.create(free, session_params())
    with pytest.raises(SessionLimitExceeded) as caught:
        await service.create(free, session_params())
    assert caught.value.code == "SESSION_LIMIT_EXCEEDED"
    assert caught.value.details == {"limit": "active_sessions", "max": 1}
    assert [s.id for s in await service.list(free)] == [first.id]
    # Other users have their own allowance.
    await service.create(principal(Plan.FREE, "bob"), session_params())


async def test_deleting_or_finishing_a_session_frees_its_place(service: SessionService) -> None:
    free = principal(Plan.FREE, "alice")
    first = await service.create(free, session_params())
    await service.delete(free, first.id)
    second = await service.create(free, session_params())
    await service.change_state(free, second.id, SessionState.ERROR)  # terminal: not active
    third = await service.create(free, session_params())
    assert [s.id for s in await service.list(free)] == [second.id, third.id]


async def test_expired_sessions_do_not_count_against_the_limit(
    service: SessionService, clock: FakeClock
) -> None:
    free = principal(Plan.FREE, "alice")
    await service.create(free, session_params())
    clock.advance(minutes=60)
    await service.create(free, session_params())


async def test_hourly_creation_limit_with_retry_after(
    service: SessionService, clock: FakeClock
) -> None:
    user = principal(limits=limits_for(sessions_per_hour=3))
    for _ in range(3):
        await service.create(user, session_params())
        clock.advance(minutes=10)
    # The first slot was taken 30 minutes ago and frees up 30 minutes from now.
    with pytest.raises(SessionLimitExceeded) as caught:
        await service.create(user, session_params())
    assert caught.value.details == {
        "limit": "sessions_per_hour",
        "max": 3,
        "retry_after_ms": 30 * 60 * 1000 + 1,
    }
    clock.advance(minutes=30)
    await service.create(user, session_params())
    assert await service.stored_count() == 4


async def test_a_create_refused_by_the_active_limit_gives_its_hourly_slot_back(
    service: SessionService,
) -> None:
    user = principal(limits=limits_for(max_active_sessions=1, sessions_per_hour=2))
    first = await service.create(user, session_params())  # hourly slot 1
    for _ in range(5):  # each takes a slot and must hand it back
        with pytest.raises(SessionLimitExceeded) as refused:
            await service.create(user, session_params())
        assert refused.value.details["limit"] == "active_sessions"
    await service.delete(user, first.id)
    second = await service.create(user, session_params())  # hourly slot 2
    await service.delete(user, second.id)
    with pytest.raises(SessionLimitExceeded) as caught:
        await service.create(user, session_params())
    assert caught.value.details["limit"] == "sessions_per_hour"


# --- ownership and lookup ---------------------------------------------------------------------


async def test_get_touches_the_session(service: SessionService, clock: FakeClock) -> None:
    session = await service.create(ALICE, session_params())
    clock.advance(minutes=45)
    fetched = await service.get(ALICE, session.id)
    assert fetched is session
    assert fetched.updated_at == clock.now()
    assert fetched.expires_at == clock.now() + TIMEOUT


async def test_unknown_session_is_not_found(service: SessionService) -> None:
    for call in (
        service.get(ALICE, "sess_missing"),
        service.delete(ALICE, "sess_missing"),
        service.change_state(ALICE, "sess_missing", SessionState.RUNNING),
        service.touch(ALICE, "sess_missing"),
        service.fail(ALICE, "sess_missing", "x"),
    ):
        with pytest.raises(SessionNotFound) as caught:
            await call
        assert caught.value.code == "SESSION_NOT_FOUND"
        assert caught.value.details == {"session_id": "sess_missing"}


async def test_another_users_session_is_access_denied(service: SessionService) -> None:
    session = await service.create(ALICE, session_params())
    for call in (
        service.get(BOB, session.id),
        service.delete(BOB, session.id),
        service.change_state(BOB, session.id, SessionState.RUNNING),
        service.touch(BOB, session.id),
        service.fail(BOB, session.id, "x"),
    ):
        with pytest.raises(AccessDenied) as caught:
            await call
        assert caught.value.code == "ACCESS_DENIED"
        assert caught.value.details == {"session_id": session.id}
    assert session.state is SessionState.READY
    assert session.updated_at == session.created_at  # Bob's attempts were not activity
    assert await service.get(ALICE, session.id) is session


async def test_list_returns_own_sessions_in_creation_order_with_state_filter(
    service: SessionService,
) -> None:
    a1 = await service.create(ALICE, session_params())
    await service.create(BOB, session_params())
    a2 = await service.create(ALICE, session_params(symbols=["MSFT"]))
    a3 = await service.create(ALICE, session_params(symbols=["GC"]))
    await service.change_state(ALICE, a2.id, SessionState.RUNNING)
    await service.change_state(ALICE, a3.id, SessionState.RUNNING)
    await service.change_state(ALICE, a3.id, SessionState.COMPLETED)

    assert [s.id for s in await service.list(ALICE)] == [a1.id, a2.id, a3.id]
    assert [s.id for s in await service.list(ALICE, SessionState.RUNNING)] == [a2.id]
    assert [s.id for s in await service.list(ALICE, SessionState.COMPLETED)] == [a3.id]
    assert await service.list(ALICE, SessionState.PAUSED) == []
    assert all(s.owner == "bob" for s in await service.list(BOB))
    assert await service.list(principal(user_id="carol")) == []


# --- state changes ----------------------------------------------------------------------------


async def test_state_changes_through_the_life_cycle(
    service: SessionService, clock: FakeClock
) -> None:
    session = await service.create(ALICE, session_params())
    for target in (
        SessionState.RUNNING,
        SessionState.PAUSED,
        SessionState.RUNNING,
        SessionState.COMPLETED,
    ):
        clock.advance(1)
        changed = await service.change_state(ALICE, session.id, target)
        assert changed.state is target
        assert changed.updated_at == clock.now()
    assert not session.is_active


async def test_illegal_state_change_is_refused_and_changes_nothing(
    service: SessionService, clock: FakeClock
) -> None:
    session = await service.create(ALICE, session_params())
    clock.advance(5)
    with pytest.raises(InvalidState) as caught:
        await service.change_state(ALICE, session.id, SessionState.PAUSED)
    assert caught.value.code == "INVALID_STATE"
    assert caught.value.details["state"] == "ready"
    assert caught.value.details["action"] == "pause"
    assert session.state is SessionState.READY
    assert session.updated_at == session.created_at


async def test_fail_keeps_the_reason(service: SessionService) -> None:
    session = await service.create(ALICE, session_params())
    failed = await service.fail(ALICE, session.id, "no bars for AAPL")
    assert failed.state is SessionState.ERROR
    assert failed.error_reason == "no bars for AAPL"


async def test_touch_restarts_the_idle_clock(service: SessionService, clock: FakeClock) -> None:
    session = await service.create(ALICE, session_params())
    clock.advance(minutes=59)
    await service.touch(ALICE, session.id)
    clock.advance(minutes=59)
    assert await service.get(ALICE, session.id) is session


# --- delete and expiry ------------------------------------------------------------------------


async def test_delete_removes_the_session(service: SessionService) -> None:
    session = await service.create(ALICE, session_params())
    removed = await service.delete(ALICE, session.id)
    assert removed is session
    assert await service.stored_count() == 0
    with pytest.raises(SessionNotFound):
        await service.get(ALICE, session.id)
    with pytest.raises(SessionNotFound):
        await service.delete(ALICE, session.id)


async def test_expired_session_is_gone_from_get_and_list(
    service: SessionService, clock: FakeClock
) -> None:
    session = await service.create(ALICE, session_params())
    clock.advance(minutes=60)
    with pytest.raises(SessionNotFound):
        await service.get(ALICE, session.id)
    # Even for another user: an expired session reveals nothing about its owner.
    with pytest.raises(SessionNotFound):
        await service.get(BOB, session.id)
    assert await service.list(ALICE) == []


async def test_expire_idle_reclaims_only_idle_sessions(
    service: SessionService, clock: FakeClock
) -> None:
    idle = await service.create(ALICE, session_params())
    busy = await service.create(ALICE, session_params(symbols=["MSFT"]))
    other = await service.create(BOB, session_params())
    clock.advance(minutes=30)
    await service.get(ALICE, busy.id)
    clock.advance(minutes=30)

    assert await service.stored_count() == 3
    removed = await service.expire_idle()
    assert {s.id for s in removed} == {idle.id, other.id}
    assert await service.stored_count() == 1
    assert [s.id for s in await service.list(ALICE)] == [busy.id]
    assert await service.expire_idle() == []

    clock.advance(minutes=30)
    assert [s.id for s in await service.expire_idle()] == [busy.id]
    assert await service.stored_count() == 0


# --- every error code is provoked by real code ------------------------------------------------


@dataclass
class World:
    service: SessionService
    clock: FakeClock
    tmp_path: Path


Provoker = Callable[[World], Awaitable[object]]


async def _other_users_session(world: World) -> object:
    session = await world.service.create(ALICE, session_params())
    return await world.service.get(BOB, session.id)


async def _second_free_session(world: World) -> object:
    free = principal(Plan.FREE, "alice")
    await world.service.create(free, session_params())
    return await world.service.create(free, session_params())


async def _pause_a_ready_session(world: World) -> object:
    session = await world.service.create(ALICE, session_params())
    return await world.service.change_state(ALICE, session.id, SessionState.PAUSED)


async def _start_after_start(world: World) -> object:
    session = await world.service.create(ALICE, session_params())
    await world.service.change_state(ALICE, session.id, SessionState.RUNNING)
    return await world.service.change_state(ALICE, session.id, SessionState.RUNNING)


def _auth(world: World) -> AuthService:
    return AuthService(
        keys=FileApiKeyStore(world.tmp_path / "keys.json"),
        tokens=JwtTokenCodec("s" * 32),
        clock=world.clock,
        ids=FakeIds(),
        plan_limits=PLAN_DEFAULTS,
        token_ttl_seconds=3600,
    )


async def _create(world: World, **kwargs: object) -> object:
    return await world.service.create(ALICE, session_params(**kwargs))  # type: ignore[arg-type]


def _market_data(world: World) -> MarketDataService:
    return MarketDataService(
        InMemoryBarStore.with_defaults(), InMemoryCatalog(), RandomWalkBarGenerator(), world.clock
    )


def _bars(*closes: str) -> BarSeries:
    day = datetime(2023, 1, 3, 21, tzinfo=UTC)
    return BarSeries.from_bars(
        "AAPL",
        Timeframe.D1,
        [
            Bar(day + timedelta(days=i), Decimal(c), Decimal(c), Decimal(c), Decimal(c), Decimal(1))
            for i, c in enumerate(closes)
        ],
    )


async def _import_a_bar_with_high_below_close(world: World) -> object:
    bad = Bar(datetime(2023, 1, 3, 21, tzinfo=UTC), *map(Decimal, ("10", "9", "8", "10", "1")))
    return await _market_data(world).import_bars(
        BarSeries.from_bars("AAPL", Timeframe.D1, [bad]), replace=False
    )


async def _import_over_stored_bars(world: World) -> object:
    # The default store already holds AAPL's daily bars over 2023: overlapping, not replacing.
    return await _market_data(world).import_bars(_bars("1", "2"), replace=False)


ENGINE_CODES = {
    "INVALID_ORDER",
    "DUPLICATE_ORDER_ID",
    "ORDER_NOT_FOUND",
    "INVALID_SEQUENCE",
    "SESSION_BUSY",
    "INTERNAL_ERROR",  # OrderFailed: the engine failing on one order
}
"""Raised by the simulation engine (orders, the broker, tick flow), which SessionService does
not drive; the engine's own tests provoke them."""

PROVOKERS: list[tuple[str, Provoker]] = [
    ("MISSING_SYMBOLS", lambda w: _create(w, symbols=[])),
    ("INVALID_SYMBOL", lambda w: _create(w, symbols=["XXXX"])),
    ("TOO_MANY_SYMBOLS", lambda w: _create(w, symbols=[f"S{i}" for i in range(51)])),
    ("INVALID_DATE_RANGE", lambda w: _create(w, start="2024-01-01", end="2023-01-01")),
    ("INVALID_DATE_RANGE", lambda w: _create(w, symbols=["OLD"])),
    ("DATA_UNAVAILABLE", lambda w: _create(w, symbols=["NODATA"])),
    ("DATA_UNAVAILABLE", lambda w: _create(w, timeframe=Timeframe.H1)),
    ("INVALID_BARS", _import_a_bar_with_high_below_close),
    ("DATA_CONFLICT", _import_over_stored_bars),
    ("INSUFFICIENT_CAPITAL", lambda w: _create(w, initial_capital="0")),
    ("EXCESSIVE_CAPITAL", lambda w: _create(w, initial_capital="1e30")),
    ("SESSION_LIMIT_EXCEEDED", _second_free_session),
    ("SESSION_NOT_FOUND", lambda w: w.service.get(ALICE, "sess_nope")),
    ("ACCESS_DENIED", _other_users_session),
    ("INVALID_STATE", _pause_a_ready_session),
    ("INVALID_STATE", _start_after_start),
    ("VALIDATION_FAILED", lambda w: _create(w, symbols=["AAPL", "aapl"])),
    ("VALIDATION_FAILED", lambda w: _create(w, metadata={"when": object()})),
    ("INVALID_API_KEY", lambda w: _auth(w).issue_token("sk_not_a_key")),
    ("INVALID_TOKEN", lambda w: _auth(w).authenticate("not.a.jwt")),
]


@pytest.mark.parametrize(
    ("code", "provoke"), PROVOKERS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(PROVOKERS)]
)
async def test_error_code_is_provoked(
    code: str, provoke: Provoker, service: SessionService, clock: FakeClock, tmp_path: Path
) -> None:
    with pytest.raises(DomainError) as caught:
        await provoke(World(service, clock, tmp_path))
    assert caught.value.code == code
    assert caught.value.message


def _all_codes(cls: type[DomainError]) -> set[str]:
    codes = {cls.code}
    for sub in cls.__subclasses__():
        codes |= _all_codes(sub)
    return codes


def test_every_error_code_of_the_domain_has_a_provoker() -> None:
    assert _all_codes(DomainError) >= ENGINE_CODES
    assert _all_codes(DomainError) - ENGINE_CODES == {code for code, _ in PROVOKERS}


def test_principal_helper_uses_plan_defaults() -> None:
    assert principal(Plan.FREE).limits == PLAN_DEFAULTS[Plan.FREE]
    custom = limits_for(Plan.ENTERPRISE, max_active_sessions=7)
    assert Principal("u", Plan.ENTERPRISE, custom).limits.max_active_sessions == 7
    assert custom.sessions_per_hour == PLAN_DEFAULTS[Plan.ENTERPRISE].sessions_per_hour
