"""The server starts, answers /health, and admits a token over a real WebSocket."""

from __future__ import annotations

import json

import httpx
import websockets

from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import issue_token


async def test_health_and_connection_ready(server: EmbeddedServer) -> None:
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{server.http_url}/health")).json()
    assert health["status"] == "ok"
    assert health["active_connections"] == 0
    token = issue_token(server, "alice")
    async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
        ready = json.loads(await ws.recv())
    assert ready["type"] == "connection_ready"
    assert ready["data"]["user_id"] == "alice"
