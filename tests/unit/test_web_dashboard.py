"""The dashboard's own pieces, without a server: what the services give it (a session
looked at without counting as activity, the bars a session traded over), and how it writes
them out (rows, trades CSV, chart tracks, the CSRF key)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.bars.synthetic import RandomWalkBarGenerator
from adapters.storage.memory import InMemorySessionRepository
from application.bars import MarketDataService
from application.sessions import SessionService
from domain.bars import BarSeries, DataSource, Timeframe
from domain.errors import AccessDenied, SessionNotFound
from domain.limits import Plan
from domain.session import EngineSettings
from entrypoints.protocol import messages as m
from entrypoints.sdk.plots import price_track
from entrypoints.web.downloads import TRADE_COLUMNS, trades_csv
from entrypoints.web.routes import csrf_secret
from entrypoints.web.views import session_view
from tests.fakes import (
    BARS_START,
    FakeClock,
    InMemoryBarStore,
    InMemoryCatalog,
    bars_of,
    principal,
    session_params,
)

ALICE = principal(Plan.PROFESSIONAL, "alice")
BOB = principal(Plan.PROFESSIONAL, "bob")


async def test_view_checks_ownership_but_does_not_count_as_activity(
    service: SessionService, clock: FakeClock, repository: InMemorySessionRepository
) -> None:
    session = await service.create(ALICE, session_params())
    created_expiry = session.expires_at
    clock.advance(minutes=30)
    seen = await service.view(ALICE, session.id)
    assert seen.id == session.id
    stored = await repository.get(session.id)
    assert stored is not None
    assert stored.expires_at == created_expiry  # a look does not keep it alive
    with pytest.raises(AccessDenied):
        await service.view(BOB, session.id)
    with pytest.raises(SessionNotFound):
        await service.view(ALICE, "sess_missing")
    touched = await service.get(ALICE, session.id)  # what a request on it does
    assert touched.expires_at == created_expiry + timedelta(minutes=30)


async def test_session_bars_are_the_stored_bars_inside_the_sessions_days(
    service: SessionService, clock: FakeClock
) -> None:
    store = InMemoryBarStore()
    closes = [str(100 + i) for i in range(20)]  # 20 daily closes from 2024-01-02
    await store.write(bars_of("AAPL", *closes), DataSource.IMPORTED, replace=False)
    market = MarketDataService(store, InMemoryCatalog(), RandomWalkBarGenerator(), clock)
    session = await service.create(ALICE, session_params(start="2024-01-05", end="2024-01-10"))
    found = await market.session_bars(session)
    assert list(found) == ["AAPL"]
    bars = found["AAPL"].bars()
    assert [b.time.date().isoformat() for b in bars] == [
        "2024-01-05",
        "2024-01-06",
        "2024-01-07",
        "2024-01-08",
        "2024-01-09",
        "2024-01-10",
    ]
    assert bars[0].close == Decimal(103)


def test_price_track_keeps_every_bar_of_a_series() -> None:
    series = bars_of("AAPL", "187.15", "185.64", "184.25")
    track = price_track(series)
    assert list(track.times) == list(series.times)
    assert list(track.closes) == [187.15, 185.64, 184.25]
    assert len(track.opens) == len(track.highs) == len(track.lows) == len(track.volumes) == 3


def test_price_track_takes_the_bars_asked_for() -> None:
    series = bars_of("AAPL", "187.15", "185.64", "184.25", "183.10")
    track = price_track(series, 1, 3)
    assert list(track.times) == list(series.times[1:3])
    assert list(track.closes) == [185.64, 184.25]
    assert len(price_track(BarSeries.empty("AAPL", Timeframe.D1)).times) == 0


def test_trades_csv_writes_exact_amounts_and_utc_times() -> None:
    entry = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
    trade = m.TradeData(
        symbol="EUR/USD",
        side="long",
        quantity=Decimal("1000.5"),
        entry_time=entry,
        entry_price=Decimal("1.10000001"),
        exit_time=entry + timedelta(days=3),
        exit_price=Decimal("1.1"),
        pnl=Decimal("-0.00001"),
        return_pct=-0.0000009,
        commission=Decimal("0"),
    )
    rows = list(csv.reader(io.StringIO(trades_csv([trade, trade]))))
    assert tuple(rows[0]) == TRADE_COLUMNS
    assert len(rows) == 3
    row = dict(zip(TRADE_COLUMNS, rows[1], strict=True))
    assert row["symbol"] == "EUR/USD"
    assert Decimal(row["quantity"]) == Decimal("1000.5")
    assert Decimal(row["entry_price"]) == Decimal("1.10000001")
    assert Decimal(row["pnl"]) == Decimal("-0.00001")
    assert row["entry_time"] == "2024-01-02T21:00:00Z"
    assert row["exit_time"] == "2024-01-05T21:00:00Z"
    assert trades_csv([]).splitlines() == [",".join(TRADE_COLUMNS)]


async def test_session_view_writes_out_times_range_progress_and_settings(
    service: SessionService,
) -> None:
    session = await service.create(
        ALICE,
        session_params(
            symbols=["AAPL", "MSFT"],
            metadata={"note": "<b>bold</b>"},
            engine=EngineSettings(Decimal("0.005"), Decimal("2.50")),
        ),
    )
    when = BARS_START
    view = session_view(session, (25, 100, when))
    assert view.id == session.id
    assert view.state == "ready"
    assert view.symbols == "AAPL, MSFT"
    assert view.range == "2023-01-03 → 2023-12-29"
    assert view.created == session.created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert view.expires == session.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert view.progress is not None
    assert view.progress.percent == 25.0
    assert view.progress.sim_time == "2024-01-02 21:00:00 UTC"
    settings = dict(view.settings())
    assert settings["Slippage (bps)"] == "2.5"
    assert settings["Commission per share"] == "0.005"
    assert settings["Volume cap (fraction of a bar)"] == "none"
    assert '"note": "<b>bold</b>"' in view.metadata_json  # raw text; the template escapes it
    assert not view.live
    assert session_view(session, None).progress is None


def test_the_csrf_key_comes_from_the_jwt_secret_and_does_not_reveal_it() -> None:
    secret = "a-jwt-secret-of-at-least-thirty-two-bytes"
    assert csrf_secret(secret) == csrf_secret(secret)  # every process agrees
    assert csrf_secret(secret) != csrf_secret(secret + "x")
    assert secret not in csrf_secret(secret)
