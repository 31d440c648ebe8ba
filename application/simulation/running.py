"""A session's simulation as the service holds it while it runs or is paused: who drives
it, why it is paused, where its journal and checkpoint stand."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from application.principal import Principal
from application.records import AccountUpdates, StoredRun
from application.simulation.core import Simulation


class PauseReason(StrEnum):
    REQUESTED = "requested"
    DISCONNECTED = "disconnected"
    ACK_TIMEOUT = "ack_timeout"
    RESTART = "restart"
    """The server restarted while the simulation ran: it came back from its checkpoint."""


@dataclass(slots=True)
class RunningSimulation:
    """A session's simulation and who drives it: the connection that may ack its ticks
    (None while nobody does), and why it is paused, if it is."""

    simulation: Simulation
    principal: Principal
    driver: str | None = None
    paused: PauseReason | None = None
    started_at: float = 0.0
    touched_at: float = 0.0
    warmup_bars: int = 0
    account_updates: AccountUpdates = AccountUpdates.ON_FILL
    journaled: int = 0
    """Position of the last request journaled (durable storage only)."""
    checkpointed: int = 0
    """The tick the last checkpoint was taken at."""

    @classmethod
    def restored(cls, simulation: Simulation, stored: StoredRun, now: float) -> RunningSimulation:
        """`simulation`, rebuilt from `stored`, paused (`restart`) with nobody driving it."""
        checkpoint = stored.checkpoint
        return cls(
            simulation,
            checkpoint.principal,
            None,
            PauseReason.RESTART,
            now,
            now,
            checkpoint.warmup_bars,
            checkpoint.account_updates,
            stored.journal[-1].position if stored.journal else checkpoint.position,
        )
