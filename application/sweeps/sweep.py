"""The sweep use case: expand the search space (grid, seeded random draw, or a sampler),
hand the trials to an executor, rank what comes back, and judge the best trial's Sharpe
against the number of trials (Deflated Sharpe Ratio)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from application.sweeps.dsr import deflated_sharpe, moments
from application.sweeps.model import InvalidSweep, Params, Trial, TrialOutcome, Window
from application.sweeps.ports import Sampler, TrialExecutor
from application.sweeps.ranking import Objective, best, rank
from application.sweeps.space import SearchSpace
from domain.metrics import TRADING_DAYS_PER_YEAR, daily_returns

SHARPE_METRIC = "sharpe_ratio"
BAYES_BATCH = 8
"""Proposals asked of the sampler before it hears their outcomes: fixed, so that the same
seed proposes the same trials whatever the number of workers."""
MAX_REFUSED_PROPOSALS = 1_000
DEFAULT_TRIALS = 100

ProgressCallback = Callable[[int, int, TrialOutcome | None], None]
"""(trials done, trials planned, best so far), after each completed trial."""


class Method(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    BAYES = "bayes"


@dataclass(frozen=True, slots=True)
class SweepRequest:
    space: SearchSpace
    objective: Objective
    method: Method = Method.GRID
    trials: int | None = None
    seed: int | None = None
    window: Window | None = None

    def validate(self, metric_names: Sequence[str]) -> None:
        """Every way the request is wrong, found before anything runs."""
        if self.objective.metric not in metric_names:
            raise InvalidSweep(
                f"unknown metric {self.objective.metric!r}; known: {', '.join(metric_names)}",
                {"metric": self.objective.metric},
            )
        if self.method is Method.GRID and self.trials is not None:
            raise InvalidSweep("--trials is for --method random or bayes; grid runs them all")
        if self.trials is not None and self.trials < 1:
            raise InvalidSweep("--trials must be at least 1")

    def planned(self) -> list[Params]:
        """The trials grid and random run (in order); a sampler plans as it goes."""
        if self.method is Method.GRID:
            return list(self.space.grid())
        if self.method is Method.RANDOM:
            return list(self.space.sample(self.trials or DEFAULT_TRIALS, self.seed))
        raise ValueError("a Bayesian sweep is planned by its sampler")


@dataclass(frozen=True, slots=True)
class SweepResult:
    request: SweepRequest
    outcomes: tuple[TrialOutcome, ...]
    """Every trial, in trial-number order."""
    best: TrialOutcome | None
    deflated_sharpe: float | None
    interrupted: bool = False
    ranked: tuple[TrialOutcome, ...] = field(default=(), repr=False)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.completed)


def run_sweep(
    request: SweepRequest,
    executor: TrialExecutor,
    *,
    sampler: Sampler | None = None,
    on_progress: ProgressCallback | None = None,
) -> SweepResult:
    """Run the sweep; Ctrl-C (KeyboardInterrupt) stops it and keeps what completed."""
    tracker = _Tracker(request.objective, on_progress)
    interrupted = False
    try:
        if request.method is Method.BAYES:
            if sampler is None:
                raise ValueError("a Bayesian sweep needs a sampler")
            _run_bayes(request, executor, sampler, tracker)
        else:
            planned = request.planned()
            tracker.total = len(planned)
            trials = [Trial(i, p, request.window) for i, p in enumerate(planned)]
            for outcome in executor.run(trials):
                tracker.add(outcome)
    except KeyboardInterrupt:
        interrupted = True
    return _result(request, executor, tracker.outcomes, interrupted)


def _run_bayes(
    request: SweepRequest, executor: TrialExecutor, sampler: Sampler, tracker: _Tracker
) -> None:
    objective = request.objective
    wanted = request.trials or DEFAULT_TRIALS
    feasible = len(request.space.grid())
    target = min(wanted, feasible)
    tracker.total = target
    for outcome in sorted(sampler.history(), key=lambda o: o.number):
        tracker.add(outcome, resumed=True)
    seen: dict[tuple[tuple[str, str], ...], TrialOutcome | None] = {
        _key(o.params): o for o in tracker.outcomes.values()
    }
    number = max(tracker.outcomes, default=-1) + 1
    refused = 0
    while len(tracker.outcomes) < target:
        batch: list[tuple[int, Trial]] = []
        while len(batch) < min(BAYES_BATCH, target - len(tracker.outcomes)):
            suggestion = sampler.ask()
            params_key = _key(suggestion.params)
            known = seen.get(params_key)
            if params_key in seen or not request.space.allows(suggestion.params):
                if known is not None:
                    sampler.tell(suggestion.key, known, objective.score(known))
                else:
                    sampler.discard(suggestion.key)
                refused += 1
                if refused > MAX_REFUSED_PROPOSALS:
                    return  # the sampler keeps proposing what ran or cannot run
                continue
            trial = Trial(number, dict(suggestion.params), request.window)
            number += 1
            batch.append((suggestion.key, trial))
            seen[params_key] = None  # running: a proposal of the same params is refused
        if not batch:
            return
        done: dict[int, TrialOutcome] = {}
        try:
            for outcome in executor.run([trial for _, trial in batch]):
                done[outcome.number] = outcome
                tracker.add(outcome)
        finally:  # told in trial order, the same history whatever ran them; kept if interrupted
            for proposal, trial in batch:
                finished = done.get(trial.number)
                if finished is not None:
                    seen[_key(trial.params)] = finished
                    sampler.tell(proposal, finished, objective.score(finished))


def _key(params: Params) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class _Tracker:
    def __init__(self, objective: Objective, on_progress: ProgressCallback | None) -> None:
        self.objective = objective
        self.on_progress = on_progress
        self.outcomes: dict[int, TrialOutcome] = {}
        self.best: TrialOutcome | None = None
        self.total = 0

    def add(self, outcome: TrialOutcome, *, resumed: bool = False) -> None:
        self.outcomes[outcome.number] = outcome
        score = self.objective.score(outcome)
        held = self.objective.score(self.best) if self.best is not None else None
        if outcome.completed and (
            self.best is None
            or (score is not None and (held is None or self.objective.better(score, held)))
            or (score == held and outcome.number < self.best.number)
        ):
            self.best = outcome
        if self.on_progress is not None:
            self.on_progress(len(self.outcomes), self.total, self.best)


def _result(
    request: SweepRequest,
    executor: TrialExecutor,
    by_number: dict[int, TrialOutcome],
    interrupted: bool,
) -> SweepResult:
    outcomes = tuple(by_number[n] for n in sorted(by_number))
    ranked = tuple(rank(outcomes, request.objective))
    top = best(outcomes, request.objective)
    if top is not None and not top.equity and not interrupted:
        top = _rerun(top, request.window, executor)  # resumed from a study: no curve kept
    return SweepResult(
        request,
        outcomes,
        top,
        deflated_sharpe_of(top, outcomes),
        interrupted,
        ranked,
    )


def _rerun(outcome: TrialOutcome, window: Window | None, executor: TrialExecutor) -> TrialOutcome:
    again = list(executor.run([Trial(outcome.number, outcome.params, window)]))
    if again and again[0].completed:
        return replace(outcome, equity=again[0].equity)
    return outcome


def deflated_sharpe_of(top: TrialOutcome | None, outcomes: Sequence[TrialOutcome]) -> float | None:
    """The DSR of `top` among `outcomes`: its daily Sharpe, skew and kurtosis from its
    equity curve; the trials' Sharpes from their (annualised) `sharpe_ratio` metric."""
    if top is None or len(top.equity) < 3:
        return None
    sharpes = []
    for outcome in outcomes:
        value = outcome.metric(SHARPE_METRIC) if outcome.completed else None
        if isinstance(value, int | float) and math.isfinite(value):
            sharpes.append(float(value) / math.sqrt(TRADING_DAYS_PER_YEAR))
    try:
        returns = daily_returns([equity for _, equity in top.equity])
    except ValueError:
        return None
    stats = moments(returns)
    if stats is None:
        return None
    sharpe, skew, kurtosis = stats
    return deflated_sharpe(sharpe, sharpes, len(returns), skew, kurtosis)
