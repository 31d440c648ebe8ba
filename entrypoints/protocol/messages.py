"""The wire contract of PROTOCOL.md as msgspec Structs: one tagged union per direction.

Every frame is `{"type": ..., "data": {...}, "request_id": ...}`; server frames add
`timestamp`. The SDK and the server share these classes, so both ends agree by type."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import Struct, field

PROTOCOL_VERSION = 2


class _Message(Struct, tag_field="type", kw_only=True, omit_defaults=False):
    request_id: str | None = None


# ---------------------------------------------------------------- client → server data


class CreateSessionData(Struct, kw_only=True, forbid_unknown_fields=True):
    symbols: list[str] = field(default_factory=list)
    start_date: str
    end_date: str
    initial_capital: Decimal
    metadata: dict[str, Any] = field(default_factory=dict)
    timeframe: str = "1d"
    commission_per_share: Decimal = Decimal(0)
    commission_pct: Decimal = Decimal(0)
    commission_min: Decimal = Decimal(0)
    slippage_bps: Decimal = Decimal(0)
    max_volume_pct: Decimal | None = None
    allow_short: bool = False


class SessionRef(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str


class ListSessionsData(Struct, kw_only=True, forbid_unknown_fields=True):
    state: str | None = None


class CreateSession(_Message, tag="create_session"):
    data: CreateSessionData


class GetSession(_Message, tag="get_session"):
    data: SessionRef


class ListSessions(_Message, tag="list_sessions"):
    data: ListSessionsData = field(default_factory=ListSessionsData)


class DeleteSession(_Message, tag="delete_session"):
    data: SessionRef


ClientMessage = CreateSession | GetSession | ListSessions | DeleteSession

CLIENT_MESSAGE_TYPES: tuple[str, ...] = (
    "create_session",
    "get_session",
    "list_sessions",
    "delete_session",
)
RESERVED_MESSAGE_TYPES: tuple[str, ...] = (
    "start_simulation",
    "tick_ack",
    "order_batch",
    "pause_simulation",
    "resume_simulation",
    "query_positions",
    "resume_session",
)
"""Named by PROTOCOL.md §4 for the simulation engine; answered as not available yet."""


# ---------------------------------------------------------------- simulation shapes (§4.3)


class OrderData(Struct, kw_only=True, forbid_unknown_fields=True):
    """An order as the client sends it; numbers may be JSON numbers or decimal strings."""

    order_id: str
    symbol: str
    side: str
    type: str = "market"
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "gtc"
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class ExecutionReportData(Struct, kw_only=True):
    session_id: str
    execution_id: str
    order_id: str
    symbol: str
    side: str
    status: str
    quantity: Decimal | None
    fill_quantity: Decimal
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    price: Decimal | None
    commission: Decimal
    slippage: Decimal
    sim_time: datetime | None
    sequence_id: int
    fill_reason: str | None = None
    reason: str | None = None


class MetricsData(Struct, kw_only=True):
    total_return_pct: float | None
    annual_return_pct: float | None
    annual_volatility_pct: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown_pct: float | None
    calmar_ratio: float | None
    final_equity: Decimal
    total_trades: int
    winning_trades: int
    win_rate_pct: float | None
    profit_factor: float | None
    avg_trade_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None
    exposure_pct: float | None
    total_commission: Decimal
    total_slippage: Decimal


class TradeData(Struct, kw_only=True):
    symbol: str
    side: str
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    pnl: Decimal
    return_pct: float
    commission: Decimal


class SimulationResultsData(Struct, kw_only=True):
    session_id: str
    metrics: MetricsData
    equity_curve: list[tuple[date, Decimal]]
    trades: list[TradeData]
    executions: int


class Envelope(Struct):
    """Just enough of a frame to classify it when the full decode fails."""

    type: Any = None
    request_id: Any = None


# ---------------------------------------------------------------- server → client data


class PlanLimitsData(Struct, kw_only=True):
    max_active_sessions: int
    sessions_per_hour: int
    max_symbols: int
    max_connections: int
    messages_per_minute: int
    max_message_bytes: int


class ConnectionReadyData(Struct, kw_only=True):
    user_id: str
    plan: str
    limits: PlanLimitsData
    server_version: str
    protocol_version: int = PROTOCOL_VERSION
    session_timeout_minutes: float = 60.0


class SessionData(Struct, kw_only=True):
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


class SessionListData(Struct, kw_only=True):
    sessions: list[SessionData]


class SessionDeletedData(Struct, kw_only=True):
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


class _ServerMessage(_Message, kw_only=True):
    timestamp: datetime


class ConnectionReady(_ServerMessage, tag="connection_ready"):
    data: ConnectionReadyData


class SessionCreated(_ServerMessage, tag="session_created"):
    data: SessionData


class SessionInfo(_ServerMessage, tag="session_info"):
    data: SessionData


class SessionList(_ServerMessage, tag="session_list"):
    data: SessionListData


class SessionDeleted(_ServerMessage, tag="session_deleted"):
    data: SessionDeletedData


class SessionError(_ServerMessage, tag="session_error"):
    data: SessionErrorData


class Error(_ServerMessage, tag="error"):
    data: ErrorData


ServerMessage = (
    ConnectionReady
    | SessionCreated
    | SessionInfo
    | SessionList
    | SessionDeleted
    | SessionError
    | Error
)

# Built once; msgspec decoders and encoders are reusable and thread-safe.
client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
envelope_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)
server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
encoder = msgspec.json.Encoder(decimal_format="string")


# ---------------------------------------------------------------- REST bodies


class TokenResponse(Struct, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int
    user_id: str
    plan: str


class ErrorResponse(Struct, kw_only=True):
    error_code: str
    message: str


class HealthResponse(Struct, kw_only=True):
    status: str
    version: str
    active_sessions: int
    active_connections: int


class CoverageData(Struct, kw_only=True):
    timeframe: str
    first: datetime
    last: datetime
    bars: int
    source: str


class InstrumentData(Struct, kw_only=True):
    symbol: str
    name: str
    exchange: str
    asset_class: str
    currency: str
    lot_size: Decimal
    tick_size: Decimal
    data: list[CoverageData]


class SymbolsResponse(Struct, kw_only=True):
    symbols: list[InstrumentData]
