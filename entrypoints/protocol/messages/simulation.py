"""Server → client messages of a running simulation: started, history, `tick` and `ticks`
windows, batch acks, execution reports, the account, pause/resume, completion, results and
state sync; and the `...Out` shapes the server encodes `tick`, `ticks` and `history` with."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import Struct, field

from entrypoints.protocol.messages.frames import ServerFrame
from entrypoints.protocol.messages.shapes import (
    ExecutionReportData,
    MetricsData,
    OrderData,
    SimulationResultsData,
)


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


class SimulationStarted(ServerFrame, tag="simulation_started"):
    data: SimulationStartedData


class History(ServerFrame, tag="history"):
    data: HistoryData


class Tick(ServerFrame, tag="tick"):
    data: TickData


class Ticks(ServerFrame, tag="ticks"):
    data: TicksData


class BatchAck(ServerFrame, tag="batch_ack"):
    data: BatchAckData


class ExecutionReport(ServerFrame, tag="execution_report"):
    data: ExecutionReportData


class AccountSnapshot(ServerFrame, tag="account_snapshot"):
    data: AccountData


class CurrentPositions(ServerFrame, tag="current_positions"):
    data: AccountData


class OrderCancelled(ServerFrame, tag="order_cancelled"):
    data: OrderCancelledData


class SimulationPaused(ServerFrame, tag="simulation_paused"):
    data: SimulationPausedData


class SimulationResumed(ServerFrame, tag="simulation_resumed"):
    data: SimulationResumedData


class SimulationComplete(ServerFrame, tag="simulation_complete"):
    data: SimulationCompleteData


class SimulationResults(ServerFrame, tag="simulation_results"):
    data: SimulationResultsData


class StateSync(ServerFrame, tag="state_sync"):
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


class TickOut(ServerFrame, tag="tick"):
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


class TicksOut(ServerFrame, tag="ticks"):
    data: TicksOutData


class HistoryOutData(Struct, kw_only=True):
    session_id: str
    bars: msgspec.Raw


class HistoryOut(ServerFrame, tag="history"):
    data: HistoryOutData
