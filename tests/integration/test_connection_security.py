"""Open connections are held to the rules of new ones, and no client can pin the server's
sockets or spam its log: a token that expires or a key that is revoked closes the socket
with 4001; silent connections are closed (before and after the upgrade); an oversized
upgrade request is answered at once; invalid UTF-8 is one warning line, no traceback."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import TEST_JWT_SECRET, Records, ServerFactory, issue_token
from tests.integration.test_ws_tokens import claims_for, issue_token_for, new_key, sign
from tests.integration.wsclient import (
    WsClient,
    health,
    sim_request,
    wait_for,
    wait_for_health,
)

CLOSE_UNAUTHORIZED = 4001
CLOSE_NORMAL = 1000
CLOSE_INVALID_DATA = 1007


async def closed_by_server(client: WsClient, within: float) -> tuple[Close, float]:
    """Read (and drop) frames until the server closes; its close frame and the seconds it
    took. Fails if the connection is still open after `within` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            await client.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                raise AssertionError("dropped without a close frame") from exc
            return exc.rcvd, time.monotonic() - started
        except TimeoutError:
            continue
    raise AssertionError(f"the connection was still open after {within} s")


# ---------------------------------------------------------------- 4001 on an open connection


async def test_open_connection_is_closed_when_its_token_expires(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(token_ttl_seconds=2, auth_recheck_seconds=0.2)
    token = issue_token(server, "expiring")
    async with await WsClient.connect(server, token) as client:
        assert (await client.request("list_sessions"))["type"] == "session_list"
        close, waited = await closed_by_server(client, within=5)
    assert close.code == CLOSE_UNAUTHORIZED
    assert "expired" in close.reason
    assert waited < 3.5  # exp is at most 2 s away, re-checked every 0.2 s
    await wait_for_health(server, "active_connections", 0)


async def test_a_longer_signed_exp_is_cut_to_the_servers_token_lifetime(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(token_ttl_seconds=2, auth_recheck_seconds=0.2)
    now = int(time.time())
    token = sign(claims_for(new_key(server), iat=now, exp=now + 30 * 86400))
    async with await WsClient.connect(server, token) as client:
        close, waited = await closed_by_server(client, within=5)
    assert close.code == CLOSE_UNAUTHORIZED
    assert "expired" in close.reason
    assert waited < 3.5


async def test_revocation_from_the_cli_in_another_process_closes_the_connection(
    server_factory: ServerFactory,
) -> None:
    """With the default re-check interval; the running simulation is paused, not lost."""
    server = server_factory()
    key = new_key(server)
    async with await WsClient.connect(server, issue_token_for(server, key)) as client:
        sid = (await client.create_session())["data"]["session_id"]
        started = await sim_request(client, "start_simulation", {"session_id": sid})
        tick = started[-1]["data"]
        assert tick["sequence_id"] == 1

        revoke_in_another_process(server.container.settings().home, key.key_id)
        close, waited = await closed_by_server(client, within=6)
    assert close.code == CLOSE_UNAUTHORIZED
    assert "revoked" in close.reason
    assert waited < 4  # default SIMUTRADOR_AUTH_RECHECK_SECONDS is 2

    async with await WsClient.connect(server, issue_token(server, key.user_id)) as again:
        replies = await sim_request(
            again, "resume_session", {"session_id": sid, "last_sequence_id": 1}
        )
        assert [r["type"] for r in replies] == ["state_sync", "tick"]
        assert replies[-1]["data"] == tick  # the pending tick again: nothing was lost


def revoke_in_another_process(home: Path, key_id: str) -> None:
    env = {**os.environ, "SIMUTRADOR_HOME": str(home), "SIMUTRADOR_JWT_SECRET": TEST_JWT_SECRET}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("simutrador")), "keys", "revoke", key_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- idle connections


async def test_a_silent_websocket_is_closed_after_the_idle_timeout(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(idle_timeout_seconds=1)
    async with await WsClient.connect(server, issue_token(server, "quiet")) as client:
        close, waited = await closed_by_server(client, within=5)
    assert close.code == CLOSE_NORMAL
    assert "Idle" in close.reason
    assert 0.8 < waited < 2.5
    await wait_for_health(server, "active_connections", 0)


async def test_a_talking_websocket_is_not_idle(server_factory: ServerFactory) -> None:
    server = server_factory(idle_timeout_seconds=1)
    async with await WsClient.connect(server, issue_token(server, "chatty")) as client:
        for _ in range(8):  # 2.4 s: more than twice the idle timeout
            assert (await client.request("list_sessions"))["type"] == "session_list"
            await asyncio.sleep(0.3)
        assert (await health(server))["active_connections"] == 1


async def test_a_tick_awaiting_its_ack_is_not_idleness(server_factory: ServerFactory) -> None:
    """The ack timeout governs a connection driving a simulation; once it pauses the run,
    the (already long) silence closes the connection."""
    server = server_factory(idle_timeout_seconds=0.5, tick_timeout_seconds=2)
    async with await WsClient.connect(server, issue_token(server, "thinker")) as client:
        sid = (await client.create_session())["data"]["session_id"]
        await sim_request(client, "start_simulation", {"session_id": sid})
        started = time.monotonic()
        paused = await client.recv()  # the connection outlives the idle timeout meanwhile
        assert paused["type"] == "simulation_paused"
        assert paused["data"]["reason"] == "ack_timeout"
        assert time.monotonic() - started > 1.5
        close, _ = await closed_by_server(client, within=3)
    assert close.code == CLOSE_NORMAL


# ---------------------------------------------------------------- raw sockets


def raw_connection(server: EmbeddedServer, timeout: float = 2.0) -> socket.socket:
    connection = socket.create_connection((server.host, server.port), timeout=timeout)
    connection.settimeout(timeout)
    return connection


def upgrade_request(target: str, extra_headers: str = "") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    ).encode()


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails (socket timeout) if it does not."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize(
    ("where", "status"),
    [("query", b"414"), ("header", b"431")],
)
def test_an_oversized_upgrade_request_is_answered_at_once(
    server: EmbeddedServer, where: str, status: bytes
) -> None:
    """A request line or a header over 8 KiB is refused by the WebSocket layer: a reply,
    then a close (the client used to wait for ever)."""
    token = "a" * 9_000
    if where == "header":
        request = upgrade_request("/ws/simulate", f"Authorization: Bearer {token}\r\n")
    else:
        request = upgrade_request(f"/ws/simulate?token={token}")
    with raw_connection(server, timeout=2.0) as connection:
        connection.sendall(request)
        reply = read_until_closed(connection)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:80]


def test_a_connection_that_sends_nothing_is_closed(server_factory: ServerFactory) -> None:
    server = server_factory(handshake_timeout_seconds=0.5)
    with raw_connection(server, timeout=3.0) as connection:
        started = time.monotonic()
        assert read_until_closed(connection) == b""
        assert 0.4 < time.monotonic() - started < 2.0


def test_a_request_head_sent_too_slowly_is_closed(server_factory: ServerFactory) -> None:
    server = server_factory(handshake_timeout_seconds=0.5)
    with raw_connection(server, timeout=3.0) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        assert read_until_closed(connection) == b""
        assert time.monotonic() - started < 2.0


def test_keep_alive_requests_within_the_handshake_timeout_still_work(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(handshake_timeout_seconds=0.5)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=2)
    try:
        for _ in range(3):
            time.sleep(0.3)  # each request head within the timeout of the previous reply
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200
            assert response.read()
            assert not response.will_close
        assert connection.sock is not None  # the same connection throughout
    finally:
        connection.close()


# ---------------------------------------------------------------- invalid UTF-8


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (clients must mask); payloads under 126 bytes."""
    assert len(payload) < 126
    mask = b"\x37\xfa\x21\x3d"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Server frames (unmasked) in `data`, as (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames


async def test_invalid_utf8_is_one_warning_line_without_traceback(
    server: EmbeddedServer, server_log: Records
) -> None:
    token = issue_token(server, "garbler")
    with raw_connection(server) as connection:
        connection.sendall(upgrade_request(f"/ws/simulate?token={token}"))
        received = b""
        while b"connection_ready" not in received:
            received += connection.recv(65536)
        assert received.startswith(b"HTTP/1.1 101")
        connection.sendall(masked_frame(0x1, b'{"type": "\xff\xfe"}'))
        after = read_until_closed(connection)
    closes = [payload for opcode, payload in read_frames(after) if opcode == 0x8]
    assert closes, after
    assert struct.unpack("!H", closes[0][:2])[0] == CLOSE_INVALID_DATA
    await wait_for_health(server, "active_connections", 0)

    async def logged() -> bool:
        return any("UTF-8" in r.getMessage() for r in server_log.records)

    await wait_for(logged, what="the invalid UTF-8 was logged")
    assert not [r for r in server_log.records if r.exc_info or r.exc_text]
    utf8 = [r for r in server_log.records if "UTF-8" in r.getMessage()]
    assert [r.levelno for r in utf8] == [logging.WARNING]
    assert "\n" not in utf8[0].getMessage()
