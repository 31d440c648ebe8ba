"""Shared by the reliability suite: a real server on loopback (the integration harness),
plan limits raised for load, and a small async client speaking the wire protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from domain.limits import PLAN_DEFAULTS, Limits, Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory, issue_token, sample_bars, server_factory
from tests.integration.wsclient import WsClient

__all__ = [
    "ServerFactory",
    "WsClient",
    "create_data",
    "health",
    "issue_token",
    "open_client",
    "raised_limits",
    "sample_bars",
    "server_factory",
    "wait_for",
]

Reply = dict[str, Any]


def raised_limits(**enterprise: int) -> Mapping[Plan, Limits]:
    """PLAN_DEFAULTS with the enterprise plan's limits replaced, so load tests measure the
    server rather than the rate limiter; free and professional keep their defaults."""
    table = dict(PLAN_DEFAULTS)
    table[Plan.ENTERPRISE] = dataclasses.replace(PLAN_DEFAULTS[Plan.ENTERPRISE], **enterprise)
    return table


def create_data(symbols: tuple[str, ...] = ("AAPL", "MSFT"), **extra: Any) -> dict[str, Any]:
    """A `create_session` payload the shipped catalog accepts."""
    return {
        "symbols": list(symbols),
        "start_date": "2023-01-03",
        "end_date": "2023-06-30",
        "initial_capital": "100000.00",
        **extra,
    }


def health(server: EmbeddedServer) -> Reply:
    response = httpx.get(f"{server.http_url}/health", timeout=5.0)
    response.raise_for_status()
    body: Reply = response.json()
    return body


async def wait_for(
    predicate: Callable[[], bool], seconds: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll `predicate()` (sync, run in a thread so it may do blocking I/O) until true."""
    deadline = time.monotonic() + seconds
    while True:
        if await asyncio.to_thread(predicate):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(interval)


async def open_client(server: EmbeddedServer, token: str) -> WsClient:
    """A test client tuned for load: patient handshakes, no size cap, no keepalive pings."""
    return await WsClient.connect(server, token, open_timeout=20, max_size=None, ping_interval=None)
