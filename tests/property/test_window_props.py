"""Windows (PROTOCOL §7.14) against one tick at a time, over random intraday bars and
random strategies (market, limit, stop and stop-limit orders, brackets, cancels, `day` and
`ioc` expiries, orders resting and filling inside a would-be window): the client applies
exactly the same reports and sees exactly the same ticks, and the results are the same,
whatever the window size, however windows are cut short, and across a snapshot taken
mid-window (through msgspec, as durable storage keeps it) and restored elsewhere."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.simulation import Simulation, SimulationState, Step
from domain.bars import Bar, BarSeries, Timeframe
from domain.broker import ExecutionReport
from domain.exchanges import exchange_hours
from domain.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from domain.session import EngineSettings
from domain.symbols import AssetClass

D = Decimal
NEW_YORK = exchange_hours("NASDAQ", AssetClass.STOCK)
DAYS = [datetime(2024, 1, d, 14, 35, tzinfo=UTC) for d in (2, 3, 4)]
BARS_PER_DAY = 24


def bars(seed: int) -> dict[str, BarSeries]:
    """Two symbols of 5-minute bars over three days; BBB misses some bars."""
    rng = random.Random(seed)
    out = {}
    for symbol, start, skip in (("AAA", 100.0, 0), ("BBB", 50.0, 5)):
        price = start
        rows = []
        for day in DAYS:
            for i in range(BARS_PER_DAY):
                if skip and i % skip == 3:
                    continue
                open_ = price
                close = max(1.0, price * (1 + rng.uniform(-0.02, 0.02)))
                high = max(open_, close) * (1 + rng.uniform(0, 0.01))
                low = min(open_, close) * (1 - rng.uniform(0, 0.01))
                o, h, lo, c = (D(f"{x:.2f}") for x in (open_, high, low, close))
                when = day + timedelta(minutes=5 * i)
                rows.append(Bar(when, o, h, lo, c, D(rng.randint(500, 5000))))
                price = close
        out[symbol] = BarSeries.from_bars(symbol, Timeframe.M5, rows)
    return out


def simulation(seed: int, engine: EngineSettings) -> Simulation:
    data = bars(seed)
    return Simulation(
        "sess_w",
        data,
        dict.fromkeys(data, 0),
        dict.fromkeys(data, D(1)),
        NEW_YORK,
        D(100_000),
        engine,
    )


@dataclass(frozen=True)
class Action:
    """What the strategy does on one bar (decided by the bar's number and close only)."""

    kind: str
    symbol: str = "AAA"
    side: OrderSide = OrderSide.BUY
    type: OrderType = OrderType.MARKET
    quantity: int = 1
    offset: int = 0
    """Price offset from the close, in tenths of a percent."""
    tif: TimeInForce = TimeInForce.GTC
    bracket: bool = False
    target: int = 0
    """For a cancel: which order placed so far (modulo their number)."""


actions = st.one_of(
    st.builds(
        Action,
        kind=st.just("order"),
        symbol=st.sampled_from(["AAA", "BBB"]),
        side=st.sampled_from(list(OrderSide)),
        type=st.sampled_from(list(OrderType)),
        quantity=st.integers(1, 40),
        offset=st.integers(-40, 40),
        tif=st.sampled_from(list(TimeInForce)),
        bracket=st.booleans(),
    ),
    st.builds(Action, kind=st.just("cancel"), target=st.integers(0, 50)),
)
plans = st.dictionaries(
    st.integers(1, 3 * BARS_PER_DAY), st.lists(actions, min_size=1, max_size=3), max_size=14
)
engines = st.builds(
    EngineSettings,
    commission_pct=st.sampled_from([D(0), D("0.001")]),
    slippage_bps=st.sampled_from([D(0), D(5)]),
    max_volume_pct=st.sampled_from([None, D("0.01")]),
    allow_short=st.booleans(),
)


@dataclass
class Client:
    """The strategy side: what it saw and applied, in order."""

    plan: dict[int, list[Action]]
    placed: list[str] = field(default_factory=list)
    closes: dict[str, Decimal] = field(default_factory=dict)
    applied: list[ExecutionReport] = field(default_factory=list)
    seen: list[tuple[int, Decimal, Decimal, tuple[str, ...]]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def on_bar(self, step: Step) -> tuple[list[OrderRequest], list[str]]:
        self.applied += step.reports
        tick = step.tick
        self.seen.append((tick.sequence_id, tick.equity, tick.cash, tuple(tick.bars)))
        self.closes.update((s, b.close) for s, b in tick.bars.items())
        orders: list[OrderRequest] = []
        cancels: list[str] = []
        for n, action in enumerate(self.plan.get(tick.sequence_id, [])):
            if action.kind == "cancel":
                if self.placed:
                    cancels.append(self.placed[action.target % len(self.placed)])
                continue
            orders.append(self._order(f"o{tick.sequence_id}_{n}", action))
            self.placed.append(orders[-1].order_id)
        return orders, cancels

    def _order(self, order_id: str, a: Action) -> OrderRequest:
        close = self.closes.get(a.symbol, D(100))
        price = (close * (1 + D(a.offset) / 1000)).quantize(D("0.01"))
        sign = 1 if a.side is OrderSide.BUY else -1
        limit = stop = None
        if a.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            limit = price
        if a.type in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop = price
        exits: dict[str, Decimal] = {}
        if a.bracket:
            exits = {
                "stop_loss": (close * (1 - sign * D("0.02"))).quantize(D("0.01")),
                "take_profit": (close * (1 + sign * D("0.02"))).quantize(D("0.01")),
            }
        return OrderRequest(
            order_id,
            a.symbol,
            a.side,
            a.type,
            quantity=D(a.quantity),
            limit_price=limit,
            stop_price=stop,
            time_in_force=a.tif,
            **exits,
        )

    def acked(
        self, sim: Simulation, sequence_id: int, decided: tuple[list[OrderRequest], list[str]]
    ) -> None:
        batch = sim.acknowledge(sequence_id, *decided)
        self.applied += batch.reports
        self.refused += sorted((k, e.code) for k, e in batch.rejected.items())


def one_at_a_time(sim: Simulation, client: Client) -> None:
    while True:
        step = sim.advance()
        client.acked(sim, step.tick.sequence_id, client.on_bar(step))
        if sim.done_stepping:
            client.applied += sim.finish()
            return


def windowed(
    make: Callable[[], Simulation],
    client: Client,
    size: int,
    cuts: list[int],
    restarts: list[bool],
) -> Simulation:
    """Windows of `size` bars; window n is cut to `cuts[n]` bars (0: left whole, odd: by
    `admit`, even: by `trim_window`); with `restarts[n]` the simulation is snapshotted
    mid-window and restored into a fresh one, which opens the window again."""
    sim = make()
    sim.window_size = size
    n = 0
    while True:
        cut = cuts[n % len(cuts)]
        if cut % 2:
            seen: list[Step] = []

            def admit(step: Step, seen: list[Step] = seen, cut: int = cut) -> bool:
                seen.append(step)
                return len(seen) < cut

            steps = sim.open_window(size, admit)
        else:
            steps = sim.open_window(size)
            if cut and cut < len(steps):
                sim.trim_window(steps[cut - 1].tick.sequence_id)
                steps = steps[:cut]
        if restarts[n % len(restarts)] and sim.in_window:
            state = msgspec.json.decode(msgspec.json.encode(sim.state()), type=SimulationState)
            assert state.in_flight is None
            assert state.sequence == steps[0].tick.sequence_id - 1
            sim = make()
            sim.restore(state)
            again = sim.open_window(sim.window_size)
            assert again[: len(steps)] == steps  # the same bars, fills and ids
            if len(again) > len(steps):
                sim.trim_window(steps[-1].tick.sequence_id)
        n += 1
        for i, step in enumerate(steps):
            decided = client.on_bar(step)
            if decided[0] or decided[1] or i == len(steps) - 1:
                client.acked(sim, step.tick.sequence_id, decided)
                break
        if sim.done_stepping:
            client.applied += sim.finish()
            return sim


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    engine=engines,
    plan=plans,
    size=st.integers(2, 40),
    cuts=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    restarts=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_windows_apply_the_same_reports_ticks_and_results_as_one_tick_at_a_time(
    seed: int,
    engine: EngineSettings,
    plan: dict[int, list[Action]],
    size: int,
    cuts: list[int],
    restarts: list[bool],
) -> None:
    reference = simulation(seed, engine)
    expected = Client(plan)
    one_at_a_time(reference, expected)

    client = Client(plan)
    sim = windowed(lambda: simulation(seed, engine), client, size, cuts, restarts)

    assert client.seen == expected.seen
    assert client.applied == expected.applied
    assert client.refused == expected.refused
    assert sim.results() == reference.results()
    assert sim.state() == replace(reference.state(), window=size)


def test_a_window_steps_no_further_than_asked_and_an_ack_inside_it_voids_the_rest() -> None:
    sim = simulation(7, EngineSettings())
    steps = sim.open_window(10)
    assert [s.tick.sequence_id for s in steps] == list(range(1, 11))
    assert sim.next_sequence_id == 1
    assert sim.acknowledged == 0
    assert sim.in_window
    order = OrderRequest("b1", "AAA", OrderSide.BUY, OrderType.MARKET, quantity=D(5))
    sim.acknowledge(4, [order])
    assert sim.sequence == 4
    assert not sim.in_window
    fill = sim.open_window(3)[0]
    assert fill.tick.sequence_id == 5
    assert [r.order_id for r in fill.reports] == ["b1"]  # live from the bar after the ack
