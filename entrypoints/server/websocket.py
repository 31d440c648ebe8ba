"""The `/ws/simulate` connection loop: authenticate, admit, then frame in → frame out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from application.auth import AuthService
from application.connections import ConnectionRegistry
from domain.errors import AuthenticationFailed
from entrypoints.protocol.dispatcher import Dispatcher

log = logging.getLogger("simutrador.server")

CLOSE_UNAUTHORIZED = 4001
"""Missing, malformed, forged, expired or revoked token (PROTOCOL.md §2)."""
CLOSE_TOO_MANY_CONNECTIONS = 4029
"""The user already has as many open connections as the plan allows (PROTOCOL.md §3)."""
CLOSE_GOING_AWAY = 1001


class LiveSockets:
    """Every open, admitted socket, so shutdown can close them with 1001 and wait."""

    def __init__(self) -> None:
        self._sockets: dict[WebSocket[Any, Any, Any], asyncio.Event] = {}
        self.closing = False

    def add(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._sockets[socket] = asyncio.Event()

    def discard(self, socket: WebSocket[Any, Any, Any]) -> None:
        done = self._sockets.pop(socket, None)
        if done is not None:
            done.set()

    async def close_all(self, reason: str, grace_seconds: float = 5.0) -> None:
        self.closing = True
        pending = list(self._sockets.items())
        for socket, _ in pending:
            with contextlib.suppress(Exception):
                await socket.close(CLOSE_GOING_AWAY, reason)
        if pending:
            waits = [asyncio.ensure_future(done.wait()) for _, done in pending]
            _, not_done = await asyncio.wait(waits, timeout=grace_seconds)
            for waiter in not_done:
                waiter.cancel()


def bearer_token(socket: WebSocket[Any, Any, Any]) -> str | None:
    token = socket.query_params.get("token")
    if token:
        return str(token)
    header = socket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def serve_connection(
    socket: WebSocket[Any, Any, Any],
    auth: AuthService,
    dispatcher: Dispatcher,
    registry: ConnectionRegistry,
    live: LiveSockets,
) -> None:
    await socket.accept()
    try:
        principal = await auth.authenticate(bearer_token(socket))
    except AuthenticationFailed as exc:
        await socket.close(CLOSE_UNAUTHORIZED, exc.message)
        return
    if live.closing:
        await socket.close(CLOSE_GOING_AWAY, "server shutting down")
        return
    limit = principal.limits.max_connections
    if not registry.try_open(principal.user_id, limit):
        await socket.close(
            CLOSE_TOO_MANY_CONNECTIONS,
            f"Connection limit reached: the {principal.plan.value} plan allows {limit} "
            "open connection" + ("s" if limit != 1 else ""),
        )
        return
    live.add(socket)

    async def push(frame: bytes) -> None:
        await socket.send_text(frame)

    context = dispatcher.open(principal, push)
    try:
        await socket.send_text(dispatcher.connection_ready(context))
        while True:
            event = await socket.receive()
            if event["type"] != "websocket.receive":
                break
            text = event.get("text")
            frame = text if text is not None else event.get("bytes") or b""
            for reply in await dispatcher.handle_frame(context, frame):
                await socket.send_text(reply)
            # Frames already buffered are received without suspending; yield once per frame
            # so a client pipelining thousands of requests cannot starve the others.
            await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    except OSError as exc:  # the peer vanished mid-send
        log.debug("connection of %s dropped: %s", principal.user_id, exc)
    finally:
        live.discard(socket)
        registry.close(principal.user_id)
        try:
            await dispatcher.close(context)  # its simulations pause, waiting for a resume
        except Exception:
            log.exception("pausing the simulations of a closed connection failed")
