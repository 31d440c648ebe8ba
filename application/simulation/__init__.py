"""A session's simulation, in rooms of its own: `values` (what a step delivers, and the
stored values re-exported from `application.records`), `core` (the stepping `Simulation`),
`recovery` (journal replay) and `service` (the use cases). The public names are here."""

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
from application.simulation.core import Simulation
from application.simulation.recovery import Recovery, apply_input
from application.simulation.service import (
    MAX_WARMUP_BARS,
    TOUCH_INTERVAL_SECONDS,
    WARMUP_LOOKBACK_FACTOR,
    PauseReason,
    RunningSimulation,
    SimulationService,
)
from application.simulation.values import BatchResult, Step, Tick

__all__ = [
    "MAX_WARMUP_BARS",
    "TOUCH_INTERVAL_SECONDS",
    "WARMUP_LOOKBACK_FACTOR",
    "AccountUpdates",
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
