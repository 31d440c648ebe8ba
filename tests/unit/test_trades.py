"""FIFO round trips: several lots, partial closes, flips, commission shares, shorts, snapshots."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from domain.trades import ClosedTrade, LedgerState, OpenLot, TradeLedger, split_pro_rata

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def d(value: str | int) -> Decimal:
    return Decimal(value)


def test_a_long_round_trip() -> None:
    ledger = TradeLedger()
    assert ledger.record_fill("AAPL", "buy", d(10), d(100), d("1.00"), day(0)) == []
    closed = ledger.record_fill("AAPL", "sell", d(10), d(110), d("1.10"), day(1))
    assert closed == [
        ClosedTrade(
            symbol="AAPL",
            side="long",
            quantity=d(10),
            entry_time=day(0),
            entry_price=d(100),
            exit_time=day(1),
            exit_price=d(110),
            pnl=d("97.90"),  # 100 gross - 2.10 commission
            return_pct=10.0,
            commission=d("2.10"),
        )
    ]
    assert ledger.trades == closed
    assert ledger.open_lots("AAPL") == []
    assert ledger.position("AAPL") == 0


def test_a_sell_closes_the_oldest_lots_first_across_several() -> None:
    ledger = TradeLedger()
    ledger.record_fill("AAPL", "buy", d(10), d(100), d("1.00"), day(0))
    ledger.record_fill("AAPL", "buy", d(20), d(110), d("2.00"), day(1))
    ledger.record_fill("AAPL", "buy", d(30), d(120), d("3.00"), day(2))

    closed = ledger.record_fill("AAPL", "sell", d(35), d(130), d("3.50"), day(3))

    assert [(t.quantity, t.entry_price, t.entry_time) for t in closed] == [
        (d(10), d(100), day(0)),
        (d(20), d(110), day(1)),
        (d(5), d(120), day(2)),
    ]
    # Exit commission 3.50 split 10:20:5; entry commissions: all of lots 1 and 2, 5/30 of lot 3.
    assert [t.commission for t in closed] == [d("2.00"), d("4.00"), d("1.00")]
    assert [t.pnl for t in closed] == [d("298.00"), d("396.00"), d("49.00")]
    assert all(t.side == "long" and t.exit_time == day(3) for t in closed)
    assert ledger.open_lots("AAPL") == [OpenLot("long", d(25), day(2), d(120), d("2.50"))]
    assert ledger.position("AAPL") == 25


def test_partial_closes_of_one_lot_charge_its_entry_commission_exactly_once() -> None:
    ledger = TradeLedger()
    ledger.record_fill("MSFT", "buy", d(10), d(50), d("1.00"), day(0))
    first = ledger.record_fill("MSFT", "sell", d(3), d(55), d(0), day(1))
    second = ledger.record_fill("MSFT", "sell", d(3), d(45), d(0), day(2))
    third = ledger.record_fill("MSFT", "sell", d(4), d(50), d(0), day(3))

    assert [t.commission for t in first + second + third] == [d("0.30"), d("0.30"), d("0.40")]
    assert [t.pnl for t in first + second + third] == [d("14.70"), d("-15.30"), d("-0.40")]
    assert [t.return_pct for t in first + second + third] == [10.0, -10.0, 0.0]
    assert ledger.open_lots("MSFT") == []


def test_a_sell_larger_than_the_long_flips_to_short() -> None:
    ledger = TradeLedger()
    ledger.record_fill("AAPL", "buy", d(10), d(100), d("1.00"), day(0))

    closed = ledger.record_fill("AAPL", "sell", d(15), d(90), d("1.50"), day(1))

    assert len(closed) == 1
    assert closed[0].side == "long"
    assert closed[0].quantity == 10
    assert closed[0].commission == d("2.00")  # 1.00 entry + 10/15 of 1.50
    assert closed[0].pnl == d("-102.00")
    assert closed[0].return_pct == -10.0
    assert ledger.open_lots("AAPL") == [OpenLot("short", d(5), day(1), d(90), d("0.50"))]
    assert ledger.position("AAPL") == -5

    covered = ledger.record_fill("AAPL", "buy", d(5), d(80), d("0.40"), day(2))

    assert covered == [
        ClosedTrade(
            symbol="AAPL",
            side="short",
            quantity=d(5),
            entry_time=day(1),
            entry_price=d(90),
            exit_time=day(2),
            exit_price=d(80),
            pnl=d("49.10"),  # (90 - 80) x 5 - 0.90
            return_pct=12.5,  # (90 / 80 - 1) x 100
            commission=d("0.90"),
        )
    ]
    assert ledger.trades == closed + covered
    assert ledger.position("AAPL") == 0


def test_a_buy_larger_than_the_short_flips_to_long() -> None:
    ledger = TradeLedger()
    ledger.record_fill("TSLA", "sell", d(6), d(50), d("0.60"), day(0))
    ledger.record_fill("TSLA", "sell", d(4), d(60), d("0.40"), day(1))

    closed = ledger.record_fill("TSLA", "buy", d(25), d(40), d("2.50"), day(2))

    assert [(t.side, t.quantity, t.entry_price) for t in closed] == [
        ("short", d(6), d(50)),
        ("short", d(4), d(60)),
    ]
    assert [t.commission for t in closed] == [d("1.20"), d("0.80")]
    assert [t.pnl for t in closed] == [d("58.80"), d("79.20")]
    assert [t.return_pct for t in closed] == [25.0, 50.0]
    assert ledger.open_lots("TSLA") == [OpenLot("long", d(15), day(2), d(40), d("1.50"))]
    assert ledger.position("TSLA") == 15


def test_a_short_loses_when_the_price_rises() -> None:
    ledger = TradeLedger()
    ledger.record_fill("X", "sell", d(100), d("20.00"), d(0), day(0))
    [trade] = ledger.record_fill("X", "buy", d(100), d("25.00"), d(0), day(1))
    assert trade.side == "short"
    assert trade.pnl == d("-500.00")
    assert trade.return_pct == pytest.approx(-20.0)  # (20 / 25 - 1) x 100


def test_symbols_are_matched_separately() -> None:
    ledger = TradeLedger()
    ledger.record_fill("A", "buy", d(1), d(10), d(0), day(0))
    ledger.record_fill("B", "sell", d(1), d(10), d(0), day(0))
    assert ledger.record_fill("A", "buy", d(1), d(11), d(0), day(1)) == []
    [trade] = ledger.record_fill("B", "buy", d(1), d(9), d(0), day(2))
    assert (trade.symbol, trade.side, trade.pnl) == ("B", "short", d(1))
    assert ledger.position("A") == 2
    assert ledger.position("B") == 0
    assert ledger.open_lots("C") == []


def test_split_pro_rata_sums_exactly_and_never_goes_negative() -> None:
    assert split_pro_rata(d("10.00"), [d(1), d(2)]) == [d("3.33"), d("6.67")]
    # Rounding each quarter of 0.02 half-up on its own would hand out 0.04; cumulative
    # rounding hands out exactly 0.02, with no negative residue.
    assert split_pro_rata(d("0.02"), [d(1)] * 4) == [d("0.01"), d("0.00"), d("0.01"), d("0.00")]
    assert split_pro_rata(d("0.01"), [d(1)] * 3) == [d("0.00"), d("0.01"), d("0.00")]
    assert split_pro_rata(d("1.00"), [d(7)]) == [d("1.00")]
    assert split_pro_rata(d(0), [d(1), d(2)]) == [d(0), d(0)]
    with pytest.raises(ValueError, match="split"):
        split_pro_rata(d(1), [])
    with pytest.raises(ValueError, match="positive"):
        split_pro_rata(d(1), [d(1), d(0)])


def test_random_fills_conserve_commission_quantity_and_cash() -> None:
    rng = random.Random(20240101)
    for _ in range(200):
        ledger = TradeLedger()
        commissions = Decimal(0)
        cash = Decimal(0)
        position = Decimal(0)
        for step in range(rng.randint(1, 30)):
            side = rng.choice(("buy", "sell"))
            quantity = Decimal(rng.randint(1, 50))
            price = Decimal(rng.randint(100, 20000)) / 100
            commission = Decimal(rng.randint(0, 300)) / 100
            closed = ledger.record_fill("S", side, quantity, price, commission, day(step))
            assert all(t.commission >= 0 for t in closed)
            commissions += commission
            position += quantity if side == "buy" else -quantity
            cash += (-quantity if side == "buy" else quantity) * price - commission
            assert ledger.position("S") == position
            open_commission = sum((lot.entry_commission for lot in ledger.open_lots("S")), d(0))
            charged = sum((t.commission for t in ledger.trades), d(0))
            assert charged + open_commission == commissions
        if position:
            flatten = "sell" if position > 0 else "buy"
            price = Decimal(rng.randint(100, 20000)) / 100
            ledger.record_fill("S", flatten, abs(position), price, d("1.23"), day(99))
            cash += position * price - d("1.23")
            commissions += d("1.23")
        assert ledger.open_lots("S") == []
        assert sum((t.commission for t in ledger.trades), d(0)) == commissions
        # Flat again: the trades' net pnl is exactly the cash the fills made.
        assert sum((t.pnl for t in ledger.trades), d(0)) == cash


def test_state_round_trips_through_msgspec_and_the_ledger_carries_on() -> None:
    ledger = TradeLedger()
    ledger.record_fill("AAPL", "buy", d(10), d("100.25"), d("1.00"), day(0))
    ledger.record_fill("AAPL", "buy", d(10), d("101.50"), d("1.00"), day(1))
    ledger.record_fill("AAPL", "sell", d(15), d("103.00"), d("1.50"), day(2))
    ledger.record_fill("MSFT", "sell", d(3), d("300.00"), d("0.33"), day(2))

    wire = msgspec.json.encode(ledger.state())
    state = msgspec.json.decode(wire, type=LedgerState)
    restored = TradeLedger.restore(state)

    assert state == ledger.state()
    assert restored.trades == ledger.trades
    for symbol in ("AAPL", "MSFT"):
        assert restored.open_lots(symbol) == ledger.open_lots(symbol)
    next_fills = [
        ("AAPL", "sell", d(10), d("99.00"), d("0.99"), day(3)),
        ("MSFT", "buy", d(5), d("290.00"), d("0.50"), day(3)),
    ]
    for symbol, side, quantity, price, commission, time in next_fills:
        assert restored.record_fill(
            symbol, side, quantity, price, commission, time
        ) == ledger.record_fill(symbol, side, quantity, price, commission, time)
    assert restored.state() == ledger.state()


def test_a_snapshot_does_not_change_with_the_ledger() -> None:
    ledger = TradeLedger()
    ledger.record_fill("A", "buy", d(2), d(10), d(0), day(0))
    state = ledger.state()
    ledger.record_fill("A", "sell", d(1), d(12), d(0), day(1))
    ledger.record_fill("B", "buy", d(1), d(12), d(0), day(1))
    assert state.trades == []
    assert list(state.open_lots) == ["A"]
    assert state.open_lots["A"][0].quantity == 2
    restored = TradeLedger.restore(state)
    restored.record_fill("A", "sell", d(2), d(11), d(0), day(2))
    assert ledger.open_lots("A")[0].quantity == 1


@pytest.mark.parametrize(
    ("side", "quantity", "price", "commission", "time", "match"),
    [
        ("hold", "1", "1", "0", T0, "side"),
        ("buy", "0", "1", "0", T0, "quantity"),
        ("buy", "-1", "1", "0", T0, "quantity"),
        ("buy", "1", "0", "0", T0, "price"),
        ("buy", "1", "1", "-0.01", T0, "commission"),
        ("buy", "1", "1", "0", T0.replace(tzinfo=None), "timezone"),
    ],
)
def test_invalid_fills_are_refused(
    side: str, quantity: str, price: str, commission: str, time: datetime, match: str
) -> None:
    ledger = TradeLedger()
    with pytest.raises(ValueError, match=match):
        ledger.record_fill("A", side, d(quantity), d(price), d(commission), time)
    assert ledger.open_lots("A") == []
