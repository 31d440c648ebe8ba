"""The composition root: the one place that picks concrete adapters and wires them."""

from __future__ import annotations

import dataclasses

from dependency_injector import containers, providers

from adapters.auth.file_store import FileApiKeyStore, load_or_create_secret
from adapters.auth.jwt_codec import JwtTokenCodec
from adapters.auth.redis_store import RedisApiKeyStore
from adapters.bars.sqlite_store import SqliteBarStore
from adapters.bars.synthetic import RandomWalkBarGenerator
from adapters.catalog.yaml_catalog import LayeredSymbolCatalog
from adapters.clock import SystemClock
from adapters.connections import InMemoryConnectionRegistry
from adapters.ids import SecureIdGenerator
from adapters.ratelimit import InMemoryRateLimiter
from adapters.storage.memory import InMemoryResultsStore, InMemorySessionRepository
from adapters.storage.redis import (
    RedisConnectionRegistry,
    RedisDatabase,
    RedisRateLimiter,
    RedisResultsStore,
    RedisSessionRepository,
    RedisSimulationCheckpoints,
)
from adapters.storage.sqlite import (
    SqliteDatabase,
    SqliteRateLimiter,
    SqliteResultsStore,
    SqliteSessionRepository,
    SqliteSimulationCheckpoints,
)
from application.auth import AuthService
from application.bars import MarketDataService
from application.market_data import MarketDataValidator
from application.ports import NoMetrics, ServiceMetrics
from application.sessions import SessionService
from application.simulation import SimulationService
from entrypoints.protocol.dispatcher import Dispatcher
from entrypoints.settings import Settings
from entrypoints.version import __version__


def _jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.storage == "redis":  # every process must verify the others' tokens
        return _redis(settings).shared_secret("jwt")
    return load_or_create_secret(settings.home)


def _redis(settings: Settings) -> RedisDatabase:
    return RedisDatabase(settings.redis_url, lease_seconds=settings.redis_lease_seconds)


def _metrics(settings: Settings) -> ServiceMetrics:
    """Prometheus metrics (SIMUTRADOR_METRICS=on, the default), or none."""
    if not settings.metrics:
        return NoMetrics()
    # Imported here: prometheus_client takes ~0.1 s to import, which every CLI command that
    # builds a container (and never serves) would pay otherwise.
    from adapters.metrics.prometheus import PrometheusMetrics

    return PrometheusMetrics()


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings.from_env)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(SecureIdGenerator)
    catalog = providers.Singleton(
        LayeredSymbolCatalog.from_files,
        settings.provided.catalog_path,
        settings.provided.user_catalog_path,
    )
    bar_store = providers.Singleton(SqliteBarStore, settings.provided.bars_path)
    bar_generator = providers.Singleton(RandomWalkBarGenerator)
    metrics = providers.Singleton(_metrics, settings)
    # SIMUTRADOR_STORAGE picks where sessions, limits and simulations live (and, with
    # redis, the API keys and the open connections: what several processes must share).
    sessions_database = providers.Singleton(SqliteDatabase, settings.provided.sessions_path)
    redis_database = providers.Singleton(_redis, settings)
    shared_storage = providers.Selector(
        settings.provided.storage,
        sqlite=providers.Object(None),
        memory=providers.Object(None),
        redis=redis_database,
    )
    session_repository = providers.Selector(
        settings.provided.storage,
        sqlite=providers.Singleton(SqliteSessionRepository, sessions_database),
        memory=providers.Singleton(InMemorySessionRepository),
        redis=providers.Singleton(RedisSessionRepository, redis_database),
    )
    rate_limiter = providers.Selector(
        settings.provided.storage,
        sqlite=providers.Singleton(SqliteRateLimiter, sessions_database, clock),
        memory=providers.Singleton(InMemoryRateLimiter),
        redis=providers.Singleton(RedisRateLimiter, redis_database, clock),
    )
    checkpoints = providers.Selector(
        settings.provided.storage,
        sqlite=providers.Singleton(SqliteSimulationCheckpoints, sessions_database),
        memory=providers.Object(None),
        redis=providers.Singleton(RedisSimulationCheckpoints, redis_database),
    )
    # Completed simulations' results: in the storage, never held by the process.
    results_store = providers.Selector(
        settings.provided.storage,
        sqlite=providers.Singleton(SqliteResultsStore, sessions_database),
        memory=providers.Singleton(InMemoryResultsStore),
        redis=providers.Singleton(RedisResultsStore, redis_database),
    )

    market_data_validator = providers.Singleton(
        MarketDataValidator,
        catalog=catalog,
        store=bar_store,
        clock=clock,
        cache_size=settings.provided.validation_cache_size,
        cache_ttl_seconds=settings.provided.validation_cache_ttl_seconds,
        metrics=metrics,
    )
    market_data_service = providers.Singleton(
        MarketDataService,
        store=bar_store,
        catalog=catalog,
        generator=bar_generator,
        clock=clock,
    )
    session_service = providers.Singleton(
        SessionService,
        repository=session_repository,
        validator=market_data_validator,
        clock=clock,
        ids=ids,
        rate_limiter=rate_limiter,
        policy=settings.provided.session_policy,
        metrics=metrics,
    )

    simulation_service = providers.Singleton(
        SimulationService,
        sessions=session_service,
        catalog=catalog,
        store=bar_store,
        clock=clock,
        checkpoints=checkpoints,
        checkpoint_every_ticks=settings.provided.checkpoint_every_ticks,
        results=results_store,
        metrics=metrics,
    )

    file_api_key_store = providers.Singleton(FileApiKeyStore, settings.provided.api_keys_path)
    api_key_store = providers.Selector(
        settings.provided.storage,
        sqlite=file_api_key_store,
        memory=file_api_key_store,
        redis=providers.Singleton(RedisApiKeyStore, redis_database),
    )
    token_codec = providers.Singleton(
        JwtTokenCodec, secret=providers.Callable(_jwt_secret, settings)
    )
    auth_service = providers.Singleton(
        AuthService,
        keys=api_key_store,
        tokens=token_codec,
        clock=clock,
        ids=ids,
        plan_limits=settings.provided.plan_limits,
        token_ttl_seconds=settings.provided.token_ttl_seconds,
    )
    local_connections = providers.Singleton(InMemoryConnectionRegistry)
    connection_registry = providers.Selector(
        settings.provided.storage,
        sqlite=local_connections,
        memory=local_connections,
        redis=providers.Singleton(RedisConnectionRegistry, redis_database),
    )
    dispatcher = providers.Singleton(
        Dispatcher,
        sessions=session_service,
        clock=clock,
        server_version=__version__,
        max_message_bytes=settings.provided.max_message_bytes,
        simulations=simulation_service,
        tick_timeout_seconds=settings.provided.tick_timeout_seconds,
        metrics=metrics,
    )


def in_process_container() -> Container:
    """A container for running in the user's own process (`run_backtest`): settings from
    the environment, but sessions in memory, never written to SIMUTRADOR_HOME, and no
    metrics (nothing serves them)."""
    container = Container()
    settings = dataclasses.replace(Settings.from_env(), storage="memory", metrics=False)
    container.settings.override(providers.Object(settings))
    return container
