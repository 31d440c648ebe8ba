"""What the dashboard hands out as files: a session's results as JSON (the `get_results`
shape of docs/protocol.md) and its closed trades as CSV, written by the CLI's own `--csv`
writer (`entrypoints.export`)."""

from __future__ import annotations

from application.simulation import SimulationResults
from entrypoints.export import TRADE_COLUMNS as TRADE_COLUMNS
from entrypoints.export import trades_csv as trades_csv
from entrypoints.protocol import messages as m
from entrypoints.protocol.engine import results_data


def results_json(session_id: str, results: SimulationResults) -> bytes:
    """The results exactly as `get_results` sends them (exact decimals as strings)."""
    return m.encoder.encode(results_data(session_id, results))
