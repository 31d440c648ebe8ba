"""domain.money: the bounds of order numbers, the deliberate roundings (checked against
fractions), the money context, and the broker's net around one order's fault."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, Inexact, getcontext, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

import domain.broker
from domain.broker import BarQuote, Broker, ReportReason
from domain.errors import InvalidOrder, OrderFailed
from domain.fills import commission as real_commission
from domain.money import (
    MONEY_CONTEXT,
    NOTIONAL,
    PRICE,
    QUANTITY,
    budget,
    check_bound,
    check_step,
    divide_places,
    exact,
    is_multiple,
    places_of,
    round_places,
)
from domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, validate_order
from domain.session import EngineSettings

D = Decimal
T0 = datetime(2024, 1, 2, tzinfo=UTC)


def refusal(field: str, value: Decimal) -> dict[str, object]:
    with pytest.raises(InvalidOrder) as caught:
        check_bound(field, value, QUANTITY if field == "quantity" else NOTIONAL)
    return caught.value.details


@pytest.mark.parametrize(
    ("value", "bound"),
    [
        (D("NaN"), "finite"),
        (D("sNaN"), "finite"),
        (D("-Infinity"), "finite"),
        (D(0), "min"),
        (D("-0.00000001"), "min"),
        (D("1e308"), "max"),
        (D("1E+9999"), "max"),
        (D("9" * 50), "max"),
        (D("10000000000.00000001"), "max"),
        (D("0.000000001"), "max_places"),
        (D("1E-9999"), "max_places"),
    ],
)
def test_values_beyond_a_bound_name_the_field_and_the_bound(value: Decimal, bound: str) -> None:
    details = refusal("quantity", value)
    assert details["field"] == "quantity"
    assert details["bound"] == bound
    assert len(str(details["value"])) <= 40  # a 50-digit value is cut, not echoed whole


@pytest.mark.parametrize(
    "value", [D("0.00000001"), D("10000000000"), D("1E+10"), D("12.50000000000000"), D("7")]
)
def test_values_within_the_bounds_pass(value: Decimal) -> None:
    check_bound("quantity", value, QUANTITY)


def test_the_bounds_as_documented() -> None:
    assert (QUANTITY.places, QUANTITY.maximum, QUANTITY.digits) == (8, D(10) ** 10, 19)
    assert (PRICE.places, PRICE.maximum, PRICE.digits) == (8, D(10) ** 10, 19)
    assert (NOTIONAL.places, NOTIONAL.maximum, NOTIONAL.digits) == (8, D(10) ** 12, 21)


def test_places_ignore_trailing_zeros() -> None:
    assert [places_of(D(v)) for v in ("1.50", "100E-2", "1E+5", "0.00000001", "7")] == [
        1,
        0,
        0,
        8,
        0,
    ]


def test_steps_are_exact_multiples() -> None:
    assert is_multiple(D("600.05"), D("0.01"))
    assert is_multiple(D("1.25"), D("0.25"))
    assert not is_multiple(D("600.005"), D("0.01"))
    assert not is_multiple(D("0.3"), D("0.25"))
    with pytest.raises(InvalidOrder) as caught:
        check_step("limit_price", D("600.005"), D("0.01"), "tick_size")
    assert caught.value.details == {
        "field": "limit_price",
        "value": "600.005",
        "bound": "tick_size",
        "tick_size": "0.01",
    }


def _rounded(value: Fraction, places: int, half_up: bool) -> Fraction:
    """The rounding oracle, in fractions: nearest multiple of 10^-places, ties as asked."""
    scaled = value * 10**places
    low = math.floor(scaled)
    rest = scaled - low
    if rest > Fraction(1, 2):
        low += 1
    elif rest == Fraction(1, 2):
        # half-up is away from zero: a negative tie keeps the floor, the farther one
        low += (1 if scaled > 0 else 0) if half_up else low % 2
    return Fraction(low, 10**places)


decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30)


@given(decimals, st.integers(0, 40), st.booleans())
def test_round_places_rounds_once_exactly(value: Decimal, places: int, half_up: bool) -> None:
    rounding = ROUND_HALF_UP if half_up else ROUND_HALF_EVEN
    with localcontext() as ctx:
        ctx.prec = 3  # whatever the caller's context
        result = round_places(value, places, rounding)
    assert Fraction(result) == _rounded(Fraction(value), places, half_up)
    assert places_of(result) <= places


@given(decimals, decimals.filter(bool), st.integers(0, 40))
def test_divide_places_rounds_the_exact_quotient_once(
    dividend: Decimal, divisor: Decimal, places: int
) -> None:
    result = divide_places(dividend, divisor, places)
    assert Fraction(result) == _rounded(Fraction(dividend) / Fraction(divisor), places, False)


def test_the_money_context_refuses_to_round() -> None:
    @exact
    def third() -> Decimal:
        return D(1) / D(3)

    with pytest.raises(Inexact):
        third()
    with localcontext(MONEY_CONTEXT):
        assert D("1e60") + D("1e-32") == D("1" + "0" * 60 + "." + "0" * 31 + "1")


# ---------------------------------------------------------------- the broker's net

SETTINGS = EngineSettings()
LOTS = {"AAPL": D(1)}
TICKS = {"AAPL": D("0.01")}
BAR = BarQuote(D(100), D(101), D(99), D(100), D(10_000))


def buy(order_id: str, quantity: int) -> OrderRequest:
    return OrderRequest(order_id, "AAPL", OrderSide.BUY, OrderType.MARKET, quantity=D(quantity))


def test_validate_order_checks_the_tick_only_when_known() -> None:
    request = OrderRequest(
        "l", "AAPL", OrderSide.BUY, OrderType.LIMIT, quantity=D(1), limit_price=D("100.005")
    )
    validate_order(request, LOTS)
    with pytest.raises(InvalidOrder) as caught:
        validate_order(request, LOTS, TICKS)
    assert caught.value.details["bound"] == "tick_size"


def test_a_fault_at_submit_refuses_that_order(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Broker(D(10_000), LOTS, SETTINGS, TICKS, session_id="sess_net")

    def broken(*_: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(domain.broker, "validate_order", broken)
    with pytest.raises(OrderFailed) as caught, caplog.at_level(logging.ERROR):
        broker.submit(buy("o1", 1), 1)
    assert caught.value.code == "INTERNAL_ERROR"
    assert caught.value.details == {"order_id": "o1"}
    assert broker.open_order("o1") is None
    (record,) = caplog.records
    assert "o1" in record.getMessage()
    assert "sess_net" in record.getMessage()


def test_a_fault_while_filling_rejects_that_order_and_the_bar_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Broker(D(10_000), LOTS, SETTINGS, TICKS, session_id="sess_net")
    broker.submit(buy("boom", 7), 1)
    broker.submit(buy("fine", 5), 1)
    real = real_commission

    def faulty(quantity: Decimal, price: Decimal, settings: EngineSettings) -> Decimal:
        if quantity == 7:
            raise RuntimeError("injected")
        return real(quantity, price, settings)

    monkeypatch.setattr(domain.broker, "commission", faulty)
    with caplog.at_level(logging.ERROR):
        reports = broker.process_bar(1, T0, {"AAPL": BAR})
    by_id = {r.order_id: r for r in reports}
    assert by_id["boom"].status is OrderStatus.REJECTED
    assert by_id["boom"].reason is ReportReason.INTERNAL_ERROR
    assert by_id["fine"].status is OrderStatus.FILLED
    # The failed order moved no money: only the 5 shares were paid for.
    assert broker.cash == D(10_000) - 5 * D(100)
    assert broker.position_quantity("AAPL") == 5
    assert len(caplog.records) == 1
    assert "boom" in caplog.records[0].getMessage()


@given(st.decimals(min_value=D("0.00000001"), max_value=NOTIONAL.maximum, allow_nan=False))
def test_a_budget_is_the_largest_eight_place_amount_not_above_the_notional(
    notional: Decimal,
) -> None:
    cut = budget(notional)
    assert places_of(cut) <= 8
    assert Fraction(cut) <= Fraction(notional) < Fraction(cut) + Fraction(1, 10**8)


@pytest.mark.parametrize("value", [D("NaN"), D(0), D(-5), D("1e13"), D("1E+9999")])
def test_a_budget_leaves_values_out_of_bounds_to_the_bound_check(value: Decimal) -> None:
    assert budget(value).compare_total(value) == 0


def test_exact_restores_the_callers_context_and_never_changes_its_own() -> None:
    @exact
    def inside() -> int:
        return getcontext().prec

    with localcontext() as caller:
        caller.prec = 5
        assert inside() == 100
        assert getcontext() is caller
        with pytest.raises(Inexact):
            exact(lambda: D(2) / D(3))()
        assert getcontext() is caller
    assert MONEY_CONTEXT.prec == 100
    assert MONEY_CONTEXT.traps[Inexact]
