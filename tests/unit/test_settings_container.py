"""Settings from SIMUTRADOR_* variables, and the container wired from them with providers
overridden the way tests and tools should do it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from dependency_injector import providers

from adapters.auth.file_store import FileApiKeyStore
from adapters.auth.redis_store import RedisApiKeyStore
from adapters.bars.sqlite_store import SqliteBarStore
from adapters.clock import SystemClock
from adapters.connections import InMemoryConnectionRegistry
from adapters.ratelimit import InMemoryRateLimiter
from adapters.storage.memory import InMemorySessionRepository
from adapters.storage.redis import (
    RedisConnectionRegistry,
    RedisRateLimiter,
    RedisSessionRepository,
    RedisSimulationCheckpoints,
)
from adapters.storage.sqlite import (
    SqliteRateLimiter,
    SqliteSessionRepository,
    SqliteSimulationCheckpoints,
)
from application.sessions import SessionService
from domain.errors import DataUnavailable, InvalidSymbol
from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.container import Container, in_process_container
from entrypoints.settings import Settings, SettingsError
from tests.fakes import FakeClock, FakeIds, principal, session_params
from tests.redis_server import RedisServer

# --- settings ---------------------------------------------------------------------------------


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.session_timeout_minutes == 60.0
    assert settings.plan_limits == PLAN_DEFAULTS
    policy = settings.session_policy
    assert policy.session_timeout == timedelta(minutes=60)
    assert (policy.min_capital, policy.max_capital) == (Decimal("1000.00"), Decimal("10000000.00"))


def test_reads_typed_values() -> None:
    settings = Settings.from_env(
        {
            "SIMUTRADOR_HOST": "0.0.0.0",
            "SIMUTRADOR_PORT": "9001",
            "SIMUTRADOR_SESSION_TIMEOUT_MINUTES": "2.5",
            "SIMUTRADOR_MIN_CAPITAL": "500.00",
            "SIMUTRADOR_MAX_RANGE_DAYS": "365",
            "SIMUTRADOR_HOME": "~/simutrador-test",
            "SIMUTRADOR_LOG_LEVEL": "debug",
            "SIMUTRADOR_MAX_CAPITAL": "",  # empty means unset
            "OTHER_PORT": "1",
        }
    )
    assert settings.host == "0.0.0.0"
    assert settings.port == 9001
    assert settings.home == Path.home() / "simutrador-test"
    assert settings.log_level == "debug"
    assert settings.max_capital == Decimal("10000000.00")
    policy = settings.session_policy
    assert policy.session_timeout == timedelta(seconds=150)
    assert policy.min_capital == Decimal("500.00")
    assert policy.max_range_days == 365


def test_plan_overrides() -> None:
    settings = Settings.from_env(
        {
            "SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS": "2",
            "SIMUTRADOR_ENTERPRISE_SESSIONS_PER_HOUR": "1000",
        }
    )
    free = settings.limits(Plan.FREE)
    assert free.max_active_sessions == 2
    assert free.sessions_per_hour == PLAN_DEFAULTS[Plan.FREE].sessions_per_hour
    assert settings.limits(Plan.ENTERPRISE).sessions_per_hour == 1000
    assert settings.limits(Plan.PROFESSIONAL) == PLAN_DEFAULTS[Plan.PROFESSIONAL]
    assert PLAN_DEFAULTS[Plan.FREE].max_active_sessions == 1  # defaults untouched


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMUTRADOR_PORT", "8123")
    monkeypatch.setenv("SIMUTRADOR_PROFESSIONAL_MAX_SYMBOLS", "7")
    settings = Settings.from_env()
    assert settings.port == 8123
    assert settings.limits(Plan.PROFESSIONAL).max_symbols == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIMUTRADOR_PORT", "eighty"),
        ("SIMUTRADOR_PORT", "80.5"),
        ("SIMUTRADOR_MIN_CAPITAL", "lots"),
        ("SIMUTRADOR_MAX_CAPITAL", "NaN"),
        ("SIMUTRADOR_MAX_CAPITAL", "1e16"),  # above the ceiling exact money is proven for
        ("SIMUTRADOR_SESSION_TIMEOUT_MINUTES", "soon"),
        ("SIMUTRADOR_SESSION_TIMEOUT_MINUTES", "nan"),
        ("SIMUTRADOR_SESSION_TIMEOUT_MINUTES", "inf"),
        ("SIMUTRADOR_VALIDATION_CACHE_TTL_SECONDS", "-infinity"),
        ("SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS", "two"),
        ("SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS", "-1"),
    ],
)
def test_bad_values_are_refused_at_start_up(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SIMUTRADOR_PORT", "0", "a port from 1 to 65535"),
        ("SIMUTRADOR_PORT", "70000", "a port from 1 to 65535"),
        ("SIMUTRADOR_LOG_LEVEL", "bogus", "critical, error, warning, info, debug, trace"),
        ("SIMUTRADOR_JWT_SECRET", "short", "at least 32 bytes"),
        ("SIMUTRADOR_SESSION_TIMEOUT_MINUTES", "0", "a number above 0"),
        ("SIMUTRADOR_TOKEN_TTL_SECONDS", "-5", "a whole number above 0"),
        ("SIMUTRADOR_CATALOG_PATH", "/nonexistent/catalog.yaml", "an existing YAML file"),
    ],
)
def test_out_of_range_values_say_what_is_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}=")
    assert allowed in message
    assert "\n" not in message
    if name == "SIMUTRADOR_JWT_SECRET":
        assert value not in message


def test_a_home_must_be_a_directory(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(SettingsError, match=r"SIMUTRADOR_HOME=.* it must be a directory"):
        Settings.from_env({"SIMUTRADOR_HOME": str(regular)})
    assert Settings.from_env({"SIMUTRADOR_HOME": str(tmp_path / "new")}).home == tmp_path / "new"


def test_log_level_is_case_insensitive_and_capital_bounds_agree() -> None:
    assert Settings.from_env({"SIMUTRADOR_LOG_LEVEL": "WARNING"}).log_level == "warning"
    with pytest.raises(SettingsError, match="must not be above SIMUTRADOR_MAX_CAPITAL"):
        Settings.from_env({"SIMUTRADOR_MIN_CAPITAL": "5000", "SIMUTRADOR_MAX_CAPITAL": "4000"})


# --- container --------------------------------------------------------------------------------


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    """A container that reads no process environment and writes only under tmp_path."""
    built = Container()
    built.settings.override(
        providers.Object(Settings.from_env({"SIMUTRADOR_HOME": str(tmp_path / "home")}))
    )
    yield built
    built.reset_override()


async def test_overridden_clock_and_ids_reach_the_session_service(
    container: Container, tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2025, 2, 3, 4, 5, tzinfo=UTC))
    container.clock.override(providers.Object(clock))
    container.ids.override(providers.Object(FakeIds()))

    store = container.bar_store()
    assert isinstance(store, SqliteBarStore)
    assert store.path == tmp_path / "home" / "bars.db"
    # The sample ends with the last full year of the (fake) clock: 2024.
    (seeded,) = await container.market_data_service().seed_sample(["AAPL"], years=2)
    assert (seeded.first.date(), seeded.last.date()) == (date(2023, 1, 3), date(2024, 12, 31))

    service = container.session_service()
    assert isinstance(service, SessionService)
    session = await service.create(principal(), session_params())
    assert session.id == "sess_0001"
    assert session.created_at == clock.now()
    assert session.expires_at == clock.now() + timedelta(minutes=60)
    assert session.total_bars == 250  # the same store: AAPL's 2023 trading days
    (warning,) = session.warnings
    assert warning.startswith("AAPL runs on synthetic data")

    repository = container.session_repository()
    assert isinstance(repository, SqliteSessionRepository)  # durable by default
    assert repository.database.path == tmp_path / "home" / "sessions.db"
    assert await repository.get(session.id) == session
    assert container.session_service() is service  # one service per container


def test_storage_picks_the_adapters(tmp_path: Path) -> None:
    def built(storage: str) -> Container:
        container = Container()
        container.settings.override(
            providers.Object(Settings(home=tmp_path / storage, storage=storage))
        )
        return container

    durable = built("sqlite")
    assert isinstance(durable.rate_limiter(), SqliteRateLimiter)
    assert isinstance(durable.checkpoints(), SqliteSimulationCheckpoints)
    assert isinstance(durable.api_key_store(), FileApiKeyStore)
    assert isinstance(durable.connection_registry(), InMemoryConnectionRegistry)
    assert durable.shared_storage() is None
    memory = built("memory")
    assert isinstance(memory.session_repository(), InMemorySessionRepository)
    assert isinstance(memory.rate_limiter(), InMemoryRateLimiter)
    assert memory.checkpoints() is None
    assert not (tmp_path / "memory" / "sessions.db").exists()
    # Built without connecting: Redis is first reached by the first request.
    shared = built("redis")
    assert isinstance(shared.session_repository(), RedisSessionRepository)
    assert isinstance(shared.rate_limiter(), RedisRateLimiter)
    assert isinstance(shared.checkpoints(), RedisSimulationCheckpoints)
    assert isinstance(shared.connection_registry(), RedisConnectionRegistry)
    assert isinstance(shared.api_key_store(), RedisApiKeyStore)
    assert shared.shared_storage() is shared.session_repository().database
    assert not (tmp_path / "redis").exists()


def test_the_in_process_runner_keeps_sessions_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMUTRADOR_HOME", str(tmp_path))
    monkeypatch.setenv("SIMUTRADOR_STORAGE", "sqlite")
    container = in_process_container()
    assert isinstance(container.session_repository(), InMemorySessionRepository)
    assert container.checkpoints() is None
    assert container.settings().home == tmp_path


def test_redis_settings() -> None:
    settings = Settings.from_env(
        {
            "SIMUTRADOR_STORAGE": "Redis",
            "SIMUTRADOR_REDIS_URL": "redis://cache.internal:6380/2",
            "SIMUTRADOR_REDIS_LEASE_SECONDS": "3",
        }
    )
    assert settings.storage == "redis"
    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert settings.redis_lease_seconds == 3.0
    assert Settings.from_env({}).redis_url == "redis://127.0.0.1:6379/0"
    with pytest.raises(SettingsError, match=r"SIMUTRADOR_REDIS_URL='http://x' is refused"):
        Settings.from_env({"SIMUTRADOR_REDIS_URL": "http://x"})
    with pytest.raises(SettingsError, match=r"SIMUTRADOR_STORAGE='postgres' is refused.*redis"):
        Settings.from_env({"SIMUTRADOR_STORAGE": "postgres"})
    with pytest.raises(SettingsError, match="SIMUTRADOR_REDIS_LEASE_SECONDS"):
        Settings.from_env({"SIMUTRADOR_REDIS_LEASE_SECONDS": "0"})


def test_processes_on_one_redis_share_a_jwt_secret_unless_one_is_set(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    def secret(home: str, jwt_secret: str = "") -> str:
        container = Container()
        settings = Settings(
            home=tmp_path / home,
            storage="redis",
            redis_url=redis_server.url(3),
            jwt_secret=jwt_secret,
        )
        container.settings.override(providers.Object(settings))
        codec = container.token_codec()
        return str(codec.encode({"sub": "x"}))

    redis_server.flush(3)
    # Two homes (two machines): one secret, made by the first to ask; none written to a home.
    assert secret("a") == secret("b")
    assert not (tmp_path / "a" / "jwt_secret").exists()
    assert secret("c", jwt_secret="s" * 40) != secret("a")


async def test_settings_drive_the_wiring(container: Container, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "version: 2\nsymbols:\n"
        "  - {symbol: MSFT, name: Microsoft, exchange: NASDAQ, asset_class: stock}\n",
        encoding="utf-8",
    )
    settings = Settings.from_env(
        {
            "SIMUTRADOR_CATALOG_PATH": str(catalog),
            "SIMUTRADOR_SESSION_TIMEOUT_MINUTES": "5",
            "SIMUTRADOR_HOME": str(tmp_path / "home"),
        }
    )
    container.settings.override(providers.Object(settings))
    container.clock.override(providers.Object(FakeClock()))
    service = container.session_service()
    market_data = container.market_data_service()

    with pytest.raises(InvalidSymbol):
        await market_data.seed_sample(["AAPL"])  # not in this catalog
    with pytest.raises(DataUnavailable):  # in the catalog, but no bars yet
        await service.create(principal(), session_params(symbols=["msft"]))
    await market_data.seed_sample(["MSFT"], years=1)
    assert settings.bars_path == tmp_path / "home" / "bars.db"
    assert settings.bars_path.is_file()

    with pytest.raises(InvalidSymbol) as caught:
        await service.create(principal(), session_params(symbols=["AAPL"]))
    assert caught.value.details["supported_markets"] == ["NASDAQ"]
    session = await service.create(principal(), session_params(symbols=["msft"]))
    assert session.expires_at - session.created_at == timedelta(minutes=5)


def test_reset_override_brings_back_the_real_adapters(container: Container) -> None:
    container.clock.override(providers.Object(FakeClock()))
    assert isinstance(container.clock(), FakeClock)
    container.clock.reset_override()
    assert isinstance(container.clock(), SystemClock)
