"""An ack inside a window whose later bars worked nothing (no order was open on them) takes
those bars back instead of going back to the window's savepoint and stepping again: the
simulation ends exactly where stepping one bar at a time leaves it (cursors, the bars
present, the equity curve, also points valued while the window was in flight, the ticks
with a position, the report marks), and goes on the same to the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from application.simulation import Simulation, Step
from application.simulation.window import Savepoint
from domain.bars import BarSeries
from domain.orders import OrderRequest
from tests.unit.test_simulation import BUY, RICH, RICH_B, limit, market, simulation


def stepped_to(
    data: Mapping[str, BarSeries], orders: Mapping[int, Sequence[OrderRequest]], to: int
) -> Simulation:
    """One bar at a time up to bar `to` (acknowledged), `orders[n]` sent with bar n's ack."""
    sim = simulation(data)
    for sequence in range(1, to + 1):
        sim.advance()
        sim.acknowledge(sequence, list(orders.get(sequence, ())))
    return sim


def rest(sim: Simulation) -> list[Step]:
    steps = []
    while not sim.done_stepping:
        step = sim.advance()
        steps.append(step)
        sim.acknowledge(step.tick.sequence_id)
    return steps


def no_stepping_again(sim: Simulation) -> None:
    def refuse(point: Savepoint) -> None:
        pytest.fail("went back to the savepoint: the bars after the ack were not taken back")

    sim._rewind = refuse  # type: ignore[method-assign]


@pytest.mark.parametrize("value_mid_window", [False, True])
def test_two_symbols_with_a_position_held(value_mid_window: bool) -> None:
    data = {"AAA": RICH, "BBB": RICH_B}  # BBB misses bars: cursors move apart
    orders = {1: [market("b1", "AAA", BUY, "3")]}
    reference = stepped_to(data, orders, 4)

    sim = stepped_to(data, orders, 1)  # the order fills on bar 2, the first of the window
    steps = sim.open_window(7)
    assert [s.tick.sequence_id for s in steps] == [2, 3, 4, 5, 6, 7, 8]
    assert steps[0].reports  # (bar 2 worked the broker; 3-8 did not)
    if value_mid_window:
        sim.state()  # a checkpoint mid-window values the curve's pending points
    original = sim._rewind
    no_stepping_again(sim)
    sim.acknowledge(4)
    sim._rewind = original  # type: ignore[method-assign]

    assert sim.state() == reference.state()
    assert sim.present == reference.present
    assert dict(sim.cursors) == dict(reference.cursors)
    assert rest(sim) == rest(reference)
    assert sim.results() == reference.results()


def test_one_symbol_without_a_position_and_a_decision() -> None:
    data = {"AAA": RICH}
    buy = {3: [market("b1", "AAA", BUY, "2")]}
    reference = stepped_to(data, buy, 3)
    sim = simulation(data)
    sim.open_window(8)
    no_stepping_again(sim)
    sim.acknowledge(3, buy[3])  # a decision on bar 3: bars 4-8 are void
    assert sim.state() == reference.state()
    assert rest(sim) == rest(reference)
    assert sim.results() == reference.results()


def test_bars_that_worked_an_open_order_are_stepped_again_from_the_savepoint() -> None:
    data = {"AAA": RICH}
    resting = {1: [limit("l1", "AAA", BUY, "1", "50")]}  # open on every bar, never filled
    reference = stepped_to(data, resting, 3)
    sim = stepped_to(data, resting, 1)
    sim.open_window(6)  # bars 2-7 all work the broker
    rewound: list[object] = []
    original = sim._rewind

    def spy(point: Savepoint) -> None:
        rewound.append(point)
        original(point)

    sim._rewind = spy  # type: ignore[method-assign]
    sim.acknowledge(3)
    assert len(rewound) == 1
    assert sim.state() == reference.state()
    assert rest(sim) == rest(reference)
