"""`GET /metrics` over a real server on loopback: SimuTrador's own figures move with what
clients do (sessions created and refused by code, validations, connections by close code,
ticks and simulations), the request metrics come from Litestar's plugin, nothing in them
names a user or a session, and SIMUTRADOR_METRICS=off serves none."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory, issue_token
from tests.integration.wsclient import (
    SIM_STEP_END,
    WsClient,
    error_code,
    expect_refused,
    sim_request,
    token_url,
    wait_for,
)

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]

_users = itertools.count(1)
SHORT = {"start_date": "2023-01-03", "end_date": "2023-01-13"}
SHORT_TICKS = 9


async def scrape(server: EmbeddedServer) -> tuple[str, Samples]:
    """The /metrics text and its samples: (name, labels) → value."""
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{server.http_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def connect(server: EmbeddedServer) -> WsClient:
    token = await asyncio.to_thread(issue_token, server, f"metrics-user{next(_users)}")
    return await WsClient.connect(server, token)


async def test_a_created_session_moves_its_counters(shared_server: EmbeddedServer) -> None:
    _, before = await scrape(shared_server)
    async with await connect(shared_server) as ws:
        reply = await ws.create_session(symbols=["MSFT"], start_date="2022-02-01")
        assert reply["type"] == "session_created", reply
        again = await ws.create_session(symbols=["MSFT"], start_date="2022-02-01")
        assert again["type"] == "session_created", again
    _, after = await scrape(shared_server)

    assert value(after, "simutrador_sessions_created_total") == (
        value(before, "simutrador_sessions_created_total") + 2
    )
    assert value(after, "simutrador_sessions", state="ready") == (
        value(before, "simutrador_sessions", state="ready") + 2
    )
    validations = "simutrador_session_validation_seconds_count"
    assert value(after, validations) == value(before, validations) + 2
    # The same request twice: computed once, then answered from the cache.
    misses, hits = (
        "simutrador_validation_cache_misses_total",
        "simutrador_validation_cache_hits_total",
    )
    assert value(after, misses) == value(before, misses) + 1
    assert value(after, hits) == value(before, hits) + 1


@pytest.mark.parametrize(
    ("request_data", "code"),
    [
        ({"symbols": ["NOPE"]}, "INVALID_SYMBOL"),  # refused by the service (catalog)
        ({"start_date": "2023-06-30", "end_date": "2023-01-03"}, "INVALID_DATE_RANGE"),
        ({"initial_capital": "10"}, "INSUFFICIENT_CAPITAL"),  # refused before the service
    ],
)
async def test_a_refused_session_moves_its_codes_counter(
    shared_server: EmbeddedServer, request_data: dict[str, object], code: str
) -> None:
    _, before = await scrape(shared_server)
    async with await connect(shared_server) as ws:
        reply = await ws.create_session(**request_data)
    assert reply["type"] == "session_error", reply
    assert error_code(reply) == code, reply
    _, after = await scrape(shared_server)

    refused = "simutrador_sessions_refused_total"
    assert value(after, refused, code=code) == value(before, refused, code=code) + 1
    assert value(after, "simutrador_sessions_created_total") == value(
        before, "simutrador_sessions_created_total"
    )


async def test_connections_are_counted_open_and_by_close_code(
    shared_server: EmbeddedServer,
) -> None:
    closed = "simutrador_connections_closed_total"
    _, before = await scrape(shared_server)
    ws = await connect(shared_server)
    _, during = await scrape(shared_server)
    assert value(during, "simutrador_open_connections") == (
        value(before, "simutrador_open_connections") + 1
    )
    assert value(during, "simutrador_connections_opened_total") == (
        value(before, "simutrador_connections_opened_total") + 1
    )
    await ws.close()
    close = await expect_refused(token_url(shared_server, "not-a-token"))
    assert close.code == 4001

    async def counted() -> bool:
        _, now = await scrape(shared_server)
        return value(now, closed, code="1000") == value(before, closed, code="1000") + 1

    await wait_for(counted, what="the client's close (1000) counted")
    _, after = await scrape(shared_server)
    assert value(after, closed, code="4001") == value(before, closed, code="4001") + 1
    assert value(after, "simutrador_open_connections") == value(
        before, "simutrador_open_connections"
    )


async def test_ticks_of_a_simulation_are_counted(shared_server: EmbeddedServer) -> None:
    _, before = await scrape(shared_server)
    async with await connect(shared_server) as ws:
        created = await ws.create_session(**SHORT)
        session_id = created["data"]["session_id"]
        step = await sim_request(ws, "start_simulation", {"session_id": session_id})
        _, during = await scrape(shared_server)
        while step[-1]["type"] == "tick":
            data = {"session_id": session_id, "sequence_id": step[-1]["data"]["sequence_id"]}
            step = await sim_request(ws, "tick_ack", data, SIM_STEP_END)
        assert step[-1]["type"] == "simulation_complete", step
    _, after = await scrape(shared_server)

    ticks = "simutrador_ticks_processed_total"
    assert value(after, ticks) == value(before, ticks) + SHORT_TICKS
    assert value(during, "simutrador_running_simulations") >= 1
    assert value(after, "simutrador_sessions", state="completed") == (
        value(before, "simutrador_sessions", state="completed") + 1
    )


async def test_no_label_names_a_user_or_a_session(shared_server: EmbeddedServer) -> None:
    user = f"private-user-{next(_users)}"
    token = await asyncio.to_thread(issue_token, shared_server, user)
    async with await WsClient.connect(shared_server, token) as ws:
        created = await ws.create_session()
        session_id = created["data"]["session_id"]
        await ws.request("get_session", {"session_id": session_id})
    async with httpx.AsyncClient(trust_env=False) as client:  # a REST call with the token
        await client.get(
            f"{shared_server.http_url}/symbols", headers={"Authorization": f"Bearer {token}"}
        )
    text, samples = await scrape(shared_server)

    assert user not in text
    assert session_id not in text
    assert token not in text
    # Request metrics are labelled by route, and the scrape itself is not among them.
    paths = {dict(labels).get("path") for (name, labels) in samples if "http" in name}
    assert "/symbols" in paths
    assert "/metrics" not in paths


async def test_request_metrics_come_from_the_plugin(shared_server: EmbeddedServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.get(f"{shared_server.http_url}/health")).raise_for_status()
    _, samples = await scrape(shared_server)
    health = value(
        samples,
        "simutrador_http_requests_total",
        app_name="simutrador",
        method="GET",
        path="/health",
        status_code="200",
    )
    assert health >= 1
    assert value(samples, "simutrador_process_resident_memory_bytes") > 0


async def test_metrics_off_serves_none(server_factory: ServerFactory) -> None:
    server = server_factory(metrics=False)
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{server.http_url}/metrics")
        health = await client.get(f"{server.http_url}/health")
    assert response.status_code == 404
    assert health.status_code == 200
