"""uvicorn's HTTP/1.1 and WebSocket protocols, with the two gaps a hostile client could use
closed: a connection must send a complete request head within the handshake timeout, and
an upgrade the WebSocket layer refuses (request line or header over 8 KiB) is answered."""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("simutrador.server")


class HandshakeTimeoutH11Protocol(H11Protocol):
    """uvicorn arms no timer until a first response is sent, so a client that connects and
    sends nothing (or a request head a byte at a time) holds a descriptor for ever. Here the
    whole head of each request must arrive within `handshake_timeout_seconds` of the
    connection (or of the previous response); otherwise the connection is closed."""

    handshake_timeout_seconds: float = 10.0

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        waiting_on = self.scope
        super().data_received(data)
        if self.scope is not waiting_on:  # a request head arrived (or the socket upgraded)
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        finished = self.scope
        super().on_response_complete()
        if self.scope is finished and not self.transport.is_closing():  # none pipelined
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(
            self.handshake_timeout_seconds, self._head_timed_out, self.scope
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self, waiting_on: object) -> None:
        self._head_timer = None
        if self.scope is waiting_on and not self.transport.is_closing():
            log.debug("closed a connection that sent no complete request in time")
            self.transport.close()


def with_handshake_timeout(seconds: float) -> type[HandshakeTimeoutH11Protocol]:
    """The HTTP protocol class for uvicorn's `http=`, bound to this server's timeout."""

    class Bound(HandshakeTimeoutH11Protocol):
        handshake_timeout_seconds = seconds

    return Bound


class AnsweringWebSocketProtocol(WebSocketsSansIOProtocol):
    """When websockets refuses the upgrade request itself (request line over 8 KiB: 414; a
    header over 8 KiB or too many: 431; unparsable), it queues its HTTP answer but uvicorn
    never writes it, so the client waited for ever. Write it and close."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        refusal = self.conn.handshake_exc
        if refusal is None or self.handshake_initiated or self.transport.is_closing():
            return
        log.warning("refused a WebSocket upgrade request: %s", refusal)
        self.handshake_complete = True
        self.close_sent = True
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
