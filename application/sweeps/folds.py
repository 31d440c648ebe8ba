"""Walk-forward folds: the range cut into K consecutive folds by trading day, each split
into a training window and the test window that follows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from application.sweeps.model import EquityCurve, InvalidSweep, Window

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Fold:
    number: int
    train: Window
    test: Window


def cut_folds(
    days: Sequence[date], folds: int, train_pct: float = 70.0, *, anchored: bool = False
) -> list[Fold]:
    """`folds` consecutive folds of (nearly) equal trading-day counts; in each the first
    `train_pct` % of days train and the rest test. Anchored: every training window starts
    on the first day of the range."""
    if folds < 1:
        raise InvalidSweep("--walk-forward needs at least 1 fold")
    if not 0 < train_pct < 100:
        raise InvalidSweep("--train-pct must be between 0 and 100 (exclusive)")
    n = len(days)
    if n < folds * 2:
        raise InvalidSweep(
            f"{n} trading days cannot make {folds} folds of a training and a test day each"
        )
    bounds = [n * i // folds for i in range(folds + 1)]
    result = []
    for i in range(folds):
        first, stop = bounds[i], bounds[i + 1]
        size = stop - first
        train_days = min(max(1, round(size * train_pct / 100)), size - 1)
        split = first + train_days
        train_start = days[0] if anchored else days[first]
        result.append(
            Fold(
                i + 1,
                Window(train_start.isoformat(), days[split - 1].isoformat()),
                Window(days[split].isoformat(), days[stop - 1].isoformat()),
            )
        )
    return result


def stitch(curves: Sequence[EquityCurve], capital: Decimal) -> EquityCurve:
    """One daily equity series from consecutive test windows: each window's returns applied
    to where the previous one ended, starting from `capital`, in cents."""
    stitched: list[tuple[date, Decimal]] = []
    level = capital
    for curve in curves:
        if not curve:
            continue
        base = curve[0][1]
        if not stitched:
            stitched.append((curve[0][0], level))
        if base <= 0:
            raise ValueError("a test window started with no equity")
        for day, equity in curve[1:]:
            stitched.append((day, (level * equity / base).quantize(CENT, ROUND_HALF_EVEN)))
        level = stitched[-1][1]
    return tuple(stitched)
