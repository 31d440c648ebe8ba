"""Per-user limits under real concurrency: active sessions (pipelined and raced over several
connections), sessions created per hour, and open connections per user."""

from __future__ import annotations

import asyncio
from collections import Counter

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import issue_token
from tests.integration.wsclient import (
    Message,
    WsClient,
    error_code,
    expect_refused,
    frame,
    session_request,
    token_url,
    wait_for_health,
)

CLOSE_TOO_MANY_CONNECTIONS = 4029


def outcome(reply: Message) -> str:
    return reply["type"] if reply["type"] != "session_error" else error_code(reply)


async def test_pipelined_creates_on_the_free_plan_make_exactly_one_session(
    server: EmbeddedServer,
) -> None:
    async with await WsClient.connect(server, issue_token(server, "piper", Plan.FREE)) as ws:
        replies = await ws.pipeline(
            frame("create_session", session_request(), f"c{i}") for i in range(8)
        )

        assert [r["request_id"] for r in replies] == [f"c{i}" for i in range(8)]
        assert Counter(outcome(r) for r in replies) == {
            "session_created": 1,
            "SESSION_LIMIT_EXCEEDED": 7,
        }
        assert all(
            r["data"]["details"]["limit"] == "active_sessions"
            for r in replies
            if r["type"] == "session_error"
        )
        listed = await ws.request("list_sessions")
        assert len(listed["data"]["sessions"]) == 1


async def test_creates_raced_over_five_connections_respect_the_limit(
    server: EmbeddedServer,
) -> None:
    """20 creates from 5 connections of one professional user (limit 10), all in flight at
    once: the limit check and the insert are one step, so exactly 10 get through."""
    token = issue_token(server, "racer", Plan.PROFESSIONAL)
    clients = [await WsClient.connect(server, token) for _ in range(5)]
    try:

        async def burst(client: WsClient, n: int) -> list[Message]:
            return await client.pipeline(
                frame("create_session", session_request(), f"c{n}-{i}") for i in range(4)
            )

        results = await asyncio.gather(*(burst(c, n) for n, c in enumerate(clients)))
        outcomes = Counter(outcome(r) for replies in results for r in replies)
        assert outcomes == {"session_created": 10, "SESSION_LIMIT_EXCEEDED": 10}

        created = {
            r["data"]["session_id"]
            for replies in results
            for r in replies
            if r["type"] == "session_created"
        }
        for client in clients:
            listed = await client.request("list_sessions")
            assert {s["session_id"] for s in listed["data"]["sessions"]} == created
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_sessions_per_hour_limit(server: EmbeddedServer) -> None:
    async with await WsClient.connect(server, issue_token(server, "churner", Plan.FREE)) as ws:
        first = await ws.create_session()
        # Refused for the active limit: must not use up the hourly budget.
        assert error_code(await ws.create_session()) == "SESSION_LIMIT_EXCEEDED"
        await ws.request("delete_session", {"session_id": first["data"]["session_id"]})
        for _ in range(4):  # 5 created in all: the free plan's hourly budget
            created = await ws.create_session()
            assert created["type"] == "session_created", created
            await ws.request("delete_session", {"session_id": created["data"]["session_id"]})

        refused = await ws.create_session()

        assert refused["type"] == "session_error"
        assert error_code(refused) == "SESSION_LIMIT_EXCEEDED"
        details = refused["data"]["details"]
        assert details["limit"] == "sessions_per_hour"
        assert details["max"] == 5
        assert 0 < details["retry_after_ms"] <= 3600 * 1000 + 1
        assert (await ws.request("list_sessions"))["data"]["sessions"] == []


async def test_connection_limit_refuses_then_readmits(server: EmbeddedServer) -> None:
    token = issue_token(server, "solo", Plan.FREE)
    first = await WsClient.connect(server, token)
    assert first.ready["data"]["limits"]["max_connections"] == 1

    close = await expect_refused(token_url(server, token))

    assert close.code == CLOSE_TOO_MANY_CONNECTIONS
    assert "connection" in close.reason.lower()
    # The refused attempt did not disturb the admitted connection.
    assert (await first.request("list_sessions"))["type"] == "session_list"
    await wait_for_health(server, "active_connections", 1)

    await first.close()
    await wait_for_health(server, "active_connections", 0)

    async with await WsClient.connect(server, token) as again:
        assert (await again.request("list_sessions"))["type"] == "session_list"


async def test_connection_limit_is_per_user(server: EmbeddedServer) -> None:
    async with (
        await WsClient.connect(server, issue_token(server, "one", Plan.FREE)),
        await WsClient.connect(server, issue_token(server, "two", Plan.FREE)) as other,
    ):
        assert (await other.request("list_sessions"))["type"] == "session_list"
        await wait_for_health(server, "active_connections", 2)


async def test_professional_user_may_open_ten_connections(server: EmbeddedServer) -> None:
    token = issue_token(server, "busy", Plan.PROFESSIONAL)
    clients = [await WsClient.connect(server, token) for _ in range(10)]
    try:
        close = await expect_refused(token_url(server, token))
        assert close.code == CLOSE_TOO_MANY_CONNECTIONS
    finally:
        await asyncio.gather(*(c.close() for c in clients))
