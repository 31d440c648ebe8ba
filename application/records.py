"""What durable storage keeps of a simulation: the values the `SimulationCheckpoints` port
carries (checkpoints, journal entries, results) and the ones they are made of. Owned by the
ports; the simulation package builds and reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from application.principal import Principal
from domain.broker import AccountView, BrokerState, ExecutionReport
from domain.errors import DomainError
from domain.metrics import Metrics
from domain.orders import OrderRequest
from domain.trades import ClosedTrade, LedgerState


class AccountUpdates(StrEnum):
    """When the server volunteers an account snapshot (§4.3 `start_simulation`)."""

    ON_FILL = "on_fill"
    EVERY_TICK = "every_tick"
    ON_DEMAND = "on_demand"


@dataclass(frozen=True, slots=True)
class SimulationResults:
    metrics: Metrics
    equity_curve: tuple[tuple[date, Decimal], ...]
    trades: tuple[ClosedTrade, ...]
    executions: int
    total_ticks: int
    last_sim_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order refused outright, kept so a client that lost the batch_ack still learns."""

    sequence_id: int
    """The tick after which the client sent it."""
    order_id: str
    code: str
    message: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An order refused outright, before its tick is known (kept in the journal)."""

    order_id: str
    code: str
    message: str
    details: Mapping[str, Any]

    @classmethod
    def of(cls, order_id: str, error: DomainError) -> Refusal:
        return cls(order_id, error.code, error.message, dict(error.details))


@dataclass(frozen=True, slots=True)
class Missed:
    """What a client that saw tick n last may not have received: every execution report
    and refusal recorded after tick n was delivered."""

    reports: tuple[ExecutionReport, ...]
    rejections: tuple[Rejection, ...]


def missed(
    reports: Sequence[ExecutionReport],
    marks: Sequence[int],
    rejections: Sequence[Rejection],
    sequence_id: int,
) -> Missed:
    """The reports and refusals recorded after tick `sequence_id` was delivered (all of
    them for 0; none for a tick not delivered yet)."""
    if sequence_id <= 0:
        start = 0
    elif sequence_id <= len(marks):
        start = marks[sequence_id - 1]
    else:
        start = len(reports)
    return Missed(
        tuple(reports[start:]),
        tuple(r for r in rejections if r.sequence_id >= max(sequence_id, 1)),
    )


@dataclass(frozen=True, slots=True)
class SimulationState:
    """Everything a running simulation holds apart from its bars (which the store keeps):
    enough to restore it and go on exactly as if it had never stopped."""

    sequence: int
    in_flight: int | None
    cursors: tuple[tuple[str, int], ...]
    broker: BrokerState
    ledger: LedgerState
    equity_curve: tuple[tuple[date, Decimal], ...]
    ticks_with_position: int
    reports: tuple[ExecutionReport, ...]
    finished: bool
    report_marks: tuple[int, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    window: int = 1
    """Bars per window the client asked for (PROTOCOL §7.14); 1 is one tick at a time."""


@dataclass(frozen=True, slots=True)
class FinishedSimulation:
    """A completed simulation, as far as a client resuming after it still needs it."""

    state: SimulationState
    account: AccountView
    wall_time_ms: int

    def missed_since(self, sequence_id: int) -> Missed:
        state = self.state
        return missed(state.reports, state.report_marks, state.rejections, sequence_id)


class InputKind(StrEnum):
    ACK = "ack"
    ORDERS = "orders"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class SimulationInput:
    """One client request that changed a running simulation, as the journal keeps it. The
    engine is deterministic: applied again, in order, to the simulation restored from the
    checkpoint before it, each does exactly what it did the first time."""

    position: int
    kind: InputKind
    sequence_id: int = 0
    """For an ack, the tick acknowledged."""
    orders: tuple[OrderRequest, ...] = ()
    cancels: tuple[str, ...] = ()
    refused: tuple[Refusal, ...] = ()
    """Orders refused before reaching the engine (unparseable)."""
    window: int = 1
    """For an ack, how many bars the next window may hold (1: the next tick alone)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A running simulation as durable storage keeps it: enough to build it again over the
    same bars and restore it; `position` journal entries are already applied in `state`."""

    session_id: str
    principal: Principal
    warmup_bars: int
    account_updates: AccountUpdates
    total_ticks: int
    position: int
    state: SimulationState


@dataclass(frozen=True, slots=True)
class StoredRun:
    checkpoint: Checkpoint
    journal: tuple[SimulationInput, ...]
    """Entries after `checkpoint.position`, in order."""


@dataclass(frozen=True, slots=True)
class CompletedRun:
    session_id: str
    principal: Principal
    results: SimulationResults
    finished: FinishedSimulation
