"""Runs the app under uvicorn with a graceful shutdown: sockets get 1001, then exit."""

from __future__ import annotations

import logging
import re
import socket

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from entrypoints.container import Container
from entrypoints.logs import uvicorn_log_config
from entrypoints.server.app import create_app
from entrypoints.server.protocols import AnsweringWebSocketProtocol, with_handshake_timeout
from entrypoints.server.websocket import LiveSockets

WS_FRAME_CEILING = 1024 * 1024
"""Frames up to this size are read and answered (MESSAGE_TOO_LARGE past the protocol
limit, connection kept); larger ones make the WebSocket layer close with 1009."""


_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Bearer tokens travel in the WebSocket URL; keep them out of every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


class QuietInvalidUtf8(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 (a client error, answered with close
    1007) as an ERROR with a traceback; make it one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UnicodeDecodeError) and str(record.msg).startswith("Invalid UTF-8"):
            record.msg = "Invalid UTF-8 in a text frame from a client (%s); closed with 1007"
            record.args = (exc.reason,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietInvalidUtf8) for f in errors.filters):
        errors.addFilter(QuietInvalidUtf8())


class GracefulServer(uvicorn.Server):
    """uvicorn closes live WebSockets with 1012 before the app's lifespan shutdown runs;
    close ours first with 1001 (going away), as PROTOCOL.md promises."""

    def __init__(self, config: uvicorn.Config, live: LiveSockets) -> None:
        super().__init__(config)
        self._live = live

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._live.close_all("server shutting down")
        await super().shutdown(sockets)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with port 0)."""
        for server in self.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("server is not listening")


def build_server(
    container: Container,
    host: str | None = None,
    port: int | None = None,
    log_level: str | None = None,
    *,
    configure_logging: bool = True,
) -> GracefulServer:
    """The server, ready to `serve()`. `configure_logging=False` leaves the process's logging
    alone (uvicorn's loggers then propagate like any other): for a server embedded in
    someone else's program."""
    settings = container.settings()
    app = create_app(container)
    config = uvicorn.Config(
        app,
        log_config=uvicorn_log_config(LOGGING_CONFIG, settings.log_format)
        if configure_logging
        else None,
        host=host or settings.host,
        port=settings.port if port is None else port,
        log_level=log_level or settings.log_level,
        http=with_handshake_timeout(settings.handshake_timeout_seconds),
        ws=AnsweringWebSocketProtocol,
        ws_max_size=max(WS_FRAME_CEILING, settings.max_message_bytes * 2),
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    install_log_redaction()  # after Config, which (re)configures uvicorn's loggers
    live: LiveSockets = app.state.live_sockets
    return GracefulServer(config, live)
