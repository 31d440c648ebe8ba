"""What the dashboard hands out as files: a session's results as JSON (the `get_results`
shape of PROTOCOL.md §4.3) and its closed trades as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from application.simulation import SimulationResults
from domain.dates import format_instant
from entrypoints.protocol import messages as m
from entrypoints.protocol.engine import results_data

TRADE_COLUMNS = (
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "return_pct",
    "commission",
)


def results_json(session_id: str, results: SimulationResults) -> bytes:
    """The results exactly as `get_results` sends them (exact decimals as strings)."""
    return m.encoder.encode(results_data(session_id, results))


def trades_csv(trades: Sequence[m.TradeData]) -> str:
    """One header row, then one row per closed trade: exact amounts as written on the wire,
    times in ISO 8601 UTC. (A small writer of its own until the CLI's CSV export is shared.)"""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADE_COLUMNS)
    for t in trades:
        writer.writerow(
            (
                t.symbol,
                t.side,
                t.quantity,
                format_instant(t.entry_time),
                t.entry_price,
                format_instant(t.exit_time),
                t.exit_price,
                t.pnl,
                t.return_pct,
                t.commission,
            )
        )
    return out.getvalue()
