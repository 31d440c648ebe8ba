"""What the services report to the metrics port (`ServiceMetrics`), and how the Prometheus
adapter exposes it: counters per event, refusals by code, gauges set at scrape time,
close codes a client cannot multiply, and the per-state count of each repository."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.metrics.prometheus import PrometheusMetrics, close_code_label
from adapters.storage.memory import InMemorySessionRepository
from adapters.storage.redis import RedisSessionRepository
from adapters.storage.sqlite import SqliteSessionRepository
from application.ports import ServerGauges, SessionRepository
from domain.errors import DomainError
from domain.limits import Plan
from domain.session import SessionState
from tests.fakes import (
    FakeClock,
    RecordingMetrics,
    limits_for,
    make_service,
    principal,
    session_params,
)

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


NO_GAUGES = ServerGauges({}, 0, 0)


# ---------------------------------------------------------------- the services report


async def test_a_created_session_is_reported_with_its_validation() -> None:
    metrics = RecordingMetrics()
    service = make_service(metrics=metrics)

    await service.create(principal(), session_params())
    await service.create(principal(), session_params())

    assert metrics.count("session_created") == 2
    assert metrics.count("session_refused") == 0
    assert metrics.count("validation_timed") == 2
    # The same request twice: the second is answered from the validation cache.
    assert [a for e, a in metrics.events if e == "validation_cache"] == [False, True]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (lambda: session_params(symbols=("NOPE",)), "INVALID_SYMBOL"),
        (lambda: session_params(initial_capital="5"), "INSUFFICIENT_CAPITAL"),
        (lambda: session_params(initial_capital="1e12"), "EXCESSIVE_CAPITAL"),
    ],
)
async def test_a_refused_session_is_reported_with_its_code(params: object, code: str) -> None:
    metrics = RecordingMetrics()
    service = make_service(metrics=metrics)

    with pytest.raises(DomainError) as refused:
        await service.create(principal(), params())  # type: ignore[operator]

    assert refused.value.code == code
    assert metrics.count("session_refused", code) == 1
    assert metrics.count("session_created") == 0


async def test_the_active_session_limit_is_reported_as_a_refusal() -> None:
    metrics = RecordingMetrics()
    service = make_service(metrics=metrics)
    owner = principal(Plan.FREE, limits=limits_for(Plan.FREE, max_active_sessions=1))

    await service.create(owner, session_params())
    with pytest.raises(DomainError):
        await service.create(owner, session_params())

    assert metrics.count("session_created") == 1
    assert metrics.count("session_refused", "SESSION_LIMIT_EXCEEDED") == 1


async def test_the_expiry_sweep_reports_what_it_removed() -> None:
    metrics = RecordingMetrics()
    clock = FakeClock()
    service = make_service(metrics=metrics, clock=clock)
    await service.create(principal(), session_params())
    await service.create(principal(), session_params())

    await service.expire_idle()
    clock.advance(minutes=61)
    await service.expire_idle()

    assert [a for e, a in metrics.events if e == "expiry_swept"] == [0, 2]


# ---------------------------------------------------------------- the Prometheus adapter


def test_prometheus_counts_each_report() -> None:
    metrics = PrometheusMetrics(process=False)
    metrics.session_created()
    metrics.session_refused("INVALID_SYMBOL")
    metrics.session_refused("INVALID_SYMBOL")
    metrics.session_refused("SESSION_LIMIT_EXCEEDED")
    metrics.validation_timed(0.002)
    metrics.validation_cache(hit=True)
    metrics.validation_cache(hit=False)
    metrics.validation_cache(hit=False)
    metrics.simulation_started()
    metrics.simulation_completed()
    metrics.simulation_failed()
    metrics.ticks_processed(5)
    metrics.ticks_processed(1)
    metrics.expiry_swept(3)
    metrics.expiry_swept(0)
    metrics.connection_opened()
    metrics.connection_closed(1000)
    metrics.connection_closed(4001)

    got = samples_of(metrics.exposition(NO_GAUGES))

    assert value(got, "simutrador_sessions_created_total") == 1
    assert value(got, "simutrador_sessions_refused_total", code="INVALID_SYMBOL") == 2
    assert value(got, "simutrador_sessions_refused_total", code="SESSION_LIMIT_EXCEEDED") == 1
    assert value(got, "simutrador_session_validation_seconds_count") == 1
    assert value(got, "simutrador_session_validation_seconds_sum") == pytest.approx(0.002)
    assert value(got, "simutrador_session_validation_seconds_bucket", le="0.0025") == 1
    assert value(got, "simutrador_session_validation_seconds_bucket", le="0.001") == 0
    assert value(got, "simutrador_validation_cache_hits_total") == 1
    assert value(got, "simutrador_validation_cache_misses_total") == 2
    assert value(got, "simutrador_simulations_started_total") == 1
    assert value(got, "simutrador_simulations_completed_total") == 1
    assert value(got, "simutrador_simulations_failed_total") == 1
    assert value(got, "simutrador_ticks_processed_total") == 6
    assert value(got, "simutrador_expiry_sweeps_total") == 2
    assert value(got, "simutrador_sessions_expired_total") == 3
    assert value(got, "simutrador_connections_opened_total") == 1
    assert value(got, "simutrador_connections_closed_total", code="1000") == 1
    assert value(got, "simutrador_connections_closed_total", code="4001") == 1


def test_gauges_are_what_the_scrape_read() -> None:
    metrics = PrometheusMetrics(process=False)
    gauges = ServerGauges({SessionState.READY: 7, SessionState.COMPLETED: 2}, 3, 4)

    got = samples_of(metrics.exposition(gauges))

    assert value(got, "simutrador_sessions", state="ready") == 7
    assert value(got, "simutrador_sessions", state="completed") == 2
    assert value(got, "simutrador_sessions", state="running") == 0  # every state, always
    assert value(got, "simutrador_running_simulations") == 3
    assert value(got, "simutrador_open_connections") == 4

    later = samples_of(metrics.exposition(ServerGauges({SessionState.READY: 1}, 0, 0)))
    assert value(later, "simutrador_sessions", state="completed") == 0
    assert value(later, "simutrador_open_connections") == 0


def test_the_process_memory_is_exported() -> None:
    got = samples_of(PrometheusMetrics().exposition(NO_GAUGES))
    assert value(got, "simutrador_process_resident_memory_bytes") > 1_000_000


def test_two_adapters_in_one_process_keep_their_own_counts() -> None:
    first, second = PrometheusMetrics(process=False), PrometheusMetrics(process=False)
    first.session_created()
    got = samples_of(second.exposition(NO_GAUGES))
    assert value(got, "simutrador_sessions_created_total") == 0


def test_a_client_cannot_grow_the_close_code_labels() -> None:
    assert close_code_label(1000) == "1000"
    assert close_code_label(4001) == "4001"
    assert close_code_label(3999) == "other"
    assert close_code_label(1234) == "other"


# ---------------------------------------------------------------- sessions per state


@pytest.fixture(params=["memory", "sqlite", "redis"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> SessionRepository:
    if request.param == "memory":
        return InMemorySessionRepository()
    if request.param == "redis":
        return RedisSessionRepository(request.getfixturevalue("redis_database"))
    return SqliteSessionRepository(tmp_path / "sessions.db")


async def test_sessions_are_counted_per_state(repository: SessionRepository) -> None:
    clock = FakeClock()
    service = make_service(repository=repository, clock=clock)
    owner = principal()
    ids = [(await service.create(owner, session_params())).id for _ in range(4)]
    await service.change_state(owner, ids[0], SessionState.RUNNING)
    await service.change_state(owner, ids[1], SessionState.RUNNING)
    await service.change_state(owner, ids[1], SessionState.COMPLETED)
    await service.fail(owner, ids[2], "broken")

    counted = await service.count_by_state()

    assert counted == {
        SessionState.INITIALIZING: 0,
        SessionState.READY: 1,
        SessionState.RUNNING: 1,
        SessionState.PAUSED: 0,
        SessionState.COMPLETED: 1,
        SessionState.ERROR: 1,
    }


async def test_metadata_cannot_pass_for_a_state(repository: SessionRepository) -> None:
    service = make_service(repository=repository)
    params = session_params(metadata={"state": "running", "note": '"state":"error"'})
    await service.create(principal(), params)

    counted = await service.count_by_state()

    assert counted[SessionState.READY] == 1
    assert sum(counted.values()) == 1
