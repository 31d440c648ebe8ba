"""A real server on a free loopback port per test (or per module), with its own home.

Every fresh server would write the synthetic sample into its empty home at start (about a
second each); the sample is instead seeded once per run and its file copied into each home."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import sqlite3
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


def start_server(home: Path, sample_bars: Path | None = None, **overrides: Any) -> EmbeddedServer:
    """A started server with its own home; the caller stops it. With `sample_bars` (a bar
    store file), the home starts with a copy of it; without, the server seeds its own."""
    container = build_container(home, **overrides)
    if sample_bars is not None:
        target: Path = container.settings().bars_path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample_bars, target)
    return EmbeddedServer(container).start()


@pytest.fixture(scope="session")
def sample_bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bar store holding the synthetic sample, written once per run exactly as a server
    writes it into an empty home (`seed_sample_if_empty`)."""
    container = build_container(tmp_path_factory.mktemp("sample-home"))
    written = asyncio.run(container.market_data_service().seed_sample_if_empty())
    assert written, "a fresh home must get the sample"
    store = container.bar_store()
    template = tmp_path_factory.mktemp("sample") / "bars.db"
    # One self-contained file (no -wal beside it) that is safe to copy.
    db = sqlite3.connect(store.path, isolation_level=None)
    try:
        db.execute("VACUUM INTO ?", (str(template),))
    finally:
        db.close()
        store.close()
    return template


@pytest.fixture
def server_factory(tmp_path: Path, sample_bars: Path) -> Iterator[ServerFactory]:
    """`server_factory(session_timeout_minutes=0.01, ...)`: any Settings field overrides."""
    started: list[EmbeddedServer] = []
    counter = itertools.count()

    def make(**overrides: Any) -> EmbeddedServer:
        home = overrides.pop("home", tmp_path / f"home{next(counter)}")
        server = start_server(home, sample_bars, **overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, sample_bars: Path
) -> Iterator[EmbeddedServer]:
    """One server for a whole module, for tests that do not depend on a clean slate."""
    server = start_server(tmp_path_factory.mktemp("home"), sample_bars)
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


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record not in self.records:  # a record may reach two of the watched loggers
            self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[Records]:
    """Every record of the server's loggers (uvicorn's and litestar's do not propagate)."""
    handler = Records()
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "simutrador"]
    for name in names:
        logging.getLogger(name).addHandler(handler)
    yield handler
    for name in names:
        logging.getLogger(name).removeHandler(handler)
