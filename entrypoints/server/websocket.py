"""The `/ws/simulate` connection loop (authenticate, admit, then frame in → frame out), and
the guard that closes open connections whose token lapsed or that fell silent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from application.auth import AuthService
from application.ports import NO_METRICS, ConnectionRegistry, ServiceMetrics
from application.principal import Principal
from domain.errors import AuthenticationFailed
from entrypoints.logs import current_user_id
from entrypoints.protocol.dispatcher import ConnectionContext, Dispatcher

log = logging.getLogger("simutrador.server")

CLOSE_UNAUTHORIZED = 4001
"""Missing, malformed, forged, expired or revoked token (PROTOCOL.md §2)."""
CLOSE_TOO_MANY_CONNECTIONS = 4029
"""The user already has as many open connections as the plan allows (PROTOCOL.md §3)."""
CLOSE_INTERNAL_ERROR = 1011
"""The server could not admit the connection (its shared storage did not answer)."""
CLOSE_GOING_AWAY = 1001
CLOSE_NORMAL = 1000
"""Sent, with the reason "Idle for N s", to a connection silent for the idle timeout."""
CLOSE_ABNORMAL = 1006
"""Counted (never sent) for a connection that ended without a close frame."""


@dataclass(eq=False, slots=True)
class LiveConnection:
    """One admitted socket: whom it speaks for and when it was last heard from. Its sends
    and its close go through here one at a time, so a close from elsewhere (the guard,
    shutdown) never lands in the middle of a reply, and nothing is sent after it."""

    socket: WebSocket[Any, Any, Any]
    principal: Principal
    last_heard: float
    context: ConnectionContext | None = None
    closing: bool = False
    close_code: int | None = None
    """The code of the close this server sent, if it closed the connection."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def awaiting_ack(self) -> bool:
        return self.context is not None and self.context.awaiting_ack

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            if self.closing:
                raise WebSocketDisconnect(detail="the server closed the connection")
            await self.socket.send_text(frame)

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True  # at once: no further frame is handled, no second close is sent
        self.close_code = code
        async with self._lock:
            with contextlib.suppress(Exception):
                await self.socket.close(code, reason)


class LiveSockets:
    """Every open, admitted connection, so the guard can re-check them and shutdown can
    close them with 1001 and wait."""

    def __init__(self) -> None:
        self._connections: set[LiveConnection] = set()
        self.closing = False

    def add(self, socket: WebSocket[Any, Any, Any], principal: Principal) -> LiveConnection:
        connection = LiveConnection(socket, principal, asyncio.get_running_loop().time())
        self._connections.add(connection)
        return connection

    def discard(self, connection: LiveConnection) -> None:
        self._connections.discard(connection)
        connection.done.set()

    def snapshot(self) -> list[LiveConnection]:
        return list(self._connections)

    async def close_all(self, reason: str, grace_seconds: float = 5.0) -> None:
        self.closing = True
        pending = self.snapshot()
        if not pending:
            return
        closes = [asyncio.ensure_future(c.close(CLOSE_GOING_AWAY, reason)) for c in pending]
        waits = [asyncio.ensure_future(c.done.wait()) for c in pending]
        _, not_done = await asyncio.wait([*closes, *waits], timeout=grace_seconds)
        for task in not_done:
            task.cancel()


async def guard_connections(
    live: LiveSockets,
    auth: AuthService,
    *,
    recheck_seconds: float,
    idle_timeout_seconds: float,
) -> None:
    """For as long as the app runs, every `recheck_seconds`: close with 4001 each
    connection whose token has expired or whose API key was revoked since it connected,
    and with 1000 each one silent for `idle_timeout_seconds`, unless a tick it was sent
    still awaits its ack (the ack timeout governs that; once it pauses the simulation the
    idle clock applies again). One task for the whole server, not a timer per connection."""
    loop = asyncio.get_running_loop()
    period = min(recheck_seconds, idle_timeout_seconds / 2)
    closing: set[asyncio.Task[None]] = set()
    while True:
        await asyncio.sleep(period)
        now = loop.time()
        try:
            for connection in live.snapshot():
                if connection.closing:
                    continue
                try:
                    await auth.recheck(connection.principal)
                except AuthenticationFailed as exc:
                    code, reason = CLOSE_UNAUTHORIZED, exc.message
                else:
                    silent = now - connection.last_heard
                    if silent < idle_timeout_seconds or connection.awaiting_ack:
                        continue
                    code, reason = CLOSE_NORMAL, f"Idle for {idle_timeout_seconds:g} s"
                log.info(
                    "closing the connection of %s (%d): %s",
                    connection.principal.user_id,
                    code,
                    reason,
                )
                task = loop.create_task(connection.close(code, reason))
                closing.add(task)
                task.add_done_callback(closing.discard)
        except Exception:  # e.g. an unreadable key store: keep the connections, say so
            log.exception("re-checking open connections failed; retrying next interval")


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
    metrics: ServiceMetrics = NO_METRICS,
) -> None:
    await socket.accept()

    async def refuse(code: int, reason: str) -> None:
        await socket.close(code, reason)
        metrics.connection_closed(code)

    try:
        principal = await auth.authenticate(bearer_token(socket))
    except AuthenticationFailed as exc:
        await refuse(CLOSE_UNAUTHORIZED, exc.message)
        return
    current_user_id.set(principal.user_id)  # this connection's task: its log records say whose
    if live.closing:
        await refuse(CLOSE_GOING_AWAY, "server shutting down")
        return
    limit = principal.limits.max_connections
    try:
        admitted = await registry.try_open(principal.user_id, limit)
    except Exception:
        log.exception("counting the connections of %s failed", principal.user_id)
        await refuse(CLOSE_INTERNAL_ERROR, "server storage unavailable; try again")
        return
    if not admitted:
        await refuse(
            CLOSE_TOO_MANY_CONNECTIONS,
            f"Connection limit reached: the {principal.plan.value} plan allows {limit} "
            "open connection" + ("s" if limit != 1 else ""),
        )
        return
    metrics.connection_opened()
    client_code: int | None = None
    connection = live.add(socket, principal)
    context = dispatcher.open(principal, connection.send)
    connection.context = context
    loop = asyncio.get_running_loop()
    try:
        await connection.send(dispatcher.connection_ready(context))
        while True:
            event = await socket.receive()
            if event["type"] != "websocket.receive" or connection.closing:
                if event["type"] == "websocket.disconnect":
                    client_code = int(event.get("code") or CLOSE_NORMAL)
                break
            connection.last_heard = loop.time()
            text = event.get("text")
            frame = text if text is not None else event.get("bytes") or b""
            for reply in await dispatcher.handle_frame(context, frame):
                await connection.send(reply)
            # Frames already buffered are received without suspending; yield once per frame
            # so a client pipelining thousands of requests cannot starve the others.
            await asyncio.sleep(0)
    except WebSocketDisconnect as exc:
        client_code = _code_of(exc)
    except OSError as exc:  # the peer vanished mid-send
        log.debug("connection of %s dropped: %s", principal.user_id, exc)
    finally:
        metrics.connection_closed(connection.close_code or client_code or CLOSE_ABNORMAL)
        live.discard(connection)
        try:
            await registry.close(principal.user_id)
        except Exception:
            log.exception("uncounting a closed connection of %s failed", principal.user_id)
        try:
            await dispatcher.close(context)  # its simulations pause, waiting for a resume
        except Exception:
            log.exception("pausing the simulations of a closed connection failed")


def _code_of(exc: WebSocketDisconnect) -> int | None:
    """The close code a `WebSocketDisconnect` reports, when it reports one."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) and code > 0 else None
