"""The simulation use cases: start a session's simulation, drive it (one connection at a
time), pause, resume, complete, fail, and with durable storage journal, checkpoint and
recover it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from application.ports import (
    NO_METRICS,
    BarStore,
    Clock,
    ResultsStore,
    ServiceMetrics,
    SimulationCheckpoints,
    SimulationHoldLost,
    SymbolCatalog,
)
from application.principal import Principal
from application.records import (
    AccountUpdates,
    Checkpoint,
    CompletedRun,
    FinishedSimulation,
    InputKind,
    Refusal,
    SimulationInput,
    SimulationResults,
    StoredRun,
)
from application.sessions import SessionService
from application.simulation.builder import MAX_WARMUP_BARS, SimulationBuilder
from application.simulation.core import Simulation
from application.simulation.kept import results_store
from application.simulation.recovery import Recovery, apply_input, replay
from application.simulation.running import PauseReason, RunningSimulation
from application.simulation.values import BatchResult, Step
from domain.broker import ExecutionReport
from domain.errors import (
    DataUnavailable,
    DomainError,
    InvalidState,
    SessionBusy,
    SessionLimitExceeded,
    ValidationFailed,
)
from domain.orders import OrderRequest
from domain.session import SessionState, SimulationSession

TOUCH_INTERVAL_SECONDS = 1.0
"""A driven simulation refreshes its session's idle clock at most this often, not on
every one of thousands of acks a second."""


class SimulationService:
    """Owns the simulation of each running session: start (session → `running`), lookup,
    pause / resume, the one connection driving it, complete (→ `completed`, results kept),
    fail (→ `error` with a reason). Per-user limits on running simulations hold here.

    With `checkpoints` (durable storage), every request that changes a simulation (ack,
    order batch, cancel) is journaled before its reply leaves, a whole checkpoint is taken
    at start, every `checkpoint_every_ticks` ticks and on each pause, and results are kept
    at completion; `recover` brings it all back after a restart, even a `kill -9`, to
    exactly the state the clients last saw (see `adapters/storage/sqlite.py`).

    With shared checkpoints (several server processes on one store, Redis), a process holds
    only the simulations it drives: it claims one to start or resume it and lets go of it
    when it pauses, so that the next `resume_session` may reach any process, which builds
    it again from the store. A simulation whose process died while it ran is taken up the
    same way once that process's claim lapses, as after a restart (`paused`, `restart`).
    Nothing is recovered at start-up: each simulation is adopted when a client asks.

    A completed simulation leaves the process: its results go to `results` (the storage's
    `ResultsStore`; with checkpoints, `SimulationCheckpoints.complete` writes them there)
    and are read back when asked; only its progress (a few numbers) stays here."""

    def __init__(
        self,
        sessions: SessionService,
        catalog: SymbolCatalog,
        store: BarStore,
        clock: Clock | None = None,
        checkpoints: SimulationCheckpoints | None = None,
        checkpoint_every_ticks: int = 500,
        results: ResultsStore | None = None,
        metrics: ServiceMetrics = NO_METRICS,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._builder = SimulationBuilder(catalog, store)
        self._clock = clock
        self._checkpoints = checkpoints
        self._shared = checkpoints is not None and checkpoints.shared
        self._every = max(1, checkpoint_every_ticks)
        self._running: dict[str, RunningSimulation] = {}
        self._kept = results_store(results, checkpoints)
        self._done: dict[str, tuple[int, datetime | None]] = {}
        """Per completed session known here: (total ticks, last simulated time)."""

    async def start(
        self,
        principal: Principal,
        session_id: str,
        warmup_bars: int = 0,
        account_updates: AccountUpdates = AccountUpdates.ON_FILL,
        driver: str | None = None,
        window: int = 1,
    ) -> Simulation:
        """Start a session's simulation; its ticks are delivered `window` bars at a time
        (PROTOCOL §7.14; the caller opens the first window)."""
        session = await self._sessions.get(principal, session_id)
        if session.state is not SessionState.READY:
            raise InvalidState(session_id, session.state.value, "start", ["ready"])
        if not 0 <= warmup_bars <= MAX_WARMUP_BARS:
            raise ValidationFailed(
                "warmup_bars", f"warmup_bars must be between 0 and {MAX_WARMUP_BARS}"
            )
        most = principal.limits.max_running_simulations
        running = await self._running_count(principal)
        if running >= most:
            raise SessionLimitExceeded(
                f"You already run {running} simulation{'s' if running != 1 else ''}, the most "
                "your plan allows; finish or delete one first",
                {"limit": "running_simulations", "max": most},
            )
        if self._shared and not await self._stored.claim(session_id):
            raise SessionBusy(session_id)  # being started by another process right now
        try:
            simulation = await self.build(session, warmup_bars, account_updates)
            simulation.window_size = window
            await self._sessions.change_state(principal, session_id, SessionState.RUNNING)
        except BaseException:
            if self._shared:
                await self._stored.release(session_id)
            raise
        run = RunningSimulation(
            simulation,
            principal,
            driver,
            None,
            self._now(),
            warmup_bars=warmup_bars,
            account_updates=account_updates,
        )
        self._running[session_id] = run
        if self._checkpoints is not None:
            await self._checkpoint(session_id, run)
        self._metrics.simulation_started()
        return simulation

    async def _running_count(self, principal: Principal) -> int:
        """The user's started, unfinished simulations: those held here, or with shared
        storage, every running or paused session of theirs (held by any process)."""
        if self._shared:
            active = (SessionState.RUNNING, SessionState.PAUSED)
            return sum(1 for s in await self._sessions.list(principal) if s.state in active)
        user = principal.user_id
        return sum(1 for r in self._running.values() if r.principal.user_id == user)

    @property
    def _stored(self) -> SimulationCheckpoints:
        """The checkpoint store (only called where there is one)."""
        assert self._checkpoints is not None
        return self._checkpoints

    async def build(
        self,
        session: SimulationSession,
        warmup_bars: int = 0,
        account_updates: AccountUpdates = AccountUpdates.ON_FILL,
    ) -> Simulation:
        """A fresh simulation of `session` over the bars stored now (no state change)."""
        return await self._builder.build(session, warmup_bars, account_updates)

    async def simulation(self, principal: Principal, session_id: str) -> Simulation:
        """The caller's running (or paused) simulation."""
        return (await self.run_of(principal, session_id)).simulation

    async def run_of(self, principal: Principal, session_id: str) -> RunningSimulation:
        run = self._running.get(session_id)
        now = self._now()
        if (
            run is not None
            and self._clock is not None
            and run.principal.user_id == principal.user_id
            and now - run.touched_at < TOUCH_INTERVAL_SECONDS
        ):
            return run  # its owner, seen a moment ago: the session is there and is theirs
        session = await self._sessions.get(principal, session_id)  # ownership, and a touch
        run = self._running.get(session_id)
        if run is None and self._shared:
            run = await self._adopt(principal, session, hold=False)
        if run is not None:
            run.touched_at = now
        if run is None:
            raise InvalidState(
                session_id, session.state.value, "drive the simulation of", ["running", "paused"]
            )
        return run

    async def _adopt(
        self, principal: Principal, session: SimulationSession, *, hold: bool
    ) -> RunningSimulation | None:
        """Shared storage: the simulation of `session`, which this process does not hold,
        built from the store (checkpoint + journal) once no live process holds it: paused,
        it was let go of; running, its process died (it comes back paused, `restart`, as
        after a restart). With `hold` it stays held here (a driver resumes it); otherwise
        it is a copy to read and the claim is let go of at once. SESSION_BUSY while
        another process drives it."""
        session_id = session.id
        if session.state not in (SessionState.RUNNING, SessionState.PAUSED):
            return None
        store = self._stored
        if not await store.claim(session_id):
            raise SessionBusy(session_id)
        run: RunningSimulation | None = None
        try:
            if session.state is SessionState.RUNNING:
                await self._recover(session_id)  # paused, or completed if it had finished
                run = self._running.get(session_id)
            else:
                stored = await store.load(session_id)
                if isinstance(stored, StoredRun):
                    simulation = await self._rebuild(session, stored)
                    run = self._restored_run(simulation, stored)
                    self._running[session_id] = run
        finally:
            if not hold or run is None:
                self._running.pop(session_id, None)
                await store.release(session_id)
        return run

    async def _let_go(self, session_id: str) -> None:
        """Shared storage: a paused simulation leaves this process; any process may take
        it up from the checkpoint just taken."""
        if self._shared and self._running.pop(session_id, None) is not None:
            await self._stored.release(session_id)

    def progress(self, session_id: str) -> tuple[int, int, datetime | None] | None:
        """(ticks delivered, total ticks, simulated time) of a started simulation."""
        run = self._running.get(session_id)
        if run is not None:
            simulation = run.simulation
            return simulation.sequence, simulation.total_ticks, simulation.sim_time
        done = self._done.get(session_id)
        if done is not None:
            return done[0], done[0], done[1]
        return None

    async def progress_of(
        self, session: SimulationSession
    ) -> tuple[int, int, datetime | None] | None:
        """`progress`, and with shared storage also of a simulation held by another process
        or by none (paused): as of its last checkpoint, exact once paused or completed."""
        found = self.progress(session.id)
        if found is not None or not self._shared:
            return found
        if session.state is SessionState.COMPLETED:
            await self._kept_run(session.id)
            return self.progress(session.id)
        if session.state in (SessionState.RUNNING, SessionState.PAUSED):
            return await self._stored.progress(session.id)
        return None

    def run_of_any(self, session_id: str) -> RunningSimulation | None:
        """For the server's own doings (timeouts): the run, whoever owns it."""
        return self._running.get(session_id)

    async def drive(self, principal: Principal, session_id: str, driver: str) -> Simulation:
        """The simulation, for the connection `driver`, which becomes its driver if it has
        none; SESSION_BUSY while another connection drives it. It must be running."""
        return (await self._driven(principal, session_id, driver)).simulation

    async def acknowledge(
        self,
        principal: Principal,
        session_id: str,
        driver: str,
        sequence_id: int,
        orders: Sequence[OrderRequest] = (),
        cancels: Sequence[str] = (),
        refused: Mapping[str, DomainError] | None = None,
        window: int | None = None,
        admit: Callable[[Step], bool] | None = None,
    ) -> tuple[Simulation, BatchResult, Step | None]:
        """`tick_ack`: close the tick (orders and cancels live from the next bar, `refused`
        kept as refusals) and deliver the next one, unless that was the last (then None:
        the caller finishes and completes). With a window in flight, any of its bars may
        be acknowledged (the later ones are void); the next window holds up to `window`
        bars (None: as many as the last), `admit` being shown each as it is stepped (see
        `Simulation.open_window`); the last step is returned."""
        run = await self._driven(principal, session_id, driver)
        run.simulation.check_ack(sequence_id)  # before anything is journaled
        entry = SimulationInput(
            run.journaled + 1,
            InputKind.ACK,
            sequence_id,
            tuple(orders),
            tuple(cancels),
            tuple(Refusal.of(k, e) for k, e in refused.items()) if refused else (),
            run.simulation.window_size if window is None else window,
        )
        batch, step = apply_input(run.simulation, entry, admit)
        await self._journal(session_id, run, entry)
        return run.simulation, batch, step

    async def submit(
        self,
        principal: Principal,
        session_id: str,
        driver: str,
        orders: Sequence[OrderRequest],
        refused: Mapping[str, DomainError] | None = None,
    ) -> BatchResult:
        """`order_batch`: orders live from the bar after the last one delivered."""
        run = await self._driven(principal, session_id, driver)
        self._one_tick(run, session_id)
        entry = SimulationInput(
            run.journaled + 1,
            InputKind.ORDERS,
            orders=tuple(orders),
            refused=tuple(Refusal.of(k, e) for k, e in refused.items()) if refused else (),
        )
        batch, _ = apply_input(run.simulation, entry)
        await self._journal(session_id, run, entry)
        return batch

    async def cancel(
        self, principal: Principal, session_id: str, driver: str, order_id: str
    ) -> ExecutionReport:
        run = await self._driven(principal, session_id, driver)
        self._one_tick(run, session_id)
        entry = SimulationInput(run.journaled + 1, InputKind.CANCEL, cancels=(order_id,))
        batch, _ = apply_input(run.simulation, entry)
        await self._journal(session_id, run, entry)
        return batch.reports[0]

    async def _driven(
        self, principal: Principal, session_id: str, driver: str
    ) -> RunningSimulation:
        run = await self.run_of(principal, session_id)
        self._claim(run, session_id, driver)
        if run.paused is not None:
            raise InvalidState(session_id, "paused", "step the simulation of", ["running"])
        return run

    @staticmethod
    def _one_tick(run: RunningSimulation, session_id: str) -> None:
        """With a window of bars in flight, which bar an order would follow is unsaid:
        orders and cancels go with its `tick_ack` then (PROTOCOL §7.14)."""
        if run.simulation.in_window:
            raise InvalidState(
                session_id,
                "running with a window in flight",
                "take order_batch or cancel_order for",
                ["running with one tick in flight"],
            )

    async def _journal(
        self, session_id: str, run: RunningSimulation, entry: SimulationInput
    ) -> None:
        store = self._checkpoints
        if store is None:
            return
        try:
            await store.append(session_id, entry)
        except SimulationHoldLost:
            raise self._lost(session_id) from None
        run.journaled = entry.position
        if run.simulation.acknowledged - run.checkpointed >= self._every:
            await self._checkpoint(session_id, run)

    def _lost(self, session_id: str) -> SessionBusy:
        """Another process took the simulation over (this one was taken for dead): the copy
        here is stale; the client resumes it where it is held now."""
        self._running.pop(session_id, None)
        return SessionBusy(session_id)

    async def _checkpoint(self, session_id: str, run: RunningSimulation) -> None:
        """A whole checkpoint of the state now; the journal up to here becomes redundant."""
        if self._checkpoints is None:
            return
        simulation = run.simulation
        run.checkpointed = simulation.acknowledged
        checkpoint = Checkpoint(
            session_id,
            run.principal,
            run.warmup_bars,
            run.account_updates,
            simulation.total_ticks,
            run.journaled,
            simulation.state(),
        )
        try:
            await self._checkpoints.save(checkpoint)
        except SimulationHoldLost:
            raise self._lost(session_id) from None

    async def pause(
        self, principal: Principal, session_id: str, reason: PauseReason, driver: str | None = None
    ) -> RunningSimulation:
        run = await self.run_of(principal, session_id)
        if driver is not None:
            self._claim(run, session_id, driver)
        if run.paused is None:
            await self._sessions.change_state(principal, session_id, SessionState.PAUSED)
            run.paused = reason
            run.simulation.void_window()  # opened again on resume, from the bar acknowledged
            if self._checkpoints is not None and run.checkpointed != run.simulation.sequence:
                await self._checkpoint(session_id, run)
        if self._running.get(session_id) is run:
            await self._let_go(session_id)
        return run

    async def resume(self, principal: Principal, session_id: str, driver: str) -> Simulation:
        """A paused simulation runs again, driven by `driver` (SESSION_BUSY if another
        connection still drives it)."""
        run = await self.run_of(principal, session_id)
        if self._shared and self._running.get(session_id) is not run:
            # A copy read from the store: hold it, built afresh (another process may have
            # driven it between that read and this claim).
            session = await self._sessions.get(principal, session_id)
            taken = await self._adopt(principal, session, hold=True)
            if taken is None:
                raise InvalidState(session_id, session.state.value, "resume", ["paused"])
            run = taken
        self._claim(run, session_id, driver)
        if run.paused is None:
            raise InvalidState(session_id, "running", "resume", ["paused"])
        await self._sessions.change_state(principal, session_id, SessionState.RUNNING)
        run.paused = None
        return run.simulation

    async def disconnect(self, driver: str) -> list[str]:
        """The connection `driver` is gone: each simulation it drove pauses
        (`disconnected`) and waits, whole, for a `resume_session` from any connection of
        its user. Returns their session ids."""
        paused = []
        for session_id, run in list(self._running.items()):
            if run.driver != driver:
                continue
            run.driver = None
            if run.paused is None:
                try:
                    await self.pause(run.principal, session_id, PauseReason.DISCONNECTED)
                except DomainError:  # deleted or expired meanwhile: nothing to keep
                    self._running.pop(session_id, None)
                    continue
            paused.append(session_id)
        return paused

    async def complete(
        self, principal: Principal, session_id: str, *, keep: bool = True
    ) -> SimulationResults:
        """Finish a simulation whose last tick was acknowledged; its results are kept, with
        what a client that lost the last replies still needs (its reports, the account).
        `keep=False` stores nothing: the caller takes the results and deletes the session
        right away (a backtest run in process)."""
        run = await self.run_of(principal, session_id)
        simulation = run.simulation
        simulation.finish()
        results = simulation.results()
        if not keep:
            if self._checkpoints is not None:
                await self._checkpoints.delete(session_id)
            await self._sessions.change_state(principal, session_id, SessionState.COMPLETED)
            self._running.pop(session_id, None)
            self._metrics.simulation_completed()
            return results
        finished = FinishedSimulation(
            simulation.state(), simulation.broker.account(), self.wall_time_ms(session_id)
        )
        completed = CompletedRun(session_id, run.principal, results, finished)
        # Kept before the state change, so a crash between the two still finds the results
        # (recovery then completes the session).
        if self._checkpoints is not None:  # with the checkpoint dropped, in one step
            try:
                await self._checkpoints.complete(completed)
            except SimulationHoldLost:
                raise self._lost(session_id) from None
        else:
            await self._kept.put(completed)
        await self._sessions.change_state(principal, session_id, SessionState.COMPLETED)
        self._done[session_id] = (results.total_ticks, results.last_sim_time)
        self._running.pop(session_id, None)  # the simulation, its bars and state: all gone
        self._metrics.simulation_completed()
        return results

    async def finished_of(self, principal: Principal, session_id: str) -> FinishedSimulation | None:
        """What is kept of a completed simulation (with shared storage, completed by any
        process); None while it has not completed."""
        if session_id in self._done:
            kept = await self._kept_run(session_id)
            return kept.finished if kept is not None else None
        if not self._shared or session_id in self._running:
            return None
        session = await self._sessions.get(principal, session_id)
        if session.state is SessionState.RUNNING:
            # Held by no live process, its process died; maybe after the last ack was
            # journaled: taking it up completes it then (SESSION_BUSY while one drives it).
            await self._adopt(principal, session, hold=False)
            if session_id not in self._done:
                return None
        elif session.state is not SessionState.COMPLETED:
            return None
        kept = await self._kept_run(session_id)
        return kept.finished if kept is not None else None

    async def _kept_run(self, session_id: str) -> CompletedRun | None:
        """The stored results of a completed simulation (completed here, before a restart,
        or with shared storage by any process); its progress is remembered."""
        kept = await self._kept.get(session_id)
        if kept is not None:
            self._done[session_id] = (kept.results.total_ticks, kept.results.last_sim_time)
        return kept

    def wall_time_ms(self, session_id: str) -> int:
        run = self._running.get(session_id)
        return int((self._now() - run.started_at) * 1000) if run is not None else 0

    async def fail(self, principal: Principal, session_id: str, reason: str) -> None:
        self._running.pop(session_id, None)
        if self._checkpoints is not None:
            await self._checkpoints.delete(session_id)
        await self._sessions.fail(principal, session_id, reason)
        self._metrics.simulation_failed()

    async def results(self, principal: Principal, session_id: str) -> SimulationResults:
        session = await self._sessions.get(principal, session_id)
        kept = None
        # Completed here, or with shared storage by another process.
        if session_id in self._done or (self._shared and session.state is SessionState.COMPLETED):
            kept = await self._kept_run(session_id)
        if kept is None:
            raise InvalidState(session_id, session.state.value, "get results of", ["completed"])
        return kept.results

    async def forget(self, session_id: str) -> None:
        """Drop whatever is held for a deleted or expired session (a running simulation
        stops: nothing of it is kept)."""
        self._running.pop(session_id, None)
        self._done.pop(session_id, None)
        if self._checkpoints is not None:  # its results too
            await self._checkpoints.delete(session_id)
        else:
            await self._kept.delete(session_id)

    async def recover(self) -> Recovery:
        """At start-up, before any client: bring back every simulation durable storage
        holds. A running one comes back `paused` (`reason: restart`) exactly as its client
        last saw it (checkpoint + journal); completed ones keep their results."""
        found = Recovery()
        if self._checkpoints is None or self._shared:
            return found  # shared: other processes run these; each is adopted when asked
        for session_id in await self._checkpoints.list():
            try:
                outcome = await self._recover(session_id)
            except Exception as exc:  # one broken record must not keep the server down
                found.failed[session_id] = f"{type(exc).__name__}: {exc}"
                await self._checkpoints.delete(session_id)
                self._running.pop(session_id, None)
                continue
            getattr(found, outcome).append(session_id)
        return found

    async def _recover(self, session_id: str) -> str:
        assert self._checkpoints is not None
        stored = await self._checkpoints.load(session_id)
        if stored is None:
            return "dropped"
        principal = (
            stored.principal if isinstance(stored, CompletedRun) else stored.checkpoint.principal
        )
        try:
            session = await self._sessions.get(principal, session_id)
        except DomainError:  # deleted or expired while the server was down
            await self._checkpoints.delete(session_id)
            return "dropped"
        if isinstance(stored, CompletedRun):
            if session.state is not SessionState.COMPLETED:
                await self._sessions.change_state(principal, session_id, SessionState.COMPLETED)
            self._done[session_id] = (stored.results.total_ticks, stored.results.last_sim_time)
            return "completed"
        if session.state not in (SessionState.RUNNING, SessionState.PAUSED):
            await self._checkpoints.delete(session_id)
            return "dropped"
        simulation = await self._rebuild(session, stored)
        run = self._restored_run(simulation, stored)
        self._running[session_id] = run
        if simulation.done_stepping:  # the last ack was journaled, the completion was not
            await self.complete(principal, session_id)
            return "completed"
        if session.state is SessionState.RUNNING:
            await self._sessions.change_state(principal, session_id, SessionState.PAUSED)
        await self._checkpoint(session_id, run)  # the journal folds into it
        return "paused"

    async def _rebuild(self, session: SimulationSession, stored: StoredRun) -> Simulation:
        """The simulation exactly as its client last saw it: the checkpoint, restored over
        the same bars, then the journal after it, applied again (the engine is
        deterministic). When that fails the session moves to `error`, with the reason."""
        checkpoint = stored.checkpoint
        try:
            simulation = await self.build(
                session, checkpoint.warmup_bars, checkpoint.account_updates
            )
            if simulation.total_ticks != checkpoint.total_ticks:
                raise DataUnavailable(
                    ", ".join(simulation.symbols), f"{session.timeframe.value} (bars changed)"
                )
            replay(simulation, stored)
        except Exception as exc:
            await self._sessions.fail(
                checkpoint.principal,
                session.id,
                f"the simulation could not be restored after a server restart ({exc})",
            )
            raise
        return simulation

    def _restored_run(self, simulation: Simulation, stored: StoredRun) -> RunningSimulation:
        """A rebuilt simulation comes back paused: a window it had in flight is void (it is
        opened again on resume, from the last bar acknowledged)."""
        simulation.void_window()
        return RunningSimulation.restored(simulation, stored, self._now())

    def running_count(self) -> int:
        return len(self._running)

    def _claim(self, run: RunningSimulation, session_id: str, driver: str) -> None:
        if run.driver is None:
            run.driver = driver
        elif run.driver != driver:
            raise SessionBusy(session_id)

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else 0.0
