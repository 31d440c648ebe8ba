"""The WebSocket driver: the strategy loop runs here, the engine on a server. The strategy
never leaves this process; the server sends closed bars and fills, the client sends orders.

Bars come in windows (PROTOCOL §7.14): the server sends up to `window` bars at once, each
with the execution reports it produced; the strategy runs over them here, bar by bar, and
only the first bar on which it places or cancels something goes back to the server (its
ack voids the rest of the window). So a run costs a round trip per decision, not per bar;
`window=1` asks for one tick at a time.

A dropped connection is survived: the driver reconnects (with backoff) and sends
`resume_session` with the last tick it saw; the server replays the executions it missed
and the tick (or window) in flight, and the run goes on as if nothing happened (an
execution is never delivered twice: they are recognised by id)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec

from domain.bars import Bar
from entrypoints.protocol import messages as m
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.client import SessionClient
from entrypoints.sdk.driver import (
    DEFAULT_WINDOW,
    NO_REJECTIONS,
    EngineSettingValue,
    Outcome,
    Started,
    TickView,
    session_request,
)
from entrypoints.sdk.errors import (
    ConnectionLostError,
    InvalidStateError,
    RequestTimeoutError,
    SessionError,
    SimuTradorError,
    UnexpectedReplyError,
)

RESUME_ATTEMPTS = 8
SESSION_BUSY_BACKOFF = 0.2
SMALLEST_WINDOW = 32
"""The least a window is sized to after a decision (when windows are asked for)."""
GAPS_KEPT = 64
"""The gaps between decisions (in bars) a window after a decision is sized from: the last
ones, so that a strategy that trades more often, or less, gets windows to match."""
BAR_AHEAD_SECONDS = 30e-6
"""What a bar sent ahead and then voided costs, server and client together (stepping it,
encoding, compressing and decoding it; measured on daily bars on 2 vCPUs): the price of a
longer window, set against a round trip for each decision that falls after the window."""
ASSUMED_ROUND_TRIP = 0.05
"""The round trip assumed until one is measured (a distant server's)."""
GAPS_FOR_SIZING = 8
"""Until this many gaps are known, a window after a decision holds `WINDOW_PER_GAP` times
their mean."""
WINDOW_PER_GAP = 4
"""Before `GAPS_FOR_SIZING` gaps: a window after a decision, in mean gaps."""
WINDOW_GROWTH = 4
"""A window acknowledged whole (no decision in it): the next one is this much longer."""


def _ends_a_step(message: m.ServerMessage) -> bool:
    return isinstance(message, m.Tick | m.Ticks | m.SimulationComplete)


class RemoteDriver:
    """`SimulationDriver` over one SessionClient: creates the session, starts it, and
    acknowledges ticks with the strategy's orders."""

    def __init__(
        self,
        auth: AuthClient,
        symbols: Sequence[str],
        start: str,
        end: str,
        capital: Decimal,
        timeframe: str = "1d",
        *,
        warmup_bars: int = 0,
        engine_settings: Mapping[str, EngineSettingValue] | None = None,
        timeout: float = 60.0,
        max_connect_attempts: int = 8,
        window: int = DEFAULT_WINDOW,
        first_connect_attempts: int = 3,
    ) -> None:
        if not 1 <= window <= m.MAX_WINDOW:
            raise ValueError(f"window must be between 1 and {m.MAX_WINDOW} bars")
        self._request = session_request(symbols, start, end, capital, timeframe, engine_settings)
        self._client = SessionClient(
            auth, timeout=timeout, max_connect_attempts=max_connect_attempts
        )
        self._warmup = warmup_bars
        # A server that is not there at the start is reported as fast as `session list`
        # does; once running, a dropped connection gets more tries.
        self._attempts = (first_connect_attempts, max_connect_attempts)
        self._session_id = ""
        self._last_tick = 0
        self._seen: set[str] = set()
        self._refused: set[str] = set()
        self._window = window
        self._current = window
        """The size of the window in flight, as asked (the server may have sent fewer)."""
        self._since_decision = 0
        self._gaps: deque[int] = deque(maxlen=GAPS_KEPT)
        """Bars between the last decisions (the first: since the start)."""
        self._total = 0
        """The simulation's bars: acknowledging bar `_total` completes the run."""
        self._results: asyncio.Task[m.SimulationResultsData] | None = None
        """`get_results`, sent right behind the last bar's ack (the server answers in
        order, once the run is complete): the results come without a round trip more."""
        self._round_trip = ASSUMED_ROUND_TRIP
        """The quickest exchange that stepped the simulation so far (seconds): what a
        round trip to this server costs, at least."""
        self._ahead: deque[msgspec.Raw | m.WindowTickData] = deque()
        """The bars of the window in flight the strategy has not run over yet (decoded when
        `peek` needed them)."""
        self.resumes = 0
        """How many times the run reconnected and resumed (for monitoring and tests)."""
        self.round_trips = 0
        """Requests that stepped the simulation (the start, each ack, each resume): what a
        run costs in latency."""
        self.decisions = 0
        """Acks that carried orders or cancels."""

    @property
    def client(self) -> SessionClient:
        return self._client

    async def start(self) -> tuple[Started, Outcome]:
        self._client.max_connect_attempts = self._attempts[0]
        try:
            created = await self._client.request(
                m.CreateSession(data=self._request), m.SessionCreated
            )
        finally:
            self._client.max_connect_attempts = self._attempts[1]
        session = created.data
        self._session_id = session.session_id
        sent = time.perf_counter()
        messages = await self._client.exchange(
            m.StartSimulation(
                data=m.StartSimulationData(
                    session_id=session.session_id, warmup_bars=self._warmup, window=self._window
                )
            ),
            _ends_a_step,
        )
        self._round_trip = time.perf_counter() - sent
        self.round_trips += 1
        total = 0
        history: dict[str, list[Bar]] = {s: [] for s in session.symbols}
        for message in messages:
            if isinstance(message, m.SimulationStarted):
                total = message.data.total_ticks
            elif isinstance(message, m.History):
                for symbol, rows in message.data.bars.items():
                    history[symbol] = [Bar(*row) for row in rows]
        self._total = total
        started = Started(
            session.session_id,
            tuple(session.symbols),
            total,
            history,
            tuple(session.warnings),
            session.currency,
        )
        return started, self._outcome(messages)

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[m.OrderData], cancels: Sequence[str]
    ) -> Outcome:
        if self._ahead and not orders and not cancels:
            return self._bar(self._ahead.popleft())  # the window goes on, no round trip
        self._ahead.clear()  # the bars after a decision are void
        decided = bool(orders or cancels)
        if decided:
            self.decisions += 1
        following = self._next_window(decided)
        ack = m.TickAck(
            data=m.TickAckData(
                session_id=self._session_id,
                sequence_id=sequence_id,
                orders=list(orders),
                cancels=list(cancels),
                window=following if following != self._current else None,
            )
        )
        carried: list[m.ServerMessage] = []
        while True:
            try:
                self.round_trips += 1
                sent = time.perf_counter()
                if sequence_id == self._total and self._results is None:
                    # The last bar: `get_results` goes right behind the ack (tasks start in
                    # order, and sends take a lock).
                    exchange = asyncio.ensure_future(self._client.exchange(ack, _ends_a_step))
                    self._results = asyncio.ensure_future(self._fetch_results())
                    messages = await exchange
                else:
                    messages = await self._client.exchange(ack, _ends_a_step)
                self._round_trip = min(self._round_trip, time.perf_counter() - sent)
                self._current = following
                return self._outcome(carried + messages)
            except (ConnectionLostError, RequestTimeoutError):
                resumed = await self._resume()
            except InvalidStateError as exc:
                if exc.details.get("state") != "paused":
                    raise
                resumed = await self._resume()  # paused (e.g. our ack came too late)

            sync = next(x for x in resumed if isinstance(x, m.StateSync))
            if sync.data.next_sequence_id <= sequence_id:
                # The ack never arrived: the server waits for it still (for the tick, or
                # for an ack within the window it sent again, the same). Send it again.
                carried += [x for x in resumed if not isinstance(x, m.Tick | m.Ticks)]
                continue
            return self._outcome(carried + resumed)

    def _next_window(self, decided: bool) -> int:
        """How many bars to ask for next. Every bar sent after a decision is stepped, sent
        and dropped for nothing, and every decision beyond the window costs a round trip:
        after a decision, the window that costs least over the recent gaps between decisions
        at this link's round trip (`cheapest_window`); after a window without one, a
        longer window."""
        if self._window == 1:
            return 1
        if not decided:
            return min(self._window, self._current * WINDOW_GROWTH)
        self._gaps.append(self._since_decision)
        self._since_decision = 0
        gaps = self._gaps
        if len(gaps) < GAPS_FOR_SIZING:
            wanted = int(WINDOW_PER_GAP * sum(gaps) / len(gaps))
        else:
            wanted = cheapest_window(sorted(gaps), self._round_trip)
        return max(1, min(self._window, max(SMALLEST_WINDOW, wanted)))

    def peek(self) -> list[tuple[int, Mapping[str, Bar]]]:
        """The bars of the window in flight the strategy has not run over yet, with their
        sequence ids (for indicators: they are the next bars whatever the strategy decides;
        a decision only voids what the server stepped ahead)."""
        ahead = self._ahead
        for i, item in enumerate(ahead):
            if isinstance(item, msgspec.Raw):
                ahead[i] = self._decode(item)
        return [(b.sequence_id, _view(b).bars) for b in ahead if isinstance(b, m.WindowTickData)]

    async def results(self) -> m.SimulationResultsData:
        fetched, self._results = self._results, None
        if fetched is not None:
            try:
                return await fetched
            except SimuTradorError:
                pass  # (e.g. the connection dropped after the last ack: ask again)
        return await self._fetch_results()

    async def _fetch_results(self) -> m.SimulationResultsData:
        reply = await self._client.request(
            m.GetResults(data=m.SessionRef(session_id=self._session_id)), m.SimulationResults
        )
        return reply.data

    async def close(self) -> None:
        fetched, self._results = self._results, None
        if fetched is not None and not fetched.done():
            fetched.cancel()
        await self._client.close()
        if fetched is not None:
            with contextlib.suppress(asyncio.CancelledError, SimuTradorError):
                await fetched  # (retrieved: an abandoned fetch logs nothing)

    # ------------------------------------------------------------------ internals

    async def _resume(self) -> list[m.ServerMessage]:
        """Reconnect and resume where the server is; the executions this client missed come
        back in `state_sync`, then the tick in flight."""
        last_error: SimuTradorError | None = None
        for attempt in range(RESUME_ATTEMPTS):
            try:
                self.round_trips += 1
                messages = await self._client.exchange(
                    m.ResumeSession(
                        data=m.ResumeSessionData(
                            session_id=self._session_id,
                            last_sequence_id=self._last_tick,
                            window=self._current,
                        )
                    ),
                    _ends_a_step,
                )
            except SessionError as exc:
                if exc.code != "SESSION_BUSY":  # the server has not seen the old socket close
                    raise
                last_error = exc
            except ConnectionLostError as exc:
                last_error = exc
            else:
                self.resumes += 1
                return messages
            await asyncio.sleep(SESSION_BUSY_BACKOFF * (attempt + 1))
        assert last_error is not None
        raise last_error

    def _outcome(self, messages: Sequence[m.ServerMessage]) -> Outcome:
        reports: list[m.ExecutionReportData] = []
        rejected: dict[str, tuple[str, str]] = {}
        tick: TickView | None = None
        for message in messages:
            if isinstance(message, m.ExecutionReport):
                self._collect(message.data, reports)
            elif isinstance(message, m.StateSync):
                for missed in message.data.missed_executions:
                    self._collect(missed, reports)
                for order_id, refusal in message.data.missed_rejections.items():
                    if order_id not in self._refused:
                        rejected[order_id] = (refusal.error_code, refusal.message)
            elif isinstance(message, m.BatchAck):
                rejected.update(
                    (oid, (r.error_code, r.message)) for oid, r in message.data.rejected.items()
                )
            elif isinstance(message, m.Tick):
                data = message.data
                self._ahead.clear()
                self._since_decision += 1
                self._last_tick = data.sequence_id
                tick = _view(data)
            elif isinstance(message, m.Ticks):
                self._ahead = deque(message.data.ticks)
                first = self._ahead.popleft()
                self._refused.update(rejected)
                return self._bar(first, reports, rejected)
        self._refused.update(rejected)
        return Outcome(reports, tick, rejected)

    def _bar(
        self,
        item: msgspec.Raw | m.WindowTickData,
        reports: list[m.ExecutionReportData] | None = None,
        rejected: Mapping[str, tuple[str, str]] | None = None,
    ) -> Outcome:
        """A bar of the window, decoded now: its reports count as seen only now, when the
        strategy gets them (those of void bars are not the run's). Once per bar of a run:
        nothing is made that the bar does not need."""
        data = self._decode(item) if isinstance(item, msgspec.Raw) else item
        if data.executions:
            if reports is None:
                reports = []
            for report in data.executions:
                self._collect(report, reports)
        self._since_decision += 1
        self._last_tick = data.sequence_id
        return _new(Outcome, (reports or _NO_REPORTS, _view(data), rejected or NO_REJECTIONS))

    @staticmethod
    def _decode(raw: msgspec.Raw) -> m.WindowTickData:
        try:
            return m.window_tick_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise UnexpectedReplyError(f"Unreadable bar in a window: {exc}") from None

    def _collect(self, report: m.ExecutionReportData, into: list[m.ExecutionReportData]) -> None:
        if report.execution_id not in self._seen:
            self._seen.add(report.execution_id)
            into.append(report)


def cheapest_window(gaps: Sequence[int], round_trip: float) -> int:
    """Of windows as long as one of `gaps` (sorted, bars between past decisions), the one
    that costs least in expectation: its bars (`BAR_AHEAD_SECONDS` each) plus a round trip
    times the share of gaps longer than it (a decision after the window). Over a fast link
    windows come out short, over a slow one long enough to hold nearly every gap."""
    n = len(gaps)
    best, least = gaps[-1], math.inf
    for i, gap in enumerate(gaps):
        if i + 1 < n and gaps[i + 1] == gap:
            continue  # (the last of equal gaps says how many are longer)
        cost = gap * BAR_AHEAD_SECONDS + round_trip * (n - 1 - i) / n
        if cost < least:
            best, least = gap, cost
    return best


def _view(data: m.TickData | m.WindowTickData) -> TickView:
    when = data.sim_time
    bars = {}
    for symbol, b in data.bars.items():
        bars[symbol] = _new(Bar, (when, b.open, b.high, b.low, b.close, b.volume))
    return _new(
        TickView,
        (
            data.sequence_id,
            int(when.timestamp()),
            when,
            bars,
            data.equity,
            data.cash,
            data.is_last,
        ),
    )


_new = tuple.__new__
"""Named tuples made as tuples of their type (`Bar`, `TickView`, `Outcome`): a bar of a
window makes three, and their generated constructors cost as much again."""
_NO_REPORTS: Sequence[m.ExecutionReportData] = ()
