"""A real server on a free loopback port in a background thread: for integration tests,
benchmarks, and users who want a private server inside their own process."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from dependency_injector import providers

from application.auth import NewApiKey
from domain.limits import Plan
from entrypoints.container import Container
from entrypoints.server.runner import GracefulServer, build_server
from entrypoints.settings import Settings

T = TypeVar("T")


class EmbeddedServer:
    """`with EmbeddedServer() as server:` → `server.http_url`, `server.ws_url`.

    The server runs its own event loop in a thread, so clients in the caller's loop talk
    to it over real sockets exactly as remote clients would. Its keys, secret and bars live
    in a private temporary home, removed by `stop()`, unless `home=` names one (or a
    `container` brings its own settings): the user's SIMUTRADOR_HOME is never touched.
    Other settings come from the SIMUTRADOR_* environment."""

    def __init__(
        self,
        container: Container | None = None,
        host: str = "127.0.0.1",
        log_level: str = "warning",
        *,
        sample: bool = True,
        home: str | Path | None = None,
    ) -> None:
        self._home_dir: tempfile.TemporaryDirectory[str] | None = None
        if container is None:
            if home is None:
                self._home_dir = tempfile.TemporaryDirectory(prefix="simutrador-embedded-")
                home = self._home_dir.name
            settings = dataclasses.replace(Settings.from_env(), home=Path(home).expanduser())
            container = Container()
            container.settings.override(providers.Object(settings))
        elif home is not None:
            raise ValueError("pass either a container or a home, not both")
        self.container = container
        self.sample = sample
        self.host = host
        self.log_level = log_level
        self._server: GracefulServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/simulate"

    def start(self, timeout: float = 15.0) -> EmbeddedServer:
        """Serve; on a home without any bars, first write the synthetic sample (as
        `simutrador serve` does) unless `sample=False`."""
        self._server = build_server(
            self.container, self.host, 0, self.log_level, configure_logging=False
        )
        self._thread = threading.Thread(target=self._run, name="simutrador-server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._failure is not None:
            raise RuntimeError(f"embedded server failed to start: {self._failure!r}")
        self.port = self._server.bound_port
        return self

    def _run(self) -> None:
        assert self._server is not None
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = self._server

        async def serve() -> None:
            if self.sample:
                await self.container.market_data_service().seed_sample_if_empty()
            config = server.config
            if not config.loaded:
                config.load()
            server.lifespan = config.lifespan_class(config)
            await server.startup()
            if server.should_exit:
                raise RuntimeError("startup failed")
            self._started.set()
            await server.main_loop()
            await server.shutdown()

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to the thread that called start()
            self._failure = exc
            self._started.set()
        finally:
            loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop (e.g. a service call) and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def create_api_key(self, user_id: str, plan: Plan = Plan.PROFESSIONAL) -> str:
        created: NewApiKey = self.call(self.container.auth_service().create_api_key(user_id, plan))
        return created.secret

    @property
    def home(self) -> Path:
        """Where this server keeps its keys, secret and bars."""
        return self.container.settings().home

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving; a private temporary home is removed with everything in it."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            self._server = None
        if self._home_dir is not None:
            self.container.bar_store().close()
            self._home_dir.cleanup()
            self._home_dir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
