"""Bringing a simulation back: the journal's entries applied again (the one path for live
requests and for replay, so both do exactly the same), a checkpoint and its journal
replayed, and what a start-up recovery found.
The stored values themselves (`Checkpoint`, `SimulationInput`, …) are the ports'."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from application.records import Checkpoint as Checkpoint
from application.records import CompletedRun as CompletedRun
from application.records import InputKind as InputKind
from application.records import Refusal
from application.records import SimulationInput as SimulationInput
from application.records import StoredRun as StoredRun
from application.simulation.core import Simulation
from application.simulation.values import BatchResult, Step


def apply_input(
    simulation: Simulation,
    entry: SimulationInput,
    admit: Callable[[Step], bool] | None = None,
) -> tuple[BatchResult, Step | None]:
    """Do what a request asks of a simulation; the one path for live requests and for
    journal entries replayed after a restart, so both do exactly the same. An ack opens
    the next window (`entry.window` bars at most, fewer when `admit`, shown each step,
    says so; see `Simulation.open_window`) and returns its last step."""
    if entry.kind is InputKind.ACK:
        simulation.reach(entry.sequence_id)  # (live acks were checked: a no-op for them)
        simulation.window_size = entry.window
        batch = simulation.acknowledge(entry.sequence_id, entry.orders, entry.cancels)
    elif entry.kind is InputKind.ORDERS:
        batch = simulation.submit(entry.orders)
    else:
        batch = BatchResult((), {}, (simulation.cancel(entry.cancels[0]),))
    if entry.refused or batch.rejected:
        refusals = {r.order_id: r for r in entry.refused}
        refusals.update((k, Refusal.of(k, e)) for k, e in batch.rejected.items())
        simulation.record_refusals(refusals.values())
    step = None
    if entry.kind is InputKind.ACK and not simulation.done_stepping:
        step = simulation.open_window(entry.window, admit)[-1]
    return batch, step


def replay(simulation: Simulation, stored: StoredRun) -> None:
    """Bring a fresh simulation, over the same bars, to where `stored` left it: the
    checkpoint restored, then the journal after it applied again (the engine is
    deterministic)."""
    simulation.restore(stored.checkpoint.state)
    # Between requests a running simulation always has a tick in flight, but the
    # checkpoint taken at start precedes the first tick, which went out next.
    if simulation.in_flight is None and not simulation.done_stepping:
        simulation.open_window(simulation.window_size)
    for entry in stored.journal:
        apply_input(simulation, entry)


@dataclass(slots=True)
class Recovery:
    """What `SimulationService.recover` found in durable storage at start-up."""

    paused: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Kept for sessions that are gone (deleted, expired) or no longer running."""
    failed: dict[str, str] = field(default_factory=dict)
    """session id → why it could not be restored (the session is moved to `error`)."""
