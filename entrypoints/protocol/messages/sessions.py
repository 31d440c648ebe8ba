"""Server → client messages about the connection and its sessions: `connection_ready` with
the plan's limits, a session as the server holds it (created, info, list, deleted), and the
error frames (`session_error`, `error`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from msgspec import Struct, field

from entrypoints.protocol.messages.frames import MAX_WINDOW, PROTOCOL_VERSION, ServerFrame


class PlanLimitsData(Struct, kw_only=True):
    """The limits in force for the connected user (protocol §6)."""

    max_active_sessions: int
    sessions_per_hour: int
    max_symbols: int
    max_connections: int
    messages_per_minute: int
    max_message_bytes: int
    max_running_simulations: int = 1


class ConnectionReadyData(Struct, kw_only=True):
    """The server's first message on a connection (protocol §3.1 `connection_ready`): who you
    are, your plan and its limits, the server and protocol versions."""

    user_id: str
    plan: str
    limits: PlanLimitsData
    server_version: str
    protocol_version: int = PROTOCOL_VERSION
    session_timeout_minutes: float = 60.0
    max_window: int = MAX_WINDOW
    """Most bars a `ticks` window holds (§7.14); a client without windows ignores it."""


class ProgressData(Struct, kw_only=True):
    sequence_id: int
    total_ticks: int
    sim_time: datetime | None


class SessionData(Struct, kw_only=True):
    """A session as the server holds it (protocol §4.3): state, symbols, dates, capital,
    engine settings, metadata, warnings and, once running, progress."""

    session_id: str
    state: str
    symbols: list[str]
    start_date: datetime
    end_date: datetime
    initial_capital: Decimal
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    metadata: dict[str, Any]
    estimated_trading_days: int
    total_bars: int
    warnings: list[str]
    timeframe: str = "1d"
    commission_per_share: Decimal = Decimal(0)
    commission_pct: Decimal = Decimal(0)
    commission_min: Decimal = Decimal(0)
    slippage_bps: Decimal = Decimal(0)
    max_volume_pct: Decimal | None = None
    allow_short: bool = False
    progress: ProgressData | None = None
    error_reason: str | None = None
    currency: str = ""
    """The instruments' quote currency, which the capital is counted in; `mixed` if they
    differ ("" from a server that predates the field)."""
    asset_class: str = ""
    """stock, forex, crypto, commodity, or `mixed`."""


class SessionListData(Struct, kw_only=True):
    sessions: list[SessionData]


class SessionDeletedData(Struct, kw_only=True):
    """The answer to `delete_session` (protocol §4.4): the id, and `deleted: true`."""

    session_id: str
    deleted: bool = True


class SessionErrorData(Struct, kw_only=True):
    error_code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class ErrorData(Struct, kw_only=True):
    error_code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    recoverable: bool = True


class ConnectionReady(ServerFrame, tag="connection_ready"):
    data: ConnectionReadyData


class SessionCreated(ServerFrame, tag="session_created"):
    data: SessionData


class SessionInfo(ServerFrame, tag="session_info"):
    data: SessionData


class SessionList(ServerFrame, tag="session_list"):
    data: SessionListData


class SessionDeleted(ServerFrame, tag="session_deleted"):
    data: SessionDeletedData


class SessionError(ServerFrame, tag="session_error"):
    data: SessionErrorData


class Error(ServerFrame, tag="error"):
    data: ErrorData
