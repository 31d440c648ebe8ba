"""A real server on a free loopback port per test (or per module), with its own home."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from domain.limits import Plan
from entrypoints.container import Container
from entrypoints.server.embedded import EmbeddedServer
from entrypoints.settings import Settings

ServerFactory = Callable[..., EmbeddedServer]
TEST_JWT_SECRET = "integration-tests-secret-0123456789abcdef"


def build_container(home: Path, **overrides: Any) -> Container:
    """A container with the integration settings: its own home and the test JWT secret."""
    overrides.setdefault("jwt_secret", TEST_JWT_SECRET)
    container = Container()
    container.settings.override(providers.Object(Settings(home=home, **overrides)))
    return container


def start_server(home: Path, **overrides: Any) -> EmbeddedServer:
    """A started server with its own home; the caller stops it."""
    return EmbeddedServer(build_container(home, **overrides)).start()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """`server_factory(session_timeout_minutes=0.01, ...)`: any Settings field overrides."""
    started: list[EmbeddedServer] = []
    counter = itertools.count()

    def make(**overrides: Any) -> EmbeddedServer:
        home = overrides.pop("home", tmp_path / f"home{next(counter)}")
        server = start_server(home, **overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One server for a whole module, for tests that do not depend on a clean slate."""
    server = start_server(tmp_path_factory.mktemp("home"))
    yield server
    server.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> EmbeddedServer:
    return server_factory()


def issue_token(server: EmbeddedServer, user_id: str, plan: Plan = Plan.PROFESSIONAL) -> str:
    """A fresh API key for `user_id`, exchanged over real HTTP for a bearer token."""
    key = server.create_api_key(user_id, plan)
    response = httpx.post(f"{server.http_url}/auth/token", headers={"X-API-Key": key})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token
