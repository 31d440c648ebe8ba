"""The simulation messages of the protocol (§4): each request → the messages it causes, in
order, plus the one message the server sends unasked (a pause on ack timeout). Knows
nothing of sockets: a connection is a `ConnectionContext` with a `push` callable."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import msgspec

from application.ports import NO_METRICS, ServiceMetrics
from application.principal import Principal
from application.simulation import (
    AccountUpdates,
    BatchResult,
    FinishedSimulation,
    Missed,
    PauseReason,
    Simulation,
    SimulationResults,
    SimulationService,
    Step,
    Tick,
)
from domain.bars import from_epoch
from domain.broker import ExecutionReport
from domain.errors import DomainError, OrderFailed, ValidationFailed
from domain.orders import OrderRequest
from entrypoints.protocol import messages as m
from entrypoints.protocol.engine import (
    account_data,
    check_batch_size,
    history_json,
    metrics_data,
    order_request,
    report_data,
    results_data,
    tick_bars_json,
    window_tick_head,
    window_tick_json,
    window_tick_plain,
)

log = logging.getLogger("simutrador.protocol")

Push = Callable[[bytes], Awaitable[None]]
Reply = list[m.ServerMessage | m.TickOut | m.TicksOut | m.HistoryOut]

FRAME_OVERHEAD = 1024
"""Bytes a `ticks` frame spends outside its bars: envelope, timestamp, session and
request ids (the request id is at most 128 characters, escaped up to 6 bytes each)."""


@dataclass(slots=True)
class AckDeadline:
    due: float
    simulation: Simulation
    sequence_id: int


@dataclass(slots=True)
class EngineConnection:
    """What the engine keeps per connection: its id (the driver of its simulations), how
    to send it a message unasked, and when each tick it has in flight must be acked by.

    One watchdog task per connection checks the deadlines, rather than a timer per tick:
    arming one is a dict write."""

    connection_id: str
    push: Push | None = None
    deadlines: dict[str, AckDeadline] = field(default_factory=dict)
    watchdog: asyncio.Task[None] | None = None

    def cancel_timer(self, session_id: str) -> None:
        self.deadlines.pop(session_id, None)


class SimulationProtocol:
    def __init__(
        self,
        simulations: SimulationService,
        now: Callable[[], datetime],
        tick_timeout_seconds: float = 300.0,
        metrics: ServiceMetrics = NO_METRICS,
        max_frame_bytes: int = 64 * 1024,
    ) -> None:
        self._simulations = simulations
        self._now = now
        self._tick_timeout = tick_timeout_seconds
        self._metrics = metrics
        self._max_frame = max_frame_bytes
        self._heads: weakref.WeakKeyDictionary[Simulation, dict[int, bytes]] = (
            weakref.WeakKeyDictionary()
        )
        """Per simulation, the part of each bar of its window that does not change when the
        bar is stepped again after a void (`window_tick_head`), by sequence id: the bars
        of the window in flight and of the one before it at most. It goes with the
        simulation (a weak key: nothing here keeps one alive)."""

    @property
    def simulations(self) -> SimulationService:
        return self._simulations

    async def handle(
        self, principal: Principal, connection: EngineConnection, message: m.ClientMessage
    ) -> Reply:
        """Messages answering one simulation request. Domain refusals propagate (the
        dispatcher answers them with `session_error`)."""
        match message:
            case m.StartSimulation(data=data):
                return await self._start(principal, connection, data)
            case m.TickAck(data=data):
                return await self._ack(principal, connection, data)
            case m.OrderBatch(data=data):
                return await self._batch(principal, connection, data)
            case m.CancelOrder(data=data):
                report = await self._simulations.cancel(
                    principal, data.session_id, connection.connection_id, data.order_id
                )
                return [
                    m.OrderCancelled(
                        timestamp=self._now(),
                        data=m.OrderCancelledData(
                            session_id=data.session_id, order_id=data.order_id
                        ),
                    ),
                    *self._reports(data.session_id, [report]),
                ]
            case m.PauseSimulation(data=ref):
                connection.cancel_timer(ref.session_id)
                run = await self._simulations.pause(
                    principal, ref.session_id, PauseReason.REQUESTED, connection.connection_id
                )
                return [self._paused(ref.session_id, run.simulation, run.paused)]
            case m.ResumeSimulation(data=ref):
                simulation = await self._simulations.resume(
                    principal, ref.session_id, connection.connection_id
                )
                simulation.void_window()  # (a pause voided it already)
                resumed = m.SimulationResumed(
                    timestamp=self._now(),
                    data=m.SimulationResumedData(
                        session_id=ref.session_id, next_sequence_id=simulation.next_sequence_id
                    ),
                )
                return [resumed, *self._pending(connection, ref.session_id, simulation)]
            case m.QueryPositions(data=ref):
                simulation = await self._simulations.simulation(principal, ref.session_id)
                return [
                    m.CurrentPositions(
                        timestamp=self._now(), data=self._account(ref.session_id, simulation)
                    )
                ]
            case m.GetResults(data=ref):
                results = await self._simulations.results(principal, ref.session_id)
                return [
                    m.SimulationResults(
                        timestamp=self._now(), data=results_data(ref.session_id, results)
                    )
                ]
            case m.ResumeSession(data=data):
                return await self._resume_session(principal, connection, data)
        raise AssertionError(f"not a simulation message: {type(message).__name__}")

    async def closed(self, connection: EngineConnection) -> None:
        """The connection is gone: its watchdog stops and its simulations pause."""
        connection.deadlines.clear()
        if connection.watchdog is not None:
            connection.watchdog.cancel()
            connection.watchdog = None
        await self._simulations.disconnect(connection.connection_id)

    async def forget(self, connection: EngineConnection, session_id: str) -> None:
        """A session was deleted: its simulation stops."""
        connection.cancel_timer(session_id)
        await self._simulations.forget(session_id)

    # ------------------------------------------------------------------ requests

    async def _start(
        self, principal: Principal, connection: EngineConnection, data: m.StartSimulationData
    ) -> Reply:
        try:
            updates = AccountUpdates(data.account_updates)
        except ValueError:
            raise ValidationFailed(
                "account_updates",
                f"account_updates '{data.account_updates}' is not one of "
                + ", ".join(a.value for a in AccountUpdates),
            ) from None
        size = _window(data.window)
        simulation = await self._simulations.start(
            principal, data.session_id, data.warmup_bars, updates, connection.connection_id, size
        )
        sid = data.session_id
        first, last = simulation.ticks[0], simulation.ticks[-1]
        reply: Reply = [
            m.SimulationStarted(
                timestamp=self._now(),
                data=m.SimulationStartedData(
                    session_id=sid,
                    total_ticks=simulation.total_ticks,
                    first_sim_time=from_epoch(first),
                    last_sim_time=from_epoch(last),
                    warmup_bars=data.warmup_bars,
                ),
            )
        ]
        if data.warmup_bars:
            reply.append(
                m.HistoryOut(
                    timestamp=self._now(),
                    data=m.HistoryOutData(session_id=sid, bars=history_json(simulation.history())),
                )
            )
        return reply + self._next(connection, sid, simulation)

    async def _ack(
        self, principal: Principal, connection: EngineConnection, data: m.TickAckData
    ) -> Reply:
        sid = data.session_id
        check_batch_size(data.orders)
        requests, refused = _parse_orders(sid, data.orders) if data.orders else ([], {})
        if data.window is not None:
            size = _window(data.window)
        else:
            run = self._simulations.run_of_any(sid)
            size = run.simulation.window_size if run is not None else 1
        frame = _WindowFrame(self, sid, self._max_frame) if size > 1 else None
        simulation, batch, step = await self._simulations.acknowledge(
            principal,
            sid,
            connection.connection_id,
            data.sequence_id,
            requests,
            data.cancels,
            refused,
            data.window,
            frame.admit if frame is not None else None,
        )
        connection.cancel_timer(sid)
        reply: Reply = []
        if data.orders or data.cancels:
            reply.append(self._batch_ack(sid, f"tick-{data.sequence_id}", batch, refused))
        reply += self._reports(sid, batch.reports)
        if step is not None:
            if frame is not None:
                return reply + self._sent(connection, sid, simulation, frame)
            return reply + self._step(connection, sid, simulation, step)
        reply += self._reports(sid, simulation.finish())
        wall_time_ms = self._simulations.wall_time_ms(sid)
        results = await self._simulations.complete(principal, sid)
        reply.append(
            m.SimulationComplete(
                timestamp=self._now(),
                data=m.SimulationCompleteData(
                    session_id=sid,
                    metrics=metrics_data(results.metrics),
                    total_ticks=results.total_ticks,
                    wall_time_ms=wall_time_ms,
                ),
            )
        )
        return reply

    async def _batch(
        self, principal: Principal, connection: EngineConnection, data: m.OrderBatchData
    ) -> Reply:
        check_batch_size(data.orders)
        requests, refused = _parse_orders(data.session_id, data.orders)
        batch = await self._simulations.submit(
            principal, data.session_id, connection.connection_id, requests, refused
        )
        return [self._batch_ack(data.session_id, data.batch_id, batch, refused)]

    async def _resume_session(
        self, principal: Principal, connection: EngineConnection, data: m.ResumeSessionData
    ) -> Reply:
        sid = data.session_id
        finished = await self._simulations.finished_of(principal, sid)
        if finished is not None:
            results = await self._simulations.results(principal, sid)  # checks the owner
            return self._completed_sync(sid, finished, results, data.last_sequence_id)
        size = _window(data.window)
        run = await self._simulations.run_of(principal, sid)
        if run.paused is not None:
            simulation = await self._simulations.resume(principal, sid, connection.connection_id)
        else:
            simulation = await self._simulations.drive(principal, sid, connection.connection_id)
        # A window in flight is void: what follows is as of the last bar acknowledged, and
        # the pending bars go out again as a window of the size asked for now (the engine
        # is deterministic: the same bars, fills and ids as before).
        simulation.void_window()
        simulation.window_size = size
        sync = self._sync(
            sid,
            "running",
            simulation.sim_time,
            simulation.next_sequence_id,
            account_data(
                sid, simulation.sequence, simulation.sim_time, simulation.broker.account()
            ),
            simulation.missed_since(min(data.last_sequence_id, simulation.sequence)),
        )
        return [sync, *self._pending(connection, sid, simulation)]

    def _completed_sync(
        self,
        sid: str,
        finished: FinishedSimulation,
        results: SimulationResults,
        last_seen: int,
    ) -> Reply:
        """Resuming a simulation that completed while the client was away: what it missed,
        then `simulation_complete` again."""
        state = finished.state
        sim_time = state.broker.last_sim_time
        return [
            self._sync(
                sid,
                "completed",
                sim_time,
                state.sequence + 1,
                account_data(sid, state.sequence, sim_time, finished.account),
                finished.missed_since(last_seen),
            ),
            m.SimulationComplete(
                timestamp=self._now(),
                data=m.SimulationCompleteData(
                    session_id=sid,
                    metrics=metrics_data(results.metrics),
                    total_ticks=results.total_ticks,
                    wall_time_ms=finished.wall_time_ms,
                ),
            ),
        ]

    def _sync(
        self,
        sid: str,
        state: str,
        sim_time: datetime | None,
        next_sequence_id: int,
        account: m.AccountData,
        missed: Missed,
    ) -> m.StateSync:
        return m.StateSync(
            timestamp=self._now(),
            data=m.StateSyncData(
                session_id=sid,
                state=state,
                sim_time=sim_time,
                next_sequence_id=next_sequence_id,
                account=account,
                missed_executions=[report_data(sid, r) for r in missed.reports],
                missed_rejections={
                    r.order_id: m.RejectionData(
                        error_code=r.code, message=r.message, details=dict(r.details)
                    )
                    for r in missed.rejections
                },
            ),
        )

    # ------------------------------------------------------------------ building replies

    def _step(
        self, connection: EngineConnection, sid: str, simulation: Simulation, step: Step
    ) -> Reply:
        """A new bar: its fills, the account (as `account_updates` asks), then its tick."""
        reply: Reply = list(self._reports(sid, step.reports))
        updates = simulation.account_updates
        filled = any(r.is_fill for r in step.reports)
        if updates is AccountUpdates.EVERY_TICK or (updates is AccountUpdates.ON_FILL and filled):
            reply.append(
                m.AccountSnapshot(timestamp=self._now(), data=self._account(sid, simulation))
            )
        reply.append(self._tick(sid, step.tick, simulation))
        self._arm(connection, sid, simulation, step.tick.sequence_id)
        self._metrics.ticks_processed(1)
        return reply

    def _pending(self, connection: EngineConnection, sid: str, simulation: Simulation) -> Reply:
        """The tick in flight, sent again; or, with nothing in flight (a window was void),
        the next window."""
        tick = simulation.pending_tick()
        if tick is None:
            if simulation.done_stepping or simulation.finished:
                return []
            return self._next(connection, sid, simulation)
        self._arm(connection, sid, simulation, tick.sequence_id)
        return [self._tick(sid, tick, simulation)]

    def _next(self, connection: EngineConnection, sid: str, simulation: Simulation) -> Reply:
        """From between ticks: the next tick, or the next window when the client asks for
        windows (§7.14)."""
        if simulation.window_size <= 1:
            return self._step(connection, sid, simulation, simulation.advance())
        frame = _WindowFrame(self, sid, self._max_frame)
        simulation.open_window(simulation.window_size, frame.admit)
        return self._sent(connection, sid, simulation, frame)

    def _sent(
        self, connection: EngineConnection, sid: str, simulation: Simulation, frame: _WindowFrame
    ) -> Reply:
        """The `ticks` frame of the window just opened, ending where the frame is full; a
        lone bar whose reports fill more than a frame goes out as `tick` with its reports
        and account as separate messages (a window of one bar, as without windows)."""
        if frame.used > frame.budget and len(frame.steps) > 1:
            frame.drop_last()
            simulation.trim_window(frame.steps[-1].tick.sequence_id)
        last = frame.steps[-1].tick.sequence_id
        if frame.used > frame.budget:
            return self._step(connection, sid, simulation, frame.steps[0])
        self._arm(connection, sid, simulation, last)
        return [
            m.TicksOut(
                timestamp=self._now(),
                data=m.TicksOutData(session_id=sid, ticks=frame.ticks()),
            )
        ]

    def _tick(self, sid: str, tick: Tick, simulation: Simulation) -> m.TickOut:
        return m.TickOut(
            timestamp=self._now(),
            data=m.TickOutData(
                session_id=sid,
                sequence_id=tick.sequence_id,
                sim_time=tick.sim_time,
                bars=tick_bars_json(tick, simulation.series),
                equity=tick.equity,
                cash=tick.cash,
                is_last=tick.is_last,
            ),
        )

    def _reports(self, sid: str, reports: Sequence[ExecutionReport]) -> Reply:
        return [m.ExecutionReport(timestamp=self._now(), data=report_data(sid, r)) for r in reports]

    def _account(self, sid: str, simulation: Simulation) -> m.AccountData:
        return account_data(
            sid, simulation.sequence, simulation.sim_time, simulation.broker.account()
        )

    def _paused(
        self, sid: str, simulation: Simulation, reason: PauseReason | None
    ) -> m.SimulationPaused:
        return m.SimulationPaused(
            timestamp=self._now(),
            data=m.SimulationPausedData(
                session_id=sid,
                sequence_id=simulation.sequence,
                sim_time=simulation.sim_time,
                reason=(reason or PauseReason.REQUESTED).value,
            ),
        )

    def _batch_ack(
        self, sid: str, batch_id: str, batch: BatchResult, refused: dict[str, DomainError]
    ) -> m.BatchAck:
        rejected = {**refused, **batch.rejected}
        return m.BatchAck(
            timestamp=self._now(),
            data=m.BatchAckData(
                session_id=sid,
                batch_id=batch_id,
                accepted=list(batch.accepted),
                rejected={
                    order_id: m.RejectionData(
                        error_code=e.code, message=e.message, details=e.details
                    )
                    for order_id, e in rejected.items()
                },
            ),
        )

    # ------------------------------------------------------------------ ack timeout

    def _arm(
        self, connection: EngineConnection, sid: str, simulation: Simulation, sequence: int
    ) -> None:
        if connection.push is None:
            return
        loop = asyncio.get_running_loop()
        connection.deadlines[sid] = AckDeadline(
            loop.time() + self._tick_timeout, simulation, sequence
        )
        if connection.watchdog is None or connection.watchdog.done():
            connection.watchdog = loop.create_task(self._watch(connection))

    async def _watch(self, connection: EngineConnection) -> None:
        """Pause each simulation whose tick was not acked in time, until none is in flight."""
        loop = asyncio.get_running_loop()
        period = min(1.0, self._tick_timeout / 2)
        while connection.deadlines:
            await asyncio.sleep(period)
            await self._expire(connection, loop.time())

    async def _expire(self, connection: EngineConnection, now: float) -> None:
        """Time out the deadlines due at `now`. A function of its own so that no deadline
        (and the whole simulation it refers to) outlives the check in a local variable
        while the watchdog sleeps: a completed simulation must leave memory at once."""
        for sid, deadline in list(connection.deadlines.items()):
            if deadline.due <= now and connection.deadlines.get(sid) is deadline:
                del connection.deadlines[sid]
                await self._timed_out(connection, sid, deadline)

    async def _timed_out(
        self, connection: EngineConnection, sid: str, deadline: AckDeadline
    ) -> None:
        simulation = deadline.simulation
        if simulation.in_flight != deadline.sequence_id or connection.push is None:
            return
        try:
            run = self._simulations.run_of_any(sid)
            if run is None or run.paused is not None or run.simulation is not simulation:
                return
            await self._simulations.pause(run.principal, sid, PauseReason.ACK_TIMEOUT)
            frame = m.encoder.encode(self._paused(sid, simulation, PauseReason.ACK_TIMEOUT))
            await connection.push(frame)
        except Exception:  # the connection may be closing; the pause itself stands
            log.debug("ack timeout of %s not delivered", sid, exc_info=True)


class _WindowFrame:
    """The `ticks` frame of a window being stepped: each bar is encoded as it is made, and
    stepping stops once another bar as large as the largest so far would not fit.

    What a bar says of itself alone (sequence id, time, OHLCV) is encoded once per bar and
    simulation: a window after a decision steps again most of the void bars of the last
    one (their account, cash, equity and reports are encoded anew)."""

    def __init__(self, protocol: SimulationProtocol, sid: str, max_bytes: int) -> None:
        self.protocol = protocol
        self.sid = sid
        self.budget = max_bytes
        self.steps: list[Step] = []
        self.parts: list[bytes] = []
        self.used = FRAME_OVERHEAD + 2 * len(sid)
        self.largest = 0
        self.simulation: Simulation | None = None
        self.heads: dict[int, bytes] | None = None
        self.every_tick = self.on_fill = False
        self.cash: Decimal | None = None
        self.cash_json = b""
        """The JSON of the last cash encoded (the same Decimal until a fill)."""

    def admit(self, step: Step) -> bool:
        reports, tick = step
        heads = self.heads
        if heads is None:
            heads = self._open(tick.sequence_id)
        head = heads.get(tick.sequence_id)
        if head is None:
            simulation = self.simulation
            head = heads[tick.sequence_id] = window_tick_head(
                tick, None if simulation is None else simulation.series
            )
        if reports or self.every_tick:
            account = None
            simulation = self.simulation
            if simulation is not None and (
                self.every_tick or (self.on_fill and any(r.is_fill for r in reports))
            ):
                # (the account is the broker's now, right after the bar)
                account = self.protocol._account(self.sid, simulation)
            executions = [report_data(self.sid, r) for r in reports]
            part = window_tick_json(head, tick, executions, account)
        else:  # most bars: nothing but the bar, its equity and cash
            if tick.cash is not self.cash:
                self.cash, self.cash_json = tick.cash, m.encoder.encode(tick.cash)
            part = window_tick_plain(head, tick, self.cash_json)
        self.steps.append(step)
        self.parts.append(part)
        size = len(part)
        self.used += size + 1
        if size > self.largest:
            self.largest = size
        return self.used + self.largest + 1 <= self.budget

    def _open(self, first: int) -> dict[int, bytes]:
        """At the window's first bar: the simulation stepping it, and its bars' heads from
        `first` on (those before it will not be stepped again)."""
        run = self.protocol.simulations.run_of_any(self.sid)
        if run is None:
            self.heads = {}
            return self.heads
        self.simulation = simulation = run.simulation
        self.every_tick = simulation.account_updates is AccountUpdates.EVERY_TICK
        self.on_fill = simulation.account_updates is AccountUpdates.ON_FILL
        kept = self.protocol._heads.get(simulation)
        heads = {} if kept is None else {s: h for s, h in kept.items() if s >= first}
        self.protocol._heads[simulation] = self.heads = heads
        return heads

    def drop_last(self) -> None:
        self.steps.pop()
        self.used -= len(self.parts.pop()) + 1

    def ticks(self) -> msgspec.Raw:
        return msgspec.Raw(b"[" + b",".join(self.parts) + b"]")


def _window(value: int) -> int:
    if not 1 <= value <= m.MAX_WINDOW:
        raise ValidationFailed(
            "window",
            f"window must be between 1 and {m.MAX_WINDOW} bars",
            min=1,
            max=m.MAX_WINDOW,
            value=value,
        )
    return value


def _parse_orders(
    session_id: str, orders: Sequence[m.OrderData]
) -> tuple[list[OrderRequest], dict[str, DomainError]]:
    """Wire orders → requests, and the refusals of those that cannot be one. A fault of ours
    on one order refuses that order (INTERNAL_ERROR, logged), not the whole request."""
    requests: list[OrderRequest] = []
    refused: dict[str, DomainError] = {}
    for order in orders:
        try:
            requests.append(order_request(order))
        except DomainError as exc:
            refused[order.order_id] = exc
        except Exception:
            log.exception("fault parsing order %s of session %s", order.order_id, session_id)
            refused[order.order_id] = OrderFailed(order.order_id)
    return requests, refused
