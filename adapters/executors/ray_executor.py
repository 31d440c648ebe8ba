"""Trials as Ray tasks: on a cluster (`address`) or on a Ray started for this sweep. The
trial runner — with the bars it carries — goes into Ray's object store once; each worker
process fetches it on its first trial and keeps it for the next ones. Ray runs a task
whose worker died once more (`max_retries=1`); a second loss fails the trial."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from application.sweeps.model import Trial, TrialOutcome, failed
from application.sweeps.ports import TrialRunner

_RUNNERS: dict[str, TrialRunner] = {}
"""Per worker process: the runners it has fetched, by object id."""


def _run_trial(holder: list[Any], trial: Trial) -> TrialOutcome:
    ref = holder[0]  # inside a list, so Ray passes the reference rather than the object
    runner = _RUNNERS.get(ref.hex())
    if runner is None:
        runner = _RUNNERS[ref.hex()] = ray.get(ref)
    return runner(trial)


class RayExecutor:
    """`TrialExecutor` over Ray tasks, as many at once as the cluster has CPUs (or
    `workers`)."""

    def __init__(
        self, runner: TrialRunner, *, address: str | None = None, workers: int | None = None
    ) -> None:
        self._owned = not ray.is_initialized()
        if self._owned:
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                ray.init(address=address, **options)
            else:  # a Ray of our own, on loopback only
                ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=workers, **options)
        self._holder = [ray.put(runner)]
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = int(resources.get("CPU", 1))
        self._size = max(1, min(workers or cpus, cpus) if workers else cpus)
        self._task = ray.remote(num_cpus=1, max_retries=1)(_run_trial)

    @property
    def workers(self) -> int:
        return self._size

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialOutcome]:
        queue = deque(trials)
        running: dict[Any, Trial] = {}
        try:
            while queue or running:
                while queue and len(running) < self._size:
                    trial = queue.popleft()
                    running[self._task.remote(self._holder, trial)] = trial
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    trial = running.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        yield failed(trial, f"the Ray task failed: {type(exc).__name__}", 2)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owned and ray.is_initialized():
            ray.shutdown()
            self._owned = False
