"""The bodies of the REST endpoints (PROTOCOL.md §2): token, health, errors, and the
symbol catalog with the bars stored for each instrument."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from msgspec import Struct


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
