"""Exact money: the bounds of every number a client sends, and the one decimal context the
engine computes in (docs/protocol.md §7.5, *Exact money*, proves the precision enough).

Every amount the engine forms from bounded inputs is a sum of products with at most
`BASIS_PLACES` decimal places and fewer than `MONEY_PRECISION` digits, so no operation of
`MONEY_CONTEXT` ever rounds. The context traps `Inexact` all the same: should an unforeseen
path ever need more digits, it fails loudly (the broker then rejects that one order) rather
than rounding in silence. The few roundings the engine does on purpose (commission to the
cent, a partial close's share of the cost basis, `avg_price` for display) go through
`round_places`/`divide_places`, which work on exact integer ratios and need no context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from functools import wraps
from typing import ParamSpec, TypeVar

from domain.errors import InvalidOrder

MONEY_PRECISION = 100
"""Digits of `MONEY_CONTEXT`; the largest amount the engine can form has at most 80."""

MONEY_CONTEXT = Context(
    prec=MONEY_PRECISION,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)

CLIENT_PLACES = 8
"""Decimal places of any number a client sends in an order or an engine setting."""

BAR_PLACES = 12
"""Decimal places of a stored bar price or volume (docs/protocol.md §8.5)."""

BASIS_PLACES = 32
"""Places of the cost basis a partial close releases: as many as a fill's value can have
(8 of a quantity + 24 of a slipped price), so a close at an even share releases it exactly."""

AVG_PRICE_PLACES = 12
"""Places `avg_price` is rounded to (half-even) for display; it never feeds P&L."""

CENT = Decimal("0.01")

P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """Run `function` in `MONEY_CONTEXT`, whatever context its caller has.

    The context is set, not copied (half the cost of `localcontext`, and the fill path
    enters it twice per fill), so code running in it must never change its settings:
    `localcontext(...)` makes a copy for that, as domain.metrics does."""

    @wraps(function)
    def in_money_context(*args: P.args, **kwargs: P.kwargs) -> R:
        previous = getcontext()
        if previous is MONEY_CONTEXT:
            return function(*args, **kwargs)
        setcontext(MONEY_CONTEXT)
        try:
            return function(*args, **kwargs)
        finally:
            setcontext(previous)

    return in_money_context


# ---------------------------------------------------------------- bounds


@dataclass(frozen=True, slots=True)
class Bound:
    """A positive number written with at most `places` decimal places, at most `maximum`.

    At most `digits` digits in all (integer part of the maximum plus the places)."""

    places: int
    maximum: Decimal

    @property
    def digits(self) -> int:
        return len(str(int(self.maximum))) + self.places


QUANTITY = Bound(CLIENT_PLACES, Decimal(10) ** 10)
PRICE = Bound(CLIENT_PLACES, Decimal(10) ** 10)
NOTIONAL = Bound(CLIENT_PLACES, Decimal(10) ** 12)

ORDER_BOUNDS: dict[str, Bound] = {
    "quantity": QUANTITY,
    "notional": NOTIONAL,
    "limit_price": PRICE,
    "stop_price": PRICE,
    "stop_loss": PRICE,
    "take_profit": PRICE,
}
"""Every number field of an order and its bound: the one definition the server's protocol
edge, the domain and the SDK all check."""

_SHOWN_CHARACTERS = 40


def shown(value: Decimal) -> str:
    """A value for an error message: at most 40 characters (a 50-digit number is cut)."""
    text = str(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 1] + "…"


def places_of(value: Decimal) -> int:
    """Decimal places `value` needs (trailing zeros do not count: 1.50 has 1)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    digits = value.as_tuple().digits
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing)


def check_bound(field: str, value: Decimal, bound: Bound) -> None:
    """Refuse `value` for `field` unless it is finite, above 0 and within `bound`.

    Looks only at the number's sign, exponent and digits, so any Decimal, 1E+9999 and
    50-digit ones included, is judged without arithmetic and without the decimal context.
    """
    if not value.is_finite():
        raise InvalidOrder(
            field, f"{field} must be a finite number", value=shown(value), bound="finite"
        )
    if value <= 0:
        raise InvalidOrder(field, f"{field} must be above 0", value=shown(value), bound="min")
    if value.adjusted() > bound.maximum.adjusted() or value > bound.maximum:
        raise InvalidOrder(
            field,
            f"{field} must be at most {bound.maximum:,}",
            value=shown(value),
            bound="max",
            max=str(bound.maximum),
        )
    # places_of(value) <= -exponent, so a short enough exponent needs no digit count.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > bound.places and places_of(value) > bound.places:
        raise InvalidOrder(
            field,
            f"{field} has at most {bound.places} decimal places",
            value=shown(value),
            bound="max_places",
            max_places=bound.places,
        )


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step` (> 0), exactly, in integers."""
    numerator, denominator = value.as_integer_ratio()
    step_numerator, step_denominator = step.as_integer_ratio()
    return (numerator * step_denominator) % (denominator * step_numerator) == 0


def check_step(field: str, value: Decimal, step: Decimal, name: str) -> None:
    """Refuse `value` unless it is a multiple of `step` (`name`: lot_size or tick_size)."""
    if not is_multiple(value, step):
        raise InvalidOrder(
            field,
            f"{field} must be a multiple of the {name.replace('_', ' ')} {step}",
            value=shown(value),
            bound=name,
            **{name: str(step)},
        )


def check_step_size(name: str, step: Decimal) -> None:
    """An instrument's lot or tick size: positive with at most `CLIENT_PLACES` places (the
    catalog's are; the precision proof relies on it). A broken one is a configuration bug."""
    if not step.is_finite() or step <= 0 or places_of(step) > CLIENT_PLACES:
        raise ValueError(f"{name} {step} is not above 0 with at most {CLIENT_PLACES} places")


# ---------------------------------------------------------------- deliberate roundings


def _from_ratio(numerator: int, denominator: int, places: int, rounding: str) -> Decimal:
    """numerator / denominator rounded to `places` places, in integers (no context)."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    scaled = numerator * 10**places
    quotient, remainder = divmod(abs(scaled), denominator)
    twice = 2 * remainder
    if twice > denominator or (
        twice == denominator and (rounding == ROUND_HALF_UP or quotient % 2 == 1)
    ):
        quotient += 1
    signed = -quotient if scaled < 0 else quotient
    return Decimal(signed).scaleb(-places, MONEY_CONTEXT)


_ROUNDING_CONTEXT = Context(
    prec=MONEY_PRECISION,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""MONEY_CONTEXT without the Inexact trap, for `round_places`' one deliberate rounding."""

_QUANTA = [Decimal(1).scaleb(-places) for places in range(BASIS_PLACES + 1)]


def round_places(value: Decimal, places: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` rounded to `places` places (ROUND_HALF_EVEN or ROUND_HALF_UP, which rounds
    halves away from zero), whatever the decimal context; a zero is never negative."""
    quantum = _QUANTA[places] if 0 <= places <= BASIS_PLACES else Decimal(1).scaleb(-places)
    # One rounding of an exact value: `quantize` is that (it only refuses a result of more
    # than MONEY_PRECISION digits, which no amount of the engine has).
    rounded = value.quantize(quantum, rounding, _ROUNDING_CONTEXT)
    return rounded if rounded else rounded.copy_abs()


def divide_places(
    dividend: Decimal, divisor: Decimal, places: int, rounding: str = ROUND_HALF_EVEN
) -> Decimal:
    """dividend / divisor rounded once to `places` places, whatever the decimal context."""
    a, b = dividend.as_integer_ratio()
    c, d = divisor.as_integer_ratio()
    if c == 0:
        raise ZeroDivisionError("division by zero")
    return _from_ratio(a * d, b * c, places, rounding)


def budget(notional: Decimal) -> Decimal:
    """A notional within the NOTIONAL maximum cut down (toward zero) to its places, so
    `cash / 3` makes a valid budget: never more money than given. Anything else is
    returned as is, for `check_bound` to judge."""
    if not notional.is_finite() or not 0 < notional <= NOTIONAL.maximum:
        return notional
    exponent = notional.as_tuple().exponent
    if isinstance(exponent, int) and -exponent <= NOTIONAL.places:
        return notional  # no more places than allowed, trailing zeros or not
    if places_of(notional) <= NOTIONAL.places:
        return notional
    numerator, denominator = notional.as_integer_ratio()
    units = numerator * 10**NOTIONAL.places // denominator
    return Decimal(units).scaleb(-NOTIONAL.places, MONEY_CONTEXT)


def ratio(dividend: Decimal, divisor: Decimal) -> float:
    """dividend / divisor as the nearest float (for percentages and other ratios)."""
    a, b = dividend.as_integer_ratio()
    c, d = divisor.as_integer_ratio()
    return (a * d) / (b * c)
