"""A client that floods requests and never reads its replies must not stall anyone else,
and the server must not buffer its replies without bound: once the socket buffers fill, the
server stops reading that connection (TCP back-pressure reaches the flooder), and when the
flooder reads again every reply arrives, in order."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time

import websockets
from websockets.asyncio.client import ClientConnection

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.reliability.conftest import (
    ServerFactory,
    create_data,
    health,
    issue_token,
    open_client,
    raised_limits,
    wait_for,
)

FLOOD_SECONDS = 3.0
MAX_FLOOD_FRAMES = 20_000
PAD = "x" * 4000
"""Requests padded to ~4 KB (an ignored extra field) so the socket buffers fill sooner."""
CLIENT_SOCKET_BUFFER = 64 * 1024
ROUND_TRIP_DEADLINE = 2.0
"""Generous for a shared 2-core machine; a stalled loop would blow through it."""
SERVER_BUFFER_BOUND = 1024 * 1024


async def give_sessions(server: EmbeddedServer, token: str, count: int = 10) -> None:
    """Sessions for the flooder to list: large replies fill the socket buffers sooner."""
    client = await open_client(server, token)
    for i in range(count):
        created = await client.request("create_session", create_data(metadata={"n": i}))
        assert created["type"] == "session_created"
    await client.close()


async def connect_flooder(server: EmbeddedServer, token: str) -> ClientConnection:
    """A connection with small, fixed socket buffers and no compression: loopback buffers
    autotune to tens of MB and deflate shrinks these frames a hundredfold, either of which
    would delay back-pressure by minutes. Buffers must be sized before connecting (the TCP
    window scale is agreed in the handshake)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SOCKET_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    ws = await websockets.connect(
        f"{server.ws_url}?token={token}", sock=sock, compression=None, ping_interval=None
    )
    ready = json.loads(await ws.recv())
    assert ready["type"] == "connection_ready"
    return ws


def flood_frame(n: int) -> str:
    return f'{{"type":"list_sessions","request_id":"f{n}","pad":"{PAD}"}}'


def server_write_buffers(server: EmbeddedServer) -> list[int]:
    """Bytes queued in the server's transports (the uvicorn server's live connections)."""
    uvicorn_server = server._server  # the embedded server exposes no public handle for this
    assert uvicorn_server is not None

    async def sizes() -> list[int]:
        return [
            c.transport.get_write_buffer_size()
            for c in uvicorn_server.server_state.connections
            if getattr(c, "transport", None) is not None
        ]

    return server.call(sizes())


async def test_flooder_that_never_reads_does_not_stall_others(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        plan_limits=raised_limits(messages_per_minute=10_000_000, max_active_sessions=100)
    )
    flooder_token = issue_token(server, "flooder", Plan.ENTERPRISE)
    victim = await open_client(server, issue_token(server, "victim", Plan.ENTERPRISE))
    await give_sessions(server, flooder_token)
    flooder = await connect_flooder(server, flooder_token)

    sent = 0
    last_progress = time.monotonic()
    stop = asyncio.Event()

    async def flood() -> None:
        nonlocal sent, last_progress
        while not stop.is_set() and sent < MAX_FLOOD_FRAMES:
            await flooder.send(flood_frame(sent))  # blocks once back-pressure arrives
            sent += 1
            last_progress = time.monotonic()
            await asyncio.sleep(0)  # share this (client) loop with the victim

    flooding = asyncio.create_task(flood())
    latencies: list[float] = []
    started = time.monotonic()
    session_id: str | None = None
    while time.monotonic() - started < FLOOD_SECONDS:
        t0 = time.monotonic()
        if session_id is None:
            reply = await asyncio.wait_for(
                victim.request("create_session", create_data()), ROUND_TRIP_DEADLINE
            )
            assert reply["type"] == "session_created", reply
            session_id = reply["data"]["session_id"]
        else:
            ref = {"session_id": session_id}
            reply = await asyncio.wait_for(victim.request("get_session", ref), ROUND_TRIP_DEADLINE)
            assert reply["type"] == "session_info", reply
        latencies.append(time.monotonic() - t0)
        await asyncio.sleep(0.005)

    stalled_for = time.monotonic() - last_progress
    buffers = server_write_buffers(server)
    print(
        f"\nslow consumer: flooder sent {sent} frames then blocked for {stalled_for:.2f}s; "
        f"server write buffers {sorted(buffers)} bytes; victim {len(latencies)} round trips, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert sent < MAX_FLOOD_FRAMES, "the flooder never felt back-pressure"
    assert stalled_for > 0.5, "the server kept reading a client that never reads"
    assert max(buffers) <= SERVER_BUFFER_BOUND
    assert len(latencies) >= 20

    # The flooder reads again: every reply arrives, in order, and nothing was dropped.
    stop.set()
    received = 0
    while received < sent or not flooding.done():
        reply = json.loads(await asyncio.wait_for(flooder.recv(), ROUND_TRIP_DEADLINE * 5))
        assert reply["request_id"] == f"f{received}", reply
        assert reply["type"] == "session_list"
        received += 1
    await flooding
    assert received == sent
    await flooder.close()
    await victim.close()
    await wait_for(lambda: health(server)["active_connections"] == 0, 10.0)


async def test_abandoned_flooder_is_released(server_factory: ServerFactory) -> None:
    """A flooder blocked by back-pressure that then vanishes frees its connection."""
    server = server_factory(plan_limits=raised_limits(messages_per_minute=10_000_000))
    token = issue_token(server, "flooder", Plan.ENTERPRISE)
    await give_sessions(server, token)
    ws = await connect_flooder(server, token)
    for n in range(MAX_FLOOD_FRAMES):
        try:
            await asyncio.wait_for(ws.send(flood_frame(n)), 0.5)
        except TimeoutError:
            break  # back-pressure: the server stopped reading us
    else:
        raise AssertionError("the flooder never felt back-pressure")
    ws.transport.abort()
    await wait_for(lambda: health(server)["active_connections"] == 0, 10.0)


async def test_pipelined_burst_does_not_stall_others(server_factory: ServerFactory) -> None:
    """A client that writes a large burst without waiting (but does read) delays others by
    at most the time to work through what the server read in one go: the connection loop
    answers every frame already received before it yields (uvicorn queues a whole read),
    so others wait ~100-200 ms behind a 20,000-frame burst here. Bounded, not a stall."""
    server = server_factory(plan_limits=raised_limits(messages_per_minute=10_000_000))
    victim = await open_client(server, issue_token(server, "victim", Plan.ENTERPRISE))
    burster = await connect_flooder(server, issue_token(server, "burster", Plan.ENTERPRISE))
    burst = 20_000
    frame = json.dumps({"type": "list_sessions"})

    async def drain_replies() -> None:
        for _ in range(burst):
            await burster.recv()

    async def send_burst() -> None:
        for n in range(burst):
            await burster.send(frame)
            if n % 500 == 0:
                await asyncio.sleep(0)  # let the victim's client run: we measure the server

    latencies: list[float] = []
    reading = asyncio.create_task(drain_replies())
    sending = asyncio.create_task(send_burst())
    while not reading.done():
        started = time.monotonic()
        reply = await asyncio.wait_for(victim.request("list_sessions"), ROUND_TRIP_DEADLINE)
        assert reply["type"] == "session_list"
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.005)
    await sending
    await reading
    print(
        f"\npipelined burst of {burst:,}: victim {len(latencies)} round trips meanwhile, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    await burster.close()
    await victim.close()
