"""`GET /metrics` (SIMUTRADOR_METRICS=on): Litestar's Prometheus plugin for the HTTP request
metrics, plus SimuTrador's own `simutrador_*` figures, whose gauges are read from the
services at each scrape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from application.ports import ConnectionRegistry, ServerGauges, ServiceMetrics
from application.sessions import SessionService
from application.simulation import SimulationService

METRICS_PATH = "/metrics"
HTTP_PREFIX = "simutrador_http"
"""Litestar's request metrics: simutrador_http_requests_total, _request_duration_seconds…"""


@runtime_checkable
class MetricsExporter(Protocol):
    """Metrics that can be scraped (the Prometheus adapter; not the no-op one)."""

    def exposition(self, gauges: ServerGauges) -> bytes: ...


Scrape = Callable[[], Awaitable[bytes]]


class MetricsController(PrometheusController):
    """Litestar's controller, answering with the process-wide registry (its request
    metrics) followed by this app's own registry."""

    path = METRICS_PATH

    @get(include_in_schema=False)
    async def get(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        scrape: Scrape = request.app.state.metrics_scrape
        body = generate_latest(REGISTRY) + await scrape()
        return Response(body, status_code=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


@dataclass(frozen=True, slots=True)
class MetricsRoutes:
    """What the app mounts for metrics: nothing when they are off."""

    handlers: Sequence[ControllerRouterHandler] = ()
    middleware: Sequence[DefineMiddleware] = ()
    state: dict[str, Any] = field(default_factory=dict)


def metrics_routes(
    metrics: ServiceMetrics,
    sessions: SessionService,
    simulations: SimulationService,
    connections: ConnectionRegistry,
) -> MetricsRoutes:
    if not isinstance(metrics, MetricsExporter):
        return MetricsRoutes()
    exporter = metrics

    async def scrape() -> bytes:
        gauges = ServerGauges(
            sessions_by_state=await sessions.count_by_state(),
            running_simulations=simulations.running_count(),
            open_connections=await connections.count(),
        )
        return exporter.exposition(gauges)

    config = PrometheusConfig(
        app_name="simutrador",
        prefix=HTTP_PREFIX,
        # The route's template, never the path a client asked for: no session id (or any
        # other user's data) in a label, and no label per unknown path.
        group_path=True,
        exclude_unhandled_paths=True,
        # HTTP only: a WebSocket's every frame would go through the middleware, and its
        # "request duration" would be how long the connection stayed open.
        scopes={ScopeType.HTTP},
        exclude=[METRICS_PATH],
    )
    return MetricsRoutes(
        handlers=[MetricsController],
        middleware=[config.middleware],
        state={"metrics_scrape": scrape},
    )
