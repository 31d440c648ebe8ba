"""Fixtures shared across test modules; the fakes themselves live in tests/fakes.py."""

from __future__ import annotations

import pytest

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from adapters.storage.memory import InMemorySessionRepository
from application.sessions import SessionService
from tests.fakes import FakeClock, make_service


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
