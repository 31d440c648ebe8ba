"""What the templates show, shaped from the application's objects: plain values, so the
templates only lay them out (and Jinja escapes every one of them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from application.bars import InstrumentCoverage
from domain.bars import DataSource
from domain.session import SessionState, SimulationSession
from entrypoints.protocol import messages as m
from entrypoints.protocol.dispatcher import session_data

LIVE_STATES = frozenset({SessionState.RUNNING.value, SessionState.PAUSED.value})
"""A session in one of these has a simulation whose progress moves (or may again)."""
SETTLED_STATES = frozenset({SessionState.COMPLETED.value, SessionState.ERROR.value})
STATES = tuple(s.value for s in SessionState)


def when(value: datetime | None) -> str:
    """`2024-03-01 14:05:09 UTC`: one unambiguous form for every time on the dashboard."""
    if value is None:
        return "—"
    return f"{stamp(value)} UTC"


def stamp(value: datetime) -> str:
    """`2024-03-01 14:05:09` in UTC (isoformat: several times faster than strftime, and a
    list of sessions writes out a few hundred of these)."""
    return value.astimezone(UTC).isoformat(" ", "seconds")[:19]


def day(value: datetime) -> str:
    return value.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    sim_time: str

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class SessionView:
    """One session as a row or a page: the wire's `SessionData` (what the API shows), with
    its times, range and progress already written out (a list renders many rows)."""

    data: m.SessionData
    progress: Progress | None
    id: str
    state: str
    symbols: str
    range: str
    created: str
    """UTC, without the zone (the list says UTC once, in its headers)."""
    updated: str

    @property
    def expires(self) -> str:
        return when(self.data.expires_at)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def settled(self) -> bool:
        return self.state in SETTLED_STATES

    @property
    def metadata_json(self) -> str:
        """The metadata as indented JSON text (the template escapes it like any text)."""
        return json.dumps(self.data.metadata, indent=2, ensure_ascii=False, default=str)

    def settings(self) -> list[tuple[str, str]]:
        d = self.data
        capital = f"{d.initial_capital:,} {d.currency}".strip()
        return [
            ("Symbols", self.symbols),
            ("Asset class", d.asset_class or "—"),
            ("Range", self.range),
            ("Timeframe", d.timeframe),
            ("Initial capital", capital),
            ("Trading days (estimated)", f"{d.estimated_trading_days:,}"),
            ("Bars", f"{d.total_bars:,}"),
            ("Commission per share", _amount(d.commission_per_share)),
            ("Commission (fraction of value)", _amount(d.commission_pct)),
            ("Minimum commission", _amount(d.commission_min)),
            ("Slippage (bps)", _amount(d.slippage_bps)),
            (
                "Volume cap (fraction of a bar)",
                "none" if d.max_volume_pct is None else _amount(d.max_volume_pct),
            ),
            ("Short selling", "allowed" if d.allow_short else "not allowed"),
        ]


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def session_view(
    session: SimulationSession, progress: tuple[int, int, datetime | None] | None
) -> SessionView:
    data = session_data(session, progress)
    return SessionView(
        data=data,
        progress=Progress(progress[0], progress[1], when(progress[2]))
        if progress is not None
        else None,
        id=data.session_id,
        state=data.state,
        symbols=", ".join(data.symbols),
        range=f"{day(data.start_date)} → {day(data.end_date)}",
        created=stamp(data.created_at),
        updated=stamp(data.updated_at),
    )


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One line of the sessions list: only what the list shows, written straight from the
    session (a list holds up to a plan's cap of them and refreshes every few seconds)."""

    id: str
    state: str
    symbols: str
    range: str
    progress: Progress | None
    created: str
    """UTC, without the zone (the list says UTC once, in its headers)."""
    updated: str


def session_row(
    session: SimulationSession, progress: tuple[int, int, datetime | None] | None
) -> SessionRow:
    span = session.date_range
    return SessionRow(
        id=session.id,
        state=session.state.value,
        symbols=", ".join(s.ticker for s in session.symbols),
        range=f"{span.first_day.isoformat()} → {span.last_day.isoformat()}",
        progress=Progress(progress[0], progress[1], when(progress[2]))
        if progress is not None
        else None,
        created=stamp(session.created_at),
        updated=stamp(session.updated_at),
    )


@dataclass(frozen=True, slots=True)
class CoverageRow:
    symbol: str
    name: str
    exchange: str
    asset_class: str
    currency: str
    timeframe: str
    first: str
    last: str
    bars: str
    synthetic: bool


def coverage_rows(listed: Sequence[InstrumentCoverage]) -> list[CoverageRow]:
    """One row per stored (symbol, timeframe), symbols in catalog order."""
    rows = []
    for entry in listed:
        i = entry.instrument
        for c in sorted(entry.data, key=lambda c: c.timeframe.seconds):
            rows.append(
                CoverageRow(
                    symbol=i.symbol.ticker,
                    name=i.name,
                    exchange=i.exchange,
                    asset_class=i.symbol.asset_class.value,
                    currency=i.currency,
                    timeframe=c.timeframe.value,
                    first=when(c.first),
                    last=when(c.last),
                    bars=f"{c.bars:,}",
                    synthetic=c.source is DataSource.SYNTHETIC,
                )
            )
    return rows
