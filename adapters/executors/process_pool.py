"""The embedded executor: a pool of worker processes (spawned, never forked). The trial
runner is sent to each worker once, when it starts (the bars it holds with it); a trial
is then only its number and parameters. A worker that dies mid-trial (kill -9, out of
memory) is replaced and its trial runs once more; a second loss fails the trial."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from application.sweeps.model import Trial, TrialOutcome, failed
from application.sweeps.ports import TrialRunner

STOP = None
JOIN_SECONDS = 5.0


def _serve(conn: Connection, runner: TrialRunner) -> None:
    """A worker's loop: run each trial received, send its outcome back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            trial = conn.recv()
        except EOFError:
            return
        if trial is STOP:
            return
        try:
            outcome = runner(trial)
        except Exception as exc:  # the runner reports trial errors itself; this is a bug
            outcome = failed(trial, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        conn.send(outcome)


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    trial: Trial | None = None


class ProcessPoolExecutor:
    """`TrialExecutor` over `workers` local processes (default: the CPU count)."""

    def __init__(self, runner: TrialRunner, workers: int | None = None, *, retries: int = 1):
        self._runner = runner
        self._size = max(1, workers or os.cpu_count() or 1)
        self._retries = retries
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []

    @property
    def workers(self) -> int:
        return self._size

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._runner), daemon=True, name="simutrador-trial"
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialOutcome]:
        queue = deque(trials)
        attempts = {t.number: 0 for t in trials}
        while len(self._pool) < min(self._size, len(trials)):
            self._pool.append(self._spawn())
        try:
            while True:
                for worker in list(self._pool):
                    if worker.trial is None and queue:
                        next_trial = queue.popleft()
                        try:
                            worker.conn.send(next_trial)
                        except OSError:  # it died while idle: not the trial's fault
                            queue.appendleft(next_trial)
                            self._replace(worker)
                            continue
                        worker.trial = next_trial
                        attempts[next_trial.number] += 1
                busy = [w for w in self._pool if w.trial is not None]
                if not busy:
                    if queue:
                        continue  # a worker was replaced before it took a trial
                    return
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for worker in busy:
                    trial = worker.trial
                    assert trial is not None
                    outcome: TrialOutcome | None = None
                    if worker.conn in ready:
                        try:
                            outcome = worker.conn.recv()
                        except (EOFError, OSError):
                            outcome = None
                    elif worker.process.sentinel not in ready:
                        continue
                    if outcome is not None:
                        worker.trial = None
                        yield outcome.with_attempts(attempts[trial.number])
                        continue
                    lost = self._replace(worker)
                    if attempts[trial.number] <= self._retries:
                        queue.appendleft(trial)
                    else:
                        yield failed(
                            trial,
                            f"the worker process died running this trial ({lost})",
                            attempts[trial.number],
                        )
        finally:
            # Interrupted (or the consumer stopped early): what still runs is abandoned.
            for worker in [w for w in self._pool if w.trial is not None]:
                self._replace(worker, restart=False)

    def _replace(self, worker: _Worker, *, restart: bool = True) -> str:
        """Retire a worker that died (or must stop now); start a fresh one in its place."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(JOIN_SECONDS)
        code = worker.process.exitcode
        worker.conn.close()
        index = self._pool.index(worker)
        if restart:
            self._pool[index] = self._spawn()
        else:
            del self._pool[index]
        return f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"

    def close(self) -> None:
        for worker in self._pool:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(STOP)
        for worker in self._pool:
            worker.process.join(JOIN_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._pool.clear()

    def __enter__(self) -> ProcessPoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
