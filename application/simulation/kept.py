"""Where a `SimulationService` keeps completed simulations' results when it is not given a
`ResultsStore`: in the checkpoint store that `complete` writes them to, or, without any
storage (unit tests, a service built by hand), as objects in this process."""

from __future__ import annotations

from application.ports import ResultsStore, SimulationCheckpoints
from application.records import CompletedRun


class HeldResults:
    """The results objects themselves, in a dict: nothing stores them elsewhere."""

    def __init__(self) -> None:
        self._runs: dict[str, CompletedRun] = {}

    async def put(self, run: CompletedRun) -> None:
        self._runs[run.session_id] = run

    async def get(self, session_id: str) -> CompletedRun | None:
        return self._runs.get(session_id)

    async def delete(self, session_id: str) -> None:
        self._runs.pop(session_id, None)


class ResultsInCheckpoints:
    """Results read back where `SimulationCheckpoints.complete` wrote them."""

    def __init__(self, checkpoints: SimulationCheckpoints) -> None:
        self._checkpoints = checkpoints

    async def put(self, run: CompletedRun) -> None:
        await self._checkpoints.complete(run)

    async def get(self, session_id: str) -> CompletedRun | None:
        stored = await self._checkpoints.load(session_id)
        return stored if isinstance(stored, CompletedRun) else None

    async def delete(self, session_id: str) -> None:
        await self._checkpoints.delete(session_id)


def results_store(
    results: ResultsStore | None, checkpoints: SimulationCheckpoints | None
) -> ResultsStore:
    if results is not None:
        return results
    return ResultsInCheckpoints(checkpoints) if checkpoints is not None else HeldResults()
