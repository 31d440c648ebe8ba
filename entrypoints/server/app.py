"""The Litestar application: thin handlers over the use cases the container provides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from litestar import Litestar, Request, Response, WebSocket, get, post, websocket
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.params import FromQuery

from application.sessions import SessionService
from application.simulation import SimulationService
from domain.errors import AuthenticationFailed, DomainError
from entrypoints.container import Container
from entrypoints.protocol.dispatcher import instrument_data, parse_asset_class
from entrypoints.protocol.messages import (
    ErrorResponse,
    HealthResponse,
    SymbolsResponse,
    TokenResponse,
)
from entrypoints.server.metrics import metrics_routes
from entrypoints.server.websocket import LiveSockets, guard_connections, serve_connection
from entrypoints.version import __version__

log = logging.getLogger("simutrador.server")


class SharedStorage(Protocol):
    """Storage other server processes use too (Redis): this process's presence in it."""

    async def keep_alive(self) -> None:
        """Renew the presence for as long as the server runs."""
        ...

    async def vanish(self) -> None: ...

    async def aclose(self) -> None: ...


async def sweep_expired(
    sessions: SessionService, simulations: SimulationService, interval_seconds: float
) -> None:
    """Reclaim idle sessions every `interval_seconds` for as long as the app runs; the
    simulation of an expired session (paused, whose client never came back) goes too."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            removed = await sessions.expire_idle()
        except Exception:
            log.exception("session sweep failed; retrying next interval")
            continue
        for session in removed:
            await simulations.forget(session.id)
        if removed:
            log.info("expired %d idle session(s)", len(removed))


async def recover_simulations(simulations: SimulationService) -> None:
    """Before serving: bring back what durable storage holds (running simulations come
    back paused, `reason: restart`)."""
    started = time.perf_counter()
    found = await simulations.recover()
    if found.paused or found.completed or found.failed:
        log.info(
            "restored %d paused simulation(s) and %d result(s) in %.0f ms",
            len(found.paused),
            len(found.completed),
            (time.perf_counter() - started) * 1000,
        )
    for session_id, why in found.failed.items():
        log.error("simulation of %s could not be restored: %s", session_id, why)


def create_app(container: Container) -> Litestar:
    settings = container.settings()
    auth = container.auth_service()
    sessions = container.session_service()
    dispatcher = container.dispatcher()
    market_data = container.market_data_service()
    simulations = container.simulation_service()
    registry = container.connection_registry()
    shared: SharedStorage | None = container.shared_storage()
    metrics = container.metrics()
    live = LiveSockets()

    @post("/auth/token", status_code=200, summary="Exchange an API key for a bearer token")
    async def issue_token(
        request: Request[Any, Any, Any],
    ) -> Response[TokenResponse | ErrorResponse]:
        try:
            grant = await auth.issue_token(request.headers.get("x-api-key"))
        except AuthenticationFailed as exc:
            return Response(
                ErrorResponse(error_code=exc.code, message=exc.message), status_code=401
            )
        return Response(
            TokenResponse(
                access_token=grant.access_token,
                token_type=grant.token_type,
                expires_in=grant.expires_in,
                user_id=grant.user_id,
                plan=grant.plan.value,
            )
        )

    @get("/health", summary="Liveness and load")
    async def health() -> HealthResponse:
        return HealthResponse(
            status="ok",
            version=__version__,
            active_sessions=await sessions.stored_count(),
            active_connections=await registry.count(),
        )

    @get("/symbols", summary="Instruments and the bars stored for each (Bearer token)")
    async def symbols(
        request: Request[Any, Any, Any],
        asset_class: FromQuery[str | None] = None,
    ) -> Response[SymbolsResponse | ErrorResponse]:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            await auth.authenticate(token if scheme.lower() == "bearer" else None)
            wanted = parse_asset_class(asset_class)
        except AuthenticationFailed as exc:
            return Response(
                ErrorResponse(error_code=exc.code, message=exc.message), status_code=401
            )
        except DomainError as exc:
            return Response(
                ErrorResponse(error_code=exc.code, message=exc.message), status_code=400
            )
        listed = await market_data.instruments(wanted)
        return Response(SymbolsResponse(symbols=[instrument_data(i) for i in listed]))

    @websocket("/ws/simulate")
    async def simulate(socket: WebSocket[Any, Any, Any]) -> None:
        await serve_connection(socket, auth, dispatcher, registry, live, metrics)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        presence = asyncio.create_task(shared.keep_alive()) if shared is not None else None
        await recover_simulations(simulations)
        sweeper = asyncio.create_task(
            sweep_expired(sessions, simulations, settings.sweep_interval_seconds)
        )
        guard = asyncio.create_task(
            guard_connections(
                live,
                auth,
                recheck_seconds=settings.auth_recheck_seconds,
                idle_timeout_seconds=settings.idle_timeout_seconds,
            )
        )
        try:
            yield
        finally:
            await live.close_all("server shutting down")
            for task in (guard, sweeper, presence):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if shared is not None:  # its connections are closed, its simulations let go
                with contextlib.suppress(Exception):
                    await shared.vanish()
                await shared.aclose()

    # SIMUTRADOR_METRICS=on: GET /metrics and the request metrics' middleware.
    observed = metrics_routes(metrics, sessions, simulations, registry)
    app = Litestar(
        route_handlers=[issue_token, health, symbols, simulate, *observed.handlers],
        middleware=[*observed.middleware],
        state=State(observed.state),
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="SimuTrador", version=__version__, path="/schema"),
        # Litestar's default would configure the root logger (INFO, stderr) in whatever
        # process builds the app, an embedding notebook or test included; the program that
        # runs the server decides about logging (`simutrador serve` does).
        logging_config=None,
    )
    app.state.live_sockets = live
    app.state.container = container
    return app


def app_factory() -> Litestar:
    """For `uvicorn --factory` and `simutrador serve --reload`: settings from the environment."""
    return create_app(Container())
