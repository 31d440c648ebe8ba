"""Server life cycle: idle sessions expire and are swept, open sockets get 1001 on shutdown,
and bearer tokens never reach the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory, build_container, issue_token
from tests.integration.wsclient import (
    WsClient,
    error_code,
    expect_refused,
    health,
    token_url,
    wait_for_health,
)

TIMEOUT_MINUTES = 0.02  # 1.2 s of inactivity: short, yet far above a request's time on a busy CI
TIMEOUT_SECONDS = TIMEOUT_MINUTES * 60
SERVER_LOGGERS = ("uvicorn", "litestar", "simutrador")
"""The test's own client logs its request line (token included) at debug: not the server."""


async def test_idle_session_is_swept_and_then_not_found(server_factory: ServerFactory) -> None:
    server = server_factory(session_timeout_minutes=TIMEOUT_MINUTES, sweep_interval_seconds=0.05)
    async with await WsClient.connect(server, issue_token(server, "idle")) as ws:
        assert ws.ready["data"]["session_timeout_minutes"] == TIMEOUT_MINUTES
        created = await ws.create_session()
        session_id = created["data"]["session_id"]
        expires = datetime.fromisoformat(created["data"]["expires_at"])
        updated = datetime.fromisoformat(created["data"]["updated_at"])
        assert (expires - updated).total_seconds() == pytest.approx(TIMEOUT_SECONDS)
        assert (await health(server))["active_sessions"] == 1

        waited = await wait_for_health(server, "active_sessions", 0)

        assert waited > TIMEOUT_SECONDS / 2  # it expired, it was not dropped at once
        reply = await ws.request("get_session", {"session_id": session_id})
        assert reply["type"] == "session_error"
        assert error_code(reply) == "SESSION_NOT_FOUND"
        assert (await ws.request("list_sessions"))["data"]["sessions"] == []


async def test_a_session_in_use_survives_the_sweep(server_factory: ServerFactory) -> None:
    server = server_factory(session_timeout_minutes=TIMEOUT_MINUTES, sweep_interval_seconds=0.05)
    async with await WsClient.connect(server, issue_token(server, "busy")) as ws:
        kept = (await ws.create_session())["data"]["session_id"]
        await ws.create_session()  # left idle
        assert (await health(server))["active_sessions"] == 2

        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * TIMEOUT_SECONDS
        while loop.time() < until:  # touch well within the timeout, for three timeouts
            reply = await ws.request("get_session", {"session_id": kept})
            assert reply["type"] == "session_info", reply
            await asyncio.sleep(TIMEOUT_SECONDS / 6)

        # The idle one is gone; the one in use is still there.
        assert (await health(server))["active_sessions"] == 1
        listed = await ws.request("list_sessions")
        assert [s["session_id"] for s in listed["data"]["sessions"]] == [kept]
        # Once left alone it expires too.
        await wait_for_health(server, "active_sessions", 0)


async def test_expired_session_is_refused_before_the_sweep_runs(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(session_timeout_minutes=TIMEOUT_MINUTES, sweep_interval_seconds=600)
    async with await WsClient.connect(server, issue_token(server, "late", Plan.FREE)) as ws:
        session_id = (await ws.create_session())["data"]["session_id"]

        await asyncio.sleep(TIMEOUT_SECONDS + 0.1)  # any request now would touch it

        reply = await ws.request("get_session", {"session_id": session_id})
        assert error_code(reply) == "SESSION_NOT_FOUND"
        assert (await ws.request("list_sessions"))["data"]["sessions"] == []
        # It no longer counts against the free plan's single active session...
        assert (await ws.create_session())["type"] == "session_created"
        # ...though its memory waits for the sweep.
        assert (await health(server))["active_sessions"] == 2


async def test_shutdown_closes_open_connections_with_1001(server_factory: ServerFactory) -> None:
    server = server_factory()
    ws = await WsClient.connect(server, issue_token(server, "leaver"))
    other = await WsClient.connect(server, issue_token(server, "leaver2"))
    assert (await ws.request("list_sessions"))["type"] == "session_list"

    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    for client in (ws, other):
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        assert closed.value.rcvd.reason == "server shutting down"
    async with asyncio.timeout(10):
        await stopping


# ---------------------------------------------------------------- logging


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def info_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A server logging at info, where uvicorn writes each WebSocket's URL."""
    server = EmbeddedServer(build_container(tmp_path / "home"), log_level="info").start()
    yield server
    server.stop()


async def test_tokens_never_reach_the_logs(
    info_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    collect = _Collect()
    # uvicorn's loggers do not propagate to the root logger that caplog listens on.
    watched = [logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")]
    for logger in watched:
        logger.addHandler(collect)
    try:
        token = issue_token(info_server, "logged")
        async with await WsClient.connect(info_server, token) as ws:
            await ws.request("list_sessions")
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        close = await expect_refused(token_url(info_server, forged))
        assert close.code == 4001
        await wait_for_health(info_server, "active_connections", 0)
    finally:
        for logger in watched:
            logger.removeHandler(collect)

    server_records = [
        r for r in [*collect.records, *caplog.records] if r.name.startswith(SERVER_LOGGERS)
    ]
    lines = [r.getMessage() for r in server_records]
    websocket_lines = [line for line in lines if "/ws/simulate" in line]
    assert len(websocket_lines) >= 2, lines  # the test saw the lines that carry the URL
    assert all("token=[redacted]" in line for line in websocket_lines), websocket_lines
    for secret in (token, forged, token.split(".")[2]):
        assert not any(secret in line for line in lines)
