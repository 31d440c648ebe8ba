"""Our §4.6 metrics agree with empyrical's on random daily equity series.

empyrical is imported unconditionally: if it is missing this module fails to collect
(the suite goes red) rather than skipping.

empyrical rebuilds the equity curve as a float product of (1 + r), which carries a rounding
drift of a few ulps per day, while we work from the exact decimal equity. The random series
therefore move by at least 0.1 % on the days they move at all (flat days are exactly flat), so
that any non-zero drawdown is large enough for that drift to stay far below the 1e-9 relative
tolerance. Both sides get the same float returns (`daily_returns`); that they are the returns
of the equity is checked separately against numpy.
"""

from __future__ import annotations

import math
import warnings
from decimal import ROUND_HALF_UP, Decimal

import empyrical
import numpy as np
import numpy.typing as npt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.metrics import compute_metrics, daily_returns

REL_TOL = 1e-9
ABS_TOL = 1e-12
CENT = Decimal("0.01")
FLOOR = Decimal("1.00")

# A day's move in basis points: flat, or between -50 % and +100 % but never under 0.1 %.
moves = st.one_of(
    st.just(0),
    st.integers(min_value=-5000, max_value=-10),
    st.integers(min_value=10, max_value=10000),
)


@st.composite
def equity_series(draw: st.DrawFn) -> list[Decimal]:
    """2..300 positive cent amounts: a random walk with flat stretches, rallies and drawdowns."""
    equity = [Decimal(draw(st.integers(min_value=100_000, max_value=100_000_000))) * CENT]
    days = draw(st.integers(min_value=1, max_value=299))
    while len(equity) <= days:
        move = draw(moves)
        repeat = draw(st.integers(min_value=1, max_value=5)) if move == 0 else 1
        for _ in range(min(repeat, days + 1 - len(equity))):
            step = (equity[-1] * (1 + Decimal(move) / 10_000)).quantize(CENT, ROUND_HALF_UP)
            equity.append(max(step, FLOOR))
    return equity


def _metrics_of(equity: list[Decimal]) -> dict[str, float | None]:
    metrics = compute_metrics(
        equity,
        [],
        bars_total=len(equity),
        bars_with_position=0,
        total_commission=Decimal(0),
        total_slippage=Decimal(0),
    )

    def fraction(pct: float | None) -> float | None:
        return None if pct is None else pct / 100.0

    return {
        "total_return": fraction(metrics.total_return_pct),
        "annual_return": fraction(metrics.annual_return_pct),
        "annual_volatility": fraction(metrics.annual_volatility_pct),
        "sharpe_ratio": metrics.sharpe_ratio,
        "sortino_ratio": metrics.sortino_ratio,
        "max_drawdown": fraction(metrics.max_drawdown_pct),
        "calmar_ratio": metrics.calmar_ratio,
    }


def _empyrical_of(returns: npt.NDArray[np.float64]) -> dict[str, float]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "total_return": float(empyrical.cum_returns_final(returns)),
            "annual_return": float(empyrical.annual_return(returns, period="daily")),
            "annual_volatility": float(empyrical.annual_volatility(returns, period="daily")),
            "sharpe_ratio": float(empyrical.sharpe_ratio(returns, period="daily")),
            "sortino_ratio": float(empyrical.sortino_ratio(returns, period="daily")),
            "max_drawdown": float(empyrical.max_drawdown(returns)),
            "calmar_ratio": float(empyrical.calmar_ratio(returns, period="daily")),
        }


def _assert_agrees(name: str, ours: float | None, theirs: float, abs_tol: float) -> None:
    if not math.isfinite(theirs):
        assert ours is None, f"{name}: empyrical gives {theirs}, we give {ours}"
        return
    assert ours is not None, f"{name}: empyrical gives {theirs}, we give None"
    assert math.isfinite(ours), f"{name}: {ours}"
    assert math.isclose(ours, theirs, rel_tol=REL_TOL, abs_tol=abs_tol), (
        f"{name}: ours {ours!r} != empyrical {theirs!r}"
    )


@settings(max_examples=400, deadline=None)
@given(equity_series())
@example([Decimal("1000.00"), Decimal("1000.00")])  # one flat day
@example([Decimal("1000.00")] * 50)  # flat throughout
@example([Decimal("1000.00"), Decimal("1100.00")])  # a single return
@example([Decimal("1000.00"), Decimal("1100.00"), Decimal("1210.00"), Decimal("1331.00")])
@example([Decimal("1000.00"), Decimal("900.00"), Decimal("810.00")])  # only losses
@example([Decimal("1000.00"), Decimal("999.00"), Decimal("1000.00")])  # back to the start
@example([Decimal("1000.00"), Decimal("2000.00"), Decimal("1000.00")])
@example([Decimal("1000.00"), Decimal("1001.00"), Decimal("1001.00"), Decimal("1002.00")])
def test_metrics_match_empyrical(equity: list[Decimal]) -> None:
    ours = _metrics_of(equity)
    theirs = _empyrical_of(np.array(daily_returns(equity), dtype=np.float64))
    assert set(ours) == set(theirs)
    drawdown = ours["max_drawdown"]
    for name, value in theirs.items():
        abs_tol = ABS_TOL
        if name == "calmar_ratio" and drawdown:
            # calmar = annual return / |max drawdown|: the annual return's absolute
            # tolerance, carried through the division.
            abs_tol = ABS_TOL / abs(drawdown)
        _assert_agrees(name, ours[name], value, abs_tol)


@settings(max_examples=200, deadline=None)
@given(equity_series())
def test_daily_returns_are_the_equity_returns(equity: list[Decimal]) -> None:
    values = np.array([float(e) for e in equity], dtype=np.float64)
    expected = values[1:] / values[:-1] - 1.0
    ours = daily_returns(equity)
    assert len(ours) == len(equity) - 1
    for got, want in zip(ours, expected.tolist(), strict=True):
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15)


def test_annual_return_overflow_is_none_like_empyrical_inf() -> None:
    equity = [Decimal("1000.00"), Decimal("100000.00")]  # 100x in a day: 100^252 overflows
    ours = _metrics_of(equity)
    theirs = _empyrical_of(np.array(daily_returns(equity), dtype=np.float64))
    assert not math.isfinite(theirs["annual_return"])
    assert ours["annual_return"] is None
    assert ours["calmar_ratio"] is None
