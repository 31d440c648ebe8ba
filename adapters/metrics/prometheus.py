"""`ServiceMetrics` as Prometheus metrics (prometheus_client), every one named
`simutrador_*`, in a registry of this object's own: each server app in a process exports
its own figures, and two apps (tests, an embedding program) never collide. No label carries
anything about a user: error codes, close codes, states and cache outcomes only."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from application.ports import ServerGauges
from domain.session import SessionState

PREFIX = "simutrador"

VALIDATION_BUCKETS = (
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
"""Seconds: a cached validation takes tens of µs, a cold one over years of bars some ms."""

KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 1012})
"""Standard close codes kept as they are; SimuTrador's own (4000-4999) too. Any other code a
client closes with is counted as `other`, so a client cannot grow the label set."""


def close_code_label(code: int) -> str:
    if code in KNOWN_CLOSE_CODES or 4000 <= code <= 4999:
        return str(code)
    return "other"


class _TickCounter(Collector):
    """Ticks delivered, counted with a plain integer: it moves on every tick of every
    simulation, where even a counter's lock would show. Read at scrape time."""

    def __init__(self) -> None:
        self.value = 0

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            f"{PREFIX}_ticks_processed", "Ticks delivered by the simulations of this process"
        )
        family.add_metric([], self.value)
        yield family


class PrometheusMetrics:
    """Counts what the services report (`ServiceMetrics`) and, at each scrape, the gauges
    the server reads (`exposition`)."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, *, process: bool = True) -> None:
        self.registry = registry = CollectorRegistry()
        self._created = Counter(f"{PREFIX}_sessions_created", "Sessions created", registry=registry)
        self._refused = Counter(
            f"{PREFIX}_sessions_refused",
            "create_session requests refused, by error code",
            ["code"],
            registry=registry,
        )
        self._validation = Histogram(
            f"{PREFIX}_session_validation_seconds",
            "Time to check one create_session (parameters and market data)",
            buckets=VALIDATION_BUCKETS,
            registry=registry,
        )
        self._cache_hits = Counter(
            f"{PREFIX}_validation_cache_hits",
            "Market-data validations answered from the cache",
            registry=registry,
        )
        self._cache_misses = Counter(
            f"{PREFIX}_validation_cache_misses",
            "Market-data validations computed (not in the cache, or expired)",
            registry=registry,
        )
        self._started = Counter(
            f"{PREFIX}_simulations_started", "Simulations started", registry=registry
        )
        self._completed = Counter(
            f"{PREFIX}_simulations_completed", "Simulations completed", registry=registry
        )
        self._failed = Counter(
            f"{PREFIX}_simulations_failed",
            "Simulations that failed (session moved to error)",
            registry=registry,
        )
        self._ticks = _TickCounter()
        registry.register(self._ticks)
        self._sweeps = Counter(
            f"{PREFIX}_expiry_sweeps", "Sweeps of idle sessions run", registry=registry
        )
        self._expired = Counter(
            f"{PREFIX}_sessions_expired",
            "Sessions removed by the sweep after their idle timeout",
            registry=registry,
        )
        self._opened = Counter(
            f"{PREFIX}_connections_opened", "WebSocket connections admitted", registry=registry
        )
        self._closed = Counter(
            f"{PREFIX}_connections_closed",
            "WebSocket connections ended (admitted or refused), by close code",
            ["code"],
            registry=registry,
        )
        self._sessions = Gauge(
            f"{PREFIX}_sessions",
            "Stored sessions by state (with shared storage, every process's: use max, not sum)",
            ["state"],
            registry=registry,
        )
        self._running = Gauge(
            f"{PREFIX}_running_simulations",
            "Simulations held by this process (running or paused)",
            registry=registry,
        )
        self._open = Gauge(
            f"{PREFIX}_open_connections",
            "WebSocket connections open on this process",
            registry=registry,
        )
        if process:  # simutrador_process_resident_memory_bytes, CPU, open files (Linux)
            ProcessCollector(namespace=PREFIX, registry=registry)

    # ------------------------------------------------------------ ServiceMetrics

    def session_created(self) -> None:
        self._created.inc()

    def session_refused(self, code: str) -> None:
        self._refused.labels(code).inc()

    def validation_timed(self, seconds: float) -> None:
        self._validation.observe(seconds)

    def validation_cache(self, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()

    def simulation_started(self) -> None:
        self._started.inc()

    def simulation_completed(self) -> None:
        self._completed.inc()

    def simulation_failed(self) -> None:
        self._failed.inc()

    def ticks_processed(self, count: int) -> None:
        self._ticks.value += count

    def expiry_swept(self, removed: int) -> None:
        self._sweeps.inc()
        if removed:
            self._expired.inc(removed)

    def connection_opened(self) -> None:
        self._opened.inc()

    def connection_closed(self, code: int) -> None:
        self._closed.labels(close_code_label(code)).inc()

    # ------------------------------------------------------------ exposition

    def exposition(self, gauges: ServerGauges) -> bytes:
        """The Prometheus text format of every metric here, gauges set from `gauges`."""
        for state in SessionState:
            self._sessions.labels(state.value).set(gauges.sessions_by_state.get(state, 0))
        self._running.set(gauges.running_simulations)
        self._open.set(gauges.open_connections)
        return generate_latest(self.registry)
