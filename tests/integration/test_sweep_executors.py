"""The executors' own rules, with trivial runners: a deferred trial waits and retries (it
does not fail), and the process pool returns every outcome whatever order they finish in."""

from __future__ import annotations

import threading

from adapters.executors.process_pool import ProcessPoolExecutor
from adapters.executors.threads import ThreadExecutor
from application.sweeps.model import Trial, TrialOutcome, TrialStatus
from application.sweeps.ports import TrialDeferred


class DeferredTwice:
    """Refuses each trial twice (as a server at its running-simulation limit would)."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, trial: Trial) -> TrialOutcome:
        with self.lock:
            self.calls[trial.number] = self.calls.get(trial.number, 0) + 1
            calls = self.calls[trial.number]
        if calls <= 2:
            raise TrialDeferred("limit reached", retry_after_s=0.01)
        return TrialOutcome(trial.number, trial.params, TrialStatus.COMPLETED, {"calls": calls})


def test_a_deferred_trial_waits_and_retries_instead_of_failing() -> None:
    runner = DeferredTwice()
    executor = ThreadExecutor(runner, concurrency=2)
    try:
        done = list(executor.run([Trial(i, {"i": i}) for i in range(4)]))
    finally:
        executor.close()
    assert sorted(o.number for o in done) == [0, 1, 2, 3]
    assert all(o.completed for o in done)
    assert runner.calls == {0: 3, 1: 3, 2: 3, 3: 3}


class Square:
    """Picklable: what a spawned worker can run."""

    def __call__(self, trial: Trial) -> TrialOutcome:
        if trial.params["x"] == 3:
            raise ValueError("three")  # a runner bug, not a trial error: still an outcome
        value = int(trial.params["x"]) ** 2
        return TrialOutcome(trial.number, trial.params, TrialStatus.COMPLETED, {"sq": value})


def test_the_process_pool_returns_every_outcome_and_reuses_its_workers() -> None:
    with ProcessPoolExecutor(Square(), workers=2) as pool:
        first = list(pool.run([Trial(i, {"x": i}) for i in range(5)]))
        second = list(pool.run([Trial(9, {"x": 9})]))
        assert pool.workers == 2
    by_number = {o.number: o for o in first}
    assert sorted(by_number) == [0, 1, 2, 3, 4]
    assert [by_number[i].metrics["sq"] for i in (0, 1, 2, 4)] == [0, 1, 4, 16]
    assert by_number[3].status is TrialStatus.FAILED
    assert "ValueError: three" in (by_number[3].error or "")
    assert second[0].metrics == {"sq": 81}
