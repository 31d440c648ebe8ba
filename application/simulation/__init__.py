"""A session's simulation, in rooms of its own: `values` (what a step delivers, and the
stored values re-exported from `application.records`), `core` (the stepping `Simulation`,
with its bars in `bars`, its progress record in `book`, its results in `results` and its
windows' savepoints in `window`), `builder` (a session's simulation made from its bars),
`recovery` (journal replay), `running` (a simulation as the service holds it) and
`service` (the use cases). The public names are here."""

from application.records import (
    AccountUpdates,
    Checkpoint,
    CompletedRun,
    FinishedSimulation,
    InputKind,
    Missed,
    Refusal,
    Rejection,
    SimulationInput,
    SimulationResults,
    SimulationState,
    StoredRun,
    missed,
)
from application.simulation.builder import MAX_WARMUP_BARS, WARMUP_LOOKBACK_FACTOR
from application.simulation.core import Simulation
from application.simulation.recovery import Recovery, apply_input
from application.simulation.running import PauseReason, RunningSimulation
from application.simulation.service import TOUCH_INTERVAL_SECONDS, SimulationService
from application.simulation.values import BarsAt, BatchResult, Step, Tick

__all__ = [
    "MAX_WARMUP_BARS",
    "TOUCH_INTERVAL_SECONDS",
    "WARMUP_LOOKBACK_FACTOR",
    "AccountUpdates",
    "BarsAt",
    "BatchResult",
    "Checkpoint",
    "CompletedRun",
    "FinishedSimulation",
    "InputKind",
    "Missed",
    "PauseReason",
    "Recovery",
    "Refusal",
    "Rejection",
    "RunningSimulation",
    "Simulation",
    "SimulationInput",
    "SimulationResults",
    "SimulationService",
    "SimulationState",
    "Step",
    "StoredRun",
    "Tick",
    "apply_input",
    "missed",
]
