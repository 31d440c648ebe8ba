"""What the strategy loop drives: the `SimulationDriver` protocol a transport implements (in
process or over a WebSocket), the values it hands back, and the session a run asks for. A
leaf: it imports no other module of the SDK's run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple, Protocol

from domain.bars import Bar
from entrypoints.protocol.messages import (
    CreateSessionData,
    ExecutionReportData,
    OrderData,
    SimulationResultsData,
)

DEFAULT_WINDOW = 1024
"""Bars per window a remote run asks for (PROTOCOL §7.14; the server sends fewer when its
frame holds fewer)."""

NO_REJECTIONS: Mapping[str, tuple[str, str]] = MappingProxyType({})


class TickView(NamedTuple):
    sequence_id: int
    time: int
    """The bar close as epoch seconds (`sim_time` as a number)."""
    sim_time: datetime
    bars: Mapping[str, Bar]
    equity: Decimal
    cash: Decimal
    is_last: bool


class Outcome(NamedTuple):
    """What follows an ack (or the start): refusals, reports, then the next tick (None when
    the simulation is complete)."""

    reports: Sequence[ExecutionReportData]
    tick: TickView | None
    rejected: Mapping[str, tuple[str, str]] = NO_REJECTIONS


@dataclass(frozen=True, slots=True)
class Started:
    session_id: str
    symbols: tuple[str, ...]
    total_ticks: int
    history: Mapping[str, Sequence[Bar]]
    warnings: tuple[str, ...] = ()
    """The session's warnings (PROTOCOL §8.3)."""
    currency: str = ""


class SimulationDriver(Protocol):
    """A transport for the strategy loop."""

    async def start(self) -> tuple[Started, Outcome]: ...

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[OrderData], cancels: Sequence[str]
    ) -> Outcome: ...

    async def results(self) -> SimulationResultsData: ...

    async def close(self) -> None: ...


ENGINE_SETTINGS = (
    "commission_per_share",
    "commission_pct",
    "commission_min",
    "slippage_bps",
    "max_volume_pct",
)
"""The decimal engine settings of PROTOCOL §4.1; `allow_short` is the one flag."""

EngineSettingValue = Decimal | int | str | bool | None


def session_request(
    symbols: Sequence[str],
    start: str,
    end: str,
    capital: Decimal,
    timeframe: str,
    engine_settings: Mapping[str, EngineSettingValue] | None,
) -> CreateSessionData:
    """The `create_session` a run asks for, whichever driver carries it."""
    settings = dict(engine_settings or {})
    unknown = sorted(set(settings) - {"allow_short", *ENGINE_SETTINGS})
    if unknown:
        raise TypeError(
            f"unknown engine setting(s) {', '.join(unknown)}; known: allow_short, "
            + ", ".join(ENGINE_SETTINGS)
        )
    request = CreateSessionData(
        symbols=list(symbols),
        start_date=start,
        end_date=end,
        initial_capital=capital,
        timeframe=timeframe,
        allow_short=bool(settings.pop("allow_short", False)),
    )
    for name, value in settings.items():
        if value is not None:
            setattr(request, name, Decimal(str(value)))
    return request


ProgressCallback = Callable[[int, int, datetime], None]
"""(ticks done, total ticks, simulated time), called every so often during a run."""
