"""The sweep use case in isolation: SPEC parsing, constraints, grid and seeded random
draws, ranking with null metrics, heatmaps, walk-forward folds and stitching, the Deflated
Sharpe Ratio against hand-computed cases, and the sweep loop over an inline executor."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import pytest

from application.sweeps.dsr import deflated_sharpe, expected_max_sharpe, moments
from application.sweeps.folds import cut_folds, stitch
from application.sweeps.model import InvalidSweep, Trial, TrialOutcome, TrialStatus, failed
from application.sweeps.ranking import Objective, best, heatmap, rank
from application.sweeps.space import SearchSpace, compile_constraint, parse_spec, values_of
from application.sweeps.sweep import Method, SweepRequest, run_sweep
from tests.fakes import InlineExecutor

D = Decimal


# --- the search space --------------------------------------------------------------------


def test_a_list_spec_keeps_its_order_and_types() -> None:
    assert parse_spec("fast", "5,10,20") == (5, 10, 20)
    assert parse_spec("mode", "fast, slow") == ("fast", "slow")
    assert parse_spec("k", "0.5,2") == (D("0.5"), 2)


def test_a_range_spec_includes_both_ends() -> None:
    assert parse_spec("fast", "5..50:5") == (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
    assert parse_spec("fast", "1..4") == (1, 2, 3, 4)
    assert parse_spec("k", "0.5..1.5:0.25") == (
        D("0.5"),
        D("0.75"),
        D("1.00"),
        D("1.25"),
        D("1.50"),
    )


@pytest.mark.parametrize("spec", ["", "5..1", "1..5:0", "a..b", "1,1"])
def test_a_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(InvalidSweep):
        parse_spec("p", spec)


def test_sdk_values_accept_ranges_and_floats() -> None:
    assert values_of("fast", range(5, 16, 5)) == (5, 10, 15)
    assert values_of("k", [0.1, 2]) == (D("0.1"), 2)


def test_a_constraint_filters_the_grid_in_order() -> None:
    check = compile_constraint("fast < slow", ["fast", "slow"])
    space = SearchSpace({"fast": (5, 10, 20), "slow": (10, 20)}, check)
    assert space.grid() == [
        {"fast": 5, "slow": 10},
        {"fast": 5, "slow": 20},
        {"fast": 10, "slow": 20},
    ]


def test_a_constraint_naming_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(InvalidSweep, match="unknown name"):
        compile_constraint("fast < slwo", ["fast", "slow"])


def test_a_constraint_that_removes_everything_is_refused() -> None:
    space = SearchSpace({"fast": (5, 10)}, compile_constraint("fast > 100", ["fast"]))
    with pytest.raises(InvalidSweep, match="removes all 2"):
        space.grid()


def test_a_random_draw_is_seeded_and_without_replacement() -> None:
    space = SearchSpace({"a": tuple(range(10)), "b": tuple(range(10))})
    first = space.sample(30, seed=7)
    assert first == space.sample(30, seed=7)
    assert first != space.sample(30, seed=8)
    assert len({(p["a"], p["b"]) for p in first}) == 30


# --- ranking -----------------------------------------------------------------------------


def outcome(number: int, value: float | None, **params: int) -> TrialOutcome:
    return TrialOutcome(number, params, TrialStatus.COMPLETED, {"sharpe_ratio": value})


def test_a_null_metric_ranks_after_every_value_and_a_failure_last() -> None:
    trials = [
        failed(Trial(0, {}), "boom"),
        outcome(1, None),
        outcome(2, -1.0),
        outcome(3, 2.0),
        outcome(4, 2.0),
    ]
    assert [o.number for o in rank(trials, Objective("sharpe_ratio"))] == [3, 4, 2, 1, 0]
    assert [o.number for o in rank(trials, Objective("sharpe_ratio", maximize=False))] == [
        2,
        3,
        4,
        1,
        0,
    ]
    top = best(trials, Objective("sharpe_ratio"))
    assert top is not None
    assert top.number == 3


def test_the_heatmap_holds_the_best_value_over_the_other_parameters() -> None:
    trials = [
        outcome(0, 1.0, x=1, y=1, z=1),
        outcome(1, 3.0, x=1, y=1, z=2),
        outcome(2, 2.0, x=2, y=1, z=1),
        outcome(3, None, x=2, y=2, z=1),
    ]
    grid = heatmap(trials, "x", "y", Objective("sharpe_ratio"))
    assert grid.xs == (1, 2)
    assert grid.ys == (1, 2)
    assert grid.values == ((3.0, 2.0), (None, None))


# --- walk-forward --------------------------------------------------------------------------


def days(n: int) -> list[date]:
    return [date(2024, 1, 1) + timedelta(days=i) for i in range(n)]


def test_folds_cut_the_days_into_consecutive_train_and_test_windows() -> None:
    folds = cut_folds(days(30), 3, 70)
    assert [(f.train.start, f.train.end, f.test.start, f.test.end) for f in folds] == [
        ("2024-01-01", "2024-01-07", "2024-01-08", "2024-01-10"),
        ("2024-01-11", "2024-01-17", "2024-01-18", "2024-01-20"),
        ("2024-01-21", "2024-01-27", "2024-01-28", "2024-01-30"),
    ]
    anchored = cut_folds(days(30), 3, 70, anchored=True)
    assert [f.train.start for f in anchored] == ["2024-01-01"] * 3
    assert [f.test for f in anchored] == [f.test for f in folds]


def test_too_few_days_for_the_folds_is_refused() -> None:
    with pytest.raises(InvalidSweep):
        cut_folds(days(5), 3)


def test_stitching_chains_each_window_from_where_the_last_ended() -> None:
    first = ((date(2024, 1, 1), D(1000)), (date(2024, 1, 2), D(1100)))
    second = ((date(2024, 1, 3), D(1000)), (date(2024, 1, 4), D(900)))
    assert stitch([first, second], D(500)) == (
        (date(2024, 1, 1), D(500)),
        (date(2024, 1, 2), D(550)),
        (date(2024, 1, 4), D(495)),
    )


# --- the Deflated Sharpe Ratio -----------------------------------------------------------


def test_the_deflated_sharpe_ratio_of_the_papers_worked_example() -> None:
    """Bailey & López de Prado (2014), section "A numerical example": annualised SR 2.5 over
    1,250 daily returns (250 a year), 100 trials whose annualised Sharpes have variance 0.5,
    skew -3, kurtosis 10: SR0 ≈ 1.7894 a year and DSR ≈ 0.9004."""
    per_year = math.sqrt(250)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 * per_year == pytest.approx(1.7894, abs=1e-3)
    # The variance of a set with that sample variance: two values ± sqrt(0.5/250/2)... built
    # from 100 values so that N is the paper's.
    spread = math.sqrt(0.5 / 250 * 99 / 100)
    sharpes = [spread if i % 2 else -spread for i in range(100)]
    dsr = deflated_sharpe(2.5 / per_year, sharpes, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_moments_of_a_hand_computed_series() -> None:
    sharpe, skew, kurtosis = moments([0.01, -0.02, 0.03, 0.0]) or (0.0, 0.0, 0.0)
    # mean 0.005; squared deviations sum 1.3e-3; sample std sqrt(1.3e-3 / 3)
    assert sharpe == pytest.approx(0.005 / math.sqrt(1.3e-3 / 3))
    assert skew == pytest.approx(0.0, abs=1e-12)
    assert kurtosis == pytest.approx(1.95625e-7 / 3.25e-4**2)
    assert moments([0.01, 0.01, 0.01]) is None


def test_no_deflated_sharpe_from_a_single_trial() -> None:
    assert deflated_sharpe(0.1, [0.1], 100, 0.0, 3.0) is None


# --- the sweep loop ------------------------------------------------------------------------


def scored(trial: Trial) -> TrialOutcome:
    """fast * slow as the metric; fast == 10 raises, slow == 99 gives null."""
    fast, slow = int(trial.params["fast"]), int(trial.params["slow"])
    if fast == 10:
        return failed(trial, "strategy.py:3: ZeroDivisionError: division by zero")
    value = None if slow == 99 else float(fast * slow)
    equity = tuple((date(2024, 1, 1) + timedelta(days=i), D(1000 + i * fast)) for i in range(5))
    return TrialOutcome(
        trial.number, trial.params, TrialStatus.COMPLETED, {"sharpe_ratio": value}, equity
    )


def request(**overrides: object) -> SweepRequest:
    space = SearchSpace(
        {"fast": (5, 10, 20), "slow": (30, 99)}, compile_constraint("fast < slow", ["fast", "slow"])
    )
    fields: dict[str, object] = {"space": space, "objective": Objective("sharpe_ratio")}
    fields.update(overrides)
    return SweepRequest(**fields)  # type: ignore[arg-type]


def test_a_grid_sweep_runs_every_combination_and_counts_failures() -> None:
    seen: list[tuple[int, int]] = []
    result = run_sweep(
        request(), InlineExecutor(scored), on_progress=lambda d, t, b: seen.append((d, t))
    )
    assert [o.number for o in result.outcomes] == list(range(6))
    assert result.failed == 2
    assert result.best is not None
    assert result.best.params == {"fast": 20, "slow": 30}
    assert seen == [(i, 6) for i in range(1, 7)]
    assert result.deflated_sharpe is not None
    assert 0 < result.deflated_sharpe <= 1


def test_an_interrupted_sweep_keeps_what_completed() -> None:
    result = run_sweep(request(), InlineExecutor(scored, interrupt_after=3))
    assert result.interrupted
    assert [o.number for o in result.outcomes] == [0, 1, 2]


def test_a_request_is_checked_before_anything_runs() -> None:
    with pytest.raises(InvalidSweep, match="unknown metric"):
        request(objective=Objective("sharp")).validate(["sharpe_ratio"])
    with pytest.raises(InvalidSweep, match="--trials"):
        request(trials=5).validate(["sharpe_ratio"])


def test_a_random_sweep_runs_the_seeded_draw() -> None:
    executor = InlineExecutor(scored)
    result = run_sweep(request(method=Method.RANDOM, trials=3, seed=1), executor)
    again = run_sweep(request(method=Method.RANDOM, trials=3, seed=1), InlineExecutor(scored))
    assert len(result.outcomes) == 3
    assert [o.params for o in result.outcomes] == [o.params for o in again.outcomes]
