"""Ranking trials by one metric (a null metric ranks last, a failed trial after that; ties
keep trial order) and the heatmap of two parameters (the best metric over the others)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from application.sweeps.model import MetricValue, ParamValue, TrialOutcome


@dataclass(frozen=True, slots=True)
class Objective:
    metric: str
    maximize: bool = True

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def score(self, outcome: TrialOutcome) -> float | None:
        """The metric as a number to rank by (None: null metric or failed trial)."""
        if not outcome.completed:
            return None
        return as_number(outcome.metric(self.metric))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b


def as_number(value: MetricValue) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


def rank(outcomes: Iterable[TrialOutcome], objective: Objective) -> list[TrialOutcome]:
    """Best first: completed trials with a value, then completed with a null value, then
    failed ones; ties in trial-number order."""

    def key(outcome: TrialOutcome) -> tuple[int, float, int]:
        value = objective.score(outcome)
        if value is None:
            return (1 if outcome.completed else 2, 0.0, outcome.number)
        return (0, -value if objective.maximize else value, outcome.number)

    return sorted(outcomes, key=key)


def best(outcomes: Iterable[TrialOutcome], objective: Objective) -> TrialOutcome | None:
    """The top completed trial (one with a null metric only when no trial has a value)."""
    ranked = rank(outcomes, objective)
    return ranked[0] if ranked and ranked[0].completed else None


@dataclass(frozen=True, slots=True)
class Heatmap:
    """`values[i][j]`: the best metric among the trials with x = xs[j] and y = ys[i]
    (None where no completed trial has a value)."""

    x: str
    y: str
    xs: tuple[ParamValue, ...]
    ys: tuple[ParamValue, ...]
    values: tuple[tuple[float | None, ...], ...]


def heatmap(
    outcomes: Sequence[TrialOutcome],
    x: str,
    y: str,
    objective: Objective,
    order: dict[str, Sequence[ParamValue]] | None = None,
) -> Heatmap:
    """The best metric over the other parameters for each (x, y) pair run; axes in the
    order of `order` (the search space) when given, else first-seen."""

    def axis(name: str) -> tuple[ParamValue, ...]:
        seen = {o.params[name]: None for o in outcomes if name in o.params}
        if order and name in order:
            return tuple(v for v in order[name] if v in seen)
        return tuple(seen)

    if outcomes and not all(x in o.params and y in o.params for o in outcomes):
        raise KeyError(f"not every trial has parameters {x!r} and {y!r}")
    xs, ys = axis(x), axis(y)
    cells: dict[tuple[ParamValue, ParamValue], float] = {}
    for outcome in outcomes:
        value = objective.score(outcome)
        if value is None:
            continue
        cell = (outcome.params[x], outcome.params[y])
        held = cells.get(cell)
        if held is None or objective.better(value, held):
            cells[cell] = value
    values = tuple(tuple(cells.get((vx, vy)) for vx in xs) for vy in ys)
    return Heatmap(x, y, xs, ys, values)
