"""The composition root: the one place that picks concrete adapters and wires them."""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from adapters.clock import SystemClock
from adapters.ids import SecureIdGenerator
from adapters.ratelimit import InMemoryRateLimiter
from adapters.storage.memory import InMemorySessionRepository
from application.market_data import MarketDataValidator
from application.sessions import SessionService
from entrypoints.settings import Settings


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings.from_env)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(SecureIdGenerator)
    catalog = providers.Singleton(YamlSymbolCatalog.from_file, settings.provided.catalog_path)
    session_repository = providers.Singleton(InMemorySessionRepository)
    rate_limiter = providers.Singleton(InMemoryRateLimiter)

    market_data_validator = providers.Singleton(
        MarketDataValidator,
        catalog=catalog,
        clock=clock,
        cache_size=settings.provided.validation_cache_size,
        cache_ttl_seconds=settings.provided.validation_cache_ttl_seconds,
    )
    session_service = providers.Singleton(
        SessionService,
        repository=session_repository,
        validator=market_data_validator,
        clock=clock,
        ids=ids,
        rate_limiter=rate_limiter,
        policy=settings.provided.session_policy,
    )
