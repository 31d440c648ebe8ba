"""Fixtures shared across test modules; the fakes themselves live in tests/fakes.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from adapters.storage.memory import InMemorySessionRepository
from adapters.storage.redis import RedisDatabase
from application.sessions import SessionService
from tests.fakes import FakeClock, make_service
from tests.redis_server import RedisServer

# Property tests judge results, never speed (speed is the benchmarks' job): no per-example
# deadline and no "too slow" health check, which a busy shared machine would trip.
settings.register_profile("simutrador", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("simutrador")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repository() -> InMemorySessionRepository:
    return InMemorySessionRepository()


@pytest.fixture
def service(clock: FakeClock, repository: InMemorySessionRepository) -> SessionService:
    """A service over the fake catalog, driven by the `clock` fixture, storing in `repository`."""
    return make_service(clock=clock, repository=repository)


@pytest.fixture(scope="session")
def shipped_catalog() -> YamlSymbolCatalog:
    """The real `adapters/catalog/market_data.yaml`, loaded once (it is immutable)."""
    return YamlSymbolCatalog.from_file()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real `redis-server` on a free loopback port, in a temporary directory, persisting
    nothing; one for the whole run. Missing, it fails the tests that need it (it is not
    skipped: `.ci/run` installs it)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_database(redis_server: RedisServer) -> RedisDatabase:
    """A `RedisDatabase` of its own: keys under a fresh prefix, so tests never meet."""
    return RedisDatabase(redis_server.url(0), prefix=f"t{secrets.token_hex(6)}:")
