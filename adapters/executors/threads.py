"""Trials on threads of this process: for runners whose work happens elsewhere (each
trial a session on a server, the strategy here), as many at once as that place allows. A
runner that raises `TrialDeferred` (the server's limit is reached) waits and retries."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from application.sweeps.model import Trial, TrialOutcome, failed
from application.sweeps.ports import TrialDeferred, TrialRunner

MAX_DEFERRALS = 600


class ThreadExecutor:
    """`TrialExecutor` over `concurrency` threads."""

    def __init__(self, runner: TrialRunner, concurrency: int) -> None:
        self._runner = runner
        self._size = max(1, concurrency)
        self._pool = ThreadPoolExecutor(self._size, thread_name_prefix="simutrador-trial")
        self._stopping = threading.Event()

    @property
    def workers(self) -> int:
        return self._size

    def _attempt(self, trial: Trial) -> TrialOutcome:
        for _ in range(MAX_DEFERRALS):
            if self._stopping.is_set():
                break
            try:
                return self._runner(trial)
            except TrialDeferred as deferred:
                self._stopping.wait(deferred.retry_after_s)
            except Exception as exc:  # the runner reports trial errors itself; this is a bug
                return failed(trial, f"{type(exc).__name__}: {exc}")
        return failed(trial, "the trial could not start: the server's limit never freed up")

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialOutcome]:
        self._stopping.clear()
        pending: set[Future[TrialOutcome]] = {self._pool.submit(self._attempt, t) for t in trials}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: f.result().number):
                    yield future.result()
        finally:
            if pending:
                self._stopping.set()
                for future in pending:
                    future.cancel()

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
