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


MAX_BATCH_ORDERS = 500
MAX_WINDOW = 4096
"""Most bars one `ticks` window may hold (§7.14); a frame may hold fewer."""


class StartSimulationData(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    warmup_bars: int = 0
    account_updates: str = "on_fill"
    window: int = 1
    """Bars per window (§7.14): 1 is one `tick` at a time."""


class TickAckData(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    sequence_id: int
    orders: list[OrderData] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    window: int | None = None
    """Bars the next window may hold; None: as many as the last one asked for."""


class OrderBatchData(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    batch_id: str
    orders: list[OrderData]


class CancelOrderData(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    order_id: str


class ResumeSessionData(Struct, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    last_sequence_id: int = 0
    window: int = 1


class StartSimulation(_Message, tag="start_simulation"):
    data: StartSimulationData


class TickAck(_Message, tag="tick_ack"):
    data: TickAckData


class OrderBatch(_Message, tag="order_batch"):
    data: OrderBatchData


class CancelOrder(_Message, tag="cancel_order"):
    data: CancelOrderData


class PauseSimulation(_Message, tag="pause_simulation"):
    data: SessionRef


class ResumeSimulation(_Message, tag="resume_simulation"):
    data: SessionRef


class QueryPositions(_Message, tag="query_positions"):
    data: SessionRef


class GetResults(_Message, tag="get_results"):
    data: SessionRef


class ResumeSession(_Message, tag="resume_session"):
    data: ResumeSessionData


ClientMessage = (
    CreateSession
    | GetSession
    | ListSessions
    | DeleteSession
    | StartSimulation
    | TickAck
    | OrderBatch
    | CancelOrder
    | PauseSimulation
    | ResumeSimulation
    | QueryPositions
    | GetResults
    | ResumeSession
)

CLIENT_MESSAGE_TYPES: tuple[str, ...] = (
    "create_session",
    "get_session",
    "list_sessions",
    "delete_session",
    "start_simulation",
    "tick_ack",
    "order_batch",
    "cancel_order",
    "pause_simulation",
    "resume_simulation",
    "query_positions",
    "get_results",
    "resume_session",
)


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
    """One execution report (protocol §7.3 `execution_report`): a fill of an order, or the end of
    one that did not fill (`status`: `filled`, `partially_filled`, `cancelled`, `expired` or
    `rejected`), with price, quantity, commission and the simulated time."""

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
    """A simulation's performance figures (protocol §7.12: how each is computed). Ratios are
    floats; `None` where a figure is undefined or not finite (e.g. a Calmar ratio without a
    drawdown)."""

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
    # backtesting.py's statistics (§7.12); absent from an older server's results: null.
    equity_peak: Decimal | None = None
    buy_and_hold_return_pct: float | None = None
    cagr_pct: float | None = None
    avg_drawdown_pct: float | None = None
    max_drawdown_duration_days: float | None = None
    avg_drawdown_duration_days: float | None = None
    max_trade_duration_days: float | None = None
    avg_trade_duration_days: float | None = None
    expectancy_pct: float | None = None
    sqn: float | None = None
    kelly_criterion: float | None = None
    alpha_pct: float | None = None
    beta: float | None = None


class TradeData(Struct, kw_only=True):
    """One closed round trip, matched FIFO (protocol §7.13): entry and exit time and price,
    quantity, P&L and commission."""

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
    """A completed simulation's results (protocol §7.3 `simulation_results`): metrics, the
    daily equity curve as (day, equity) pairs, closed trades, and the number of executions."""

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


class SimulationStartedData(Struct, kw_only=True):
    session_id: str
    total_ticks: int
    first_sim_time: datetime
    last_sim_time: datetime
    warmup_bars: int


class HistoryData(Struct, kw_only=True):
    session_id: str
    bars: dict[str, list[tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal]]]


class TickBarData(Struct, kw_only=True, array_like=False):
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class TickData(Struct, kw_only=True):
    session_id: str
    sequence_id: int
    sim_time: datetime
    bars: dict[str, TickBarData]
    equity: Decimal
    cash: Decimal
    is_last: bool


class WindowTickData(Struct, kw_only=True):
    """One bar of a `ticks` window: a `tick`'s fields, with the execution reports its bar
    produced and, when `account_updates` asks, the account after it (§7.14)."""

    sequence_id: int
    sim_time: datetime
    bars: dict[str, TickBarData]
    equity: Decimal
    cash: Decimal
    is_last: bool
    executions: list[ExecutionReportData] = field(default_factory=list)
    account: AccountData | None = None


class TicksData(Struct, kw_only=True):
    session_id: str
    ticks: list[msgspec.Raw]
    """Each a `WindowTickData`, decoded (`window_tick_decoder`) only when the client gets to
    it: the bars after a decision are void and need no decoding."""


class RejectionData(Struct, kw_only=True):
    error_code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class BatchAckData(Struct, kw_only=True):
    session_id: str
    batch_id: str
    accepted: list[str]
    rejected: dict[str, RejectionData]


class OrderCancelledData(Struct, kw_only=True):
    session_id: str
    order_id: str


class PositionData(Struct, kw_only=True):
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    market_price: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal


class OpenOrderData(OrderData, kw_only=True):
    status: str
    filled_quantity: Decimal


class AccountData(Struct, kw_only=True):
    session_id: str
    sim_time: datetime | None
    sequence_id: int
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_commission: Decimal
    positions: list[PositionData]
    open_orders: list[OpenOrderData]


class SimulationPausedData(Struct, kw_only=True):
    session_id: str
    sequence_id: int
    sim_time: datetime | None
    reason: str


class SimulationResumedData(Struct, kw_only=True):
    session_id: str
    next_sequence_id: int


class SimulationCompleteData(Struct, kw_only=True):
    session_id: str
    metrics: MetricsData
    total_ticks: int
    wall_time_ms: int


class StateSyncData(Struct, kw_only=True):
    session_id: str
    state: str
    sim_time: datetime | None
    next_sequence_id: int
    account: AccountData
    missed_executions: list[ExecutionReportData]
    missed_rejections: dict[str, RejectionData] = field(default_factory=dict)
    """Orders refused in a batch_ack the client may not have received."""


class SimulationStarted(_ServerMessage, tag="simulation_started"):
    data: SimulationStartedData


class History(_ServerMessage, tag="history"):
    data: HistoryData


class Tick(_ServerMessage, tag="tick"):
    data: TickData


class Ticks(_ServerMessage, tag="ticks"):
    data: TicksData


class BatchAck(_ServerMessage, tag="batch_ack"):
    data: BatchAckData


class ExecutionReport(_ServerMessage, tag="execution_report"):
    data: ExecutionReportData


class AccountSnapshot(_ServerMessage, tag="account_snapshot"):
    data: AccountData


class CurrentPositions(_ServerMessage, tag="current_positions"):
    data: AccountData


class OrderCancelled(_ServerMessage, tag="order_cancelled"):
    data: OrderCancelledData


class SimulationPaused(_ServerMessage, tag="simulation_paused"):
    data: SimulationPausedData


class SimulationResumed(_ServerMessage, tag="simulation_resumed"):
    data: SimulationResumedData


class SimulationComplete(_ServerMessage, tag="simulation_complete"):
    data: SimulationCompleteData


class SimulationResults(_ServerMessage, tag="simulation_results"):
    data: SimulationResultsData


class StateSync(_ServerMessage, tag="state_sync"):
    data: StateSyncData


# How the server encodes `tick` and `history`: bar prices go out as JSON numbers written
# from the exact decimals (`msgspec.Raw`), while money stays a string. Clients decode them
# with `Tick` and `History` above (JSON numbers into Decimal, losslessly).


class TickOutData(Struct, kw_only=True):
    session_id: str
    sequence_id: int
    sim_time: datetime
    bars: msgspec.Raw
    equity: Decimal
    cash: Decimal
    is_last: bool


class TickOut(_ServerMessage, tag="tick"):
    data: TickOutData


class WindowTickOut(Struct, kw_only=True):
    sequence_id: int
    sim_time: datetime
    bars: msgspec.Raw
    equity: Decimal
    cash: Decimal
    is_last: bool
    executions: list[ExecutionReportData]
    account: AccountData | None


class TicksOutData(Struct, kw_only=True):
    session_id: str
    ticks: msgspec.Raw
    """A JSON array of encoded `WindowTickOut`s (each encoded as it is stepped)."""


class TicksOut(_ServerMessage, tag="ticks"):
    data: TicksOutData


class HistoryOutData(Struct, kw_only=True):
    session_id: str
    bars: msgspec.Raw


class HistoryOut(_ServerMessage, tag="history"):
    data: HistoryOutData


ServerMessage = (
    ConnectionReady
    | SessionCreated
    | SessionInfo
    | SessionList
    | SessionDeleted
    | SessionError
    | Error
    | SimulationStarted
    | History
    | Tick
    | Ticks
    | BatchAck
    | ExecutionReport
    | AccountSnapshot
    | CurrentPositions
    | OrderCancelled
    | SimulationPaused
    | SimulationResumed
    | SimulationComplete
    | SimulationResults
    | StateSync
)

# Built once; msgspec decoders and encoders are reusable and thread-safe.
client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
envelope_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)
server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
encoder = msgspec.json.Encoder(decimal_format="string")
window_tick_decoder: msgspec.json.Decoder[WindowTickData] = msgspec.json.Decoder(WindowTickData)


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
    """One instrument of the catalog (protocol §2.3 `GET /symbols`): symbol, name, exchange,
    asset class, currency, lot and tick size, and the bars stored for it."""

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
