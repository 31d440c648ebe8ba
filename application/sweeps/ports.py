"""What a sweep needs from the outside: something that runs trials (a process pool, a Ray
cluster, a server) and, for the Bayesian method, a sampler that proposes the next ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from application.sweeps.model import Params, Trial, TrialOutcome


class TrialRunner(Protocol):
    """Runs one trial where it is called (any process): picklable, and prepares what it
    needs (strategy, bars) once per process, not once per trial. A trial that raises is
    returned as a failed outcome; `TrialDeferred` asks the executor to retry later."""

    def __call__(self, trial: Trial) -> TrialOutcome: ...


class TrialDeferred(Exception):
    """The trial could not start yet (a limit of the place it runs): wait, then retry; it
    is not a failure of the trial."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class TrialExecutor(Protocol):
    """Runs trials, several at once, and reports each as it completes."""

    @property
    def workers(self) -> int:
        """How many trials run at once."""
        ...

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialOutcome]:
        """Every trial's outcome, in completion order. A worker lost in the middle of a
        trial costs that trial one retry (then it fails). Closing the iterator early (an
        interrupt) stops what is still running; what was yielded is kept."""
        ...

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class Suggestion:
    key: int
    """The sampler's own reference for the proposal (told back with its outcome)."""
    params: Params


class Sampler(Protocol):
    """A model-based search (Bayesian): proposes parameters, learns from their outcomes,
    and keeps every finished trial so that an interrupted sweep resumes where it stopped."""

    def history(self) -> list[TrialOutcome]:
        """The trials finished in earlier runs of the same study (numbered as then)."""
        ...

    def ask(self) -> Suggestion: ...

    def tell(self, key: int, outcome: TrialOutcome, score: float | None) -> None:
        """The outcome of a proposal that ran (or was already known): `score` is the
        objective's value (None: failed or null)."""
        ...

    def discard(self, key: int) -> None:
        """A proposal that will not run (the constraint refused it)."""
        ...
