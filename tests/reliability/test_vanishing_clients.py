"""Clients that vanish mid-request (TCP reset, no close frame) leak nothing on the server:
connection counts return to zero, per-connection tasks end, and the per-user connection
limit frees up for the next connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.reliability.conftest import (
    ServerFactory,
    WsClient,
    create_data,
    health,
    issue_token,
    open_client,
    raised_limits,
    wait_for,
)

SETTLE_SECONDS = 15.0


def reset(ws: ClientConnection) -> None:
    """Drop the TCP connection with a RST: no close frame, no FIN, nothing flushed."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def partial_text_frame(declared: int, sent: int) -> bytes:
    """The first `sent` payload bytes of a masked text frame announcing `declared` bytes."""
    header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", declared) + os.urandom(4)
    return header + b"x" * sent


def server_tasks(server: EmbeddedServer) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return server.call(count())


async def drop_after_request(ws: ClientConnection) -> None:
    """A create is in flight (the server may be validating or replying) when we vanish."""
    await ws.send(json.dumps({"type": "create_session", "data": create_data()}))
    reset(ws)


async def drop_mid_frame(ws: ClientConnection) -> None:
    """Half a frame on the wire: the server's parser is waiting for the rest."""
    ws.transport.write(partial_text_frame(declared=4000, sent=100))
    await asyncio.sleep(0)
    reset(ws)


async def drop_with_replies_unread(ws: ClientConnection) -> None:
    """Pipelined requests whose replies we never read: the server is blocked on a full
    send buffer when the socket disappears under it."""
    frame = json.dumps({"type": "list_sessions", "data": {}})
    for _ in range(200):
        await ws.send(frame)
    reset(ws)


async def drop_before_ready_is_read(ws: ClientConnection) -> None:
    reset(ws)


async def drop_during_handshake(server: EmbeddedServer, token: str) -> None:
    """The upgrade request is sent, then the client resets before reading the answer."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        (
            f"GET /ws/simulate?token={token} HTTP/1.1\r\nHost: {server.host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    del reader


DROPS: list[Callable[[ClientConnection], Awaitable[None]]] = [
    drop_after_request,
    drop_mid_frame,
    drop_with_replies_unread,
    drop_before_ready_is_read,
]


async def test_reset_connections_leak_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(
        plan_limits=raised_limits(max_connections=100, max_active_sessions=1000)
    )
    users = [f"vanishing-{i}" for i in range(4)]
    tokens = {user: issue_token(server, user, Plan.ENTERPRISE) for user in users}
    # Something worth listing, so unread replies fill the socket buffers quickly.
    filler = await open_client(server, tokens[users[0]])
    for i in range(20):
        metadata = {"note": "x" * 200, "i": i}
        reply = await filler.request("create_session", create_data(metadata=metadata))
        assert reply["type"] == "session_created", reply
    await filler.close()
    await wait_for(lambda: health(server)["active_connections"] == 0, SETTLE_SECONDS)
    baseline_tasks = server_tasks(server)

    async def vanish(n: int) -> None:
        user = users[n % len(users)]
        ws = await websockets.connect(f"{server.ws_url}?token={tokens[user]}", max_size=None)
        drop = DROPS[n % len(DROPS)]
        if drop is not drop_before_ready_is_read:
            assert json.loads(await ws.recv())["type"] == "connection_ready"
        await drop(ws)

    await asyncio.gather(
        *(vanish(n) for n in range(80)),
        *(drop_during_handshake(server, tokens[users[n % 4]]) for n in range(20)),
    )

    await wait_for(
        lambda: health(server)["active_connections"] == 0, SETTLE_SECONDS, what="0 connections"
    )
    registry = server.container.connection_registry()
    assert [await registry.count(user) for user in users] == [0] * len(users)
    await wait_for(
        lambda: server_tasks(server) <= baseline_tasks,
        SETTLE_SECONDS,
        what=f"server tasks back to {baseline_tasks}",
    )
    # The server still serves everyone normally.
    client = await open_client(server, tokens[users[0]])
    listed = await client.request("list_sessions")
    assert listed["type"] == "session_list"
    await client.close()


async def test_free_plan_connection_slot_frees_after_reset(server_factory: ServerFactory) -> None:
    """Free users get one connection; one that vanished must not hold it hostage."""
    server = server_factory()
    token = issue_token(server, "free-user", Plan.FREE)

    async def connect_when_slot_frees() -> WsClient:
        # The server notices the reset asynchronously; until then the slot is still taken
        # and the handshake is answered with close 4029.
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        while True:
            try:
                return await open_client(server, token)
            except websockets.ConnectionClosed as exc:
                refused = exc.rcvd.code if exc.rcvd is not None else None
                if refused != 4029:
                    raise AssertionError(f"expected 4029 while the slot is taken: {exc}") from exc
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("the vanished connection still holds the slot") from exc
            await asyncio.sleep(0.05)

    for drop in DROPS * 2:
        client = await connect_when_slot_frees()
        await drop(client.connection)
        with contextlib.suppress(websockets.ConnectionClosed):
            await client.connection.wait_closed()

    client = await connect_when_slot_frees()
    reply = await client.request("list_sessions")
    assert reply["type"] == "session_list"
    await client.close()
    await wait_for(lambda: health(server)["active_connections"] == 0, SETTLE_SECONDS)
