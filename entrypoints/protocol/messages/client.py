"""Client → server messages: the session requests (create, get, list, delete, resume) and
the simulation ones (start, acknowledge a tick, send or cancel orders, pause, resume, query);
`CLIENT_MESSAGE_TYPES` lists their tags."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from msgspec import Struct, field

from entrypoints.protocol.messages.frames import Frame
from entrypoints.protocol.messages.shapes import OrderData


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


class CreateSession(Frame, tag="create_session"):
    data: CreateSessionData


class GetSession(Frame, tag="get_session"):
    data: SessionRef


class ListSessions(Frame, tag="list_sessions"):
    data: ListSessionsData = field(default_factory=ListSessionsData)


class DeleteSession(Frame, tag="delete_session"):
    data: SessionRef


MAX_BATCH_ORDERS = 500


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


class StartSimulation(Frame, tag="start_simulation"):
    data: StartSimulationData


class TickAck(Frame, tag="tick_ack"):
    data: TickAckData


class OrderBatch(Frame, tag="order_batch"):
    data: OrderBatchData


class CancelOrder(Frame, tag="cancel_order"):
    data: CancelOrderData


class PauseSimulation(Frame, tag="pause_simulation"):
    data: SessionRef


class ResumeSimulation(Frame, tag="resume_simulation"):
    data: SessionRef


class QueryPositions(Frame, tag="query_positions"):
    data: SessionRef


class GetResults(Frame, tag="get_results"):
    data: SessionRef


class ResumeSession(Frame, tag="resume_session"):
    data: ResumeSessionData


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
