"""A window's bars (PROTOCOL §7.14) encoded from a head made once per bar
(`window_tick_head` + `window_tick_json`) come out byte for byte as the `WindowTickOut`
struct encodes them: over real steps of a simulation with two symbols, missing bars, a
fill, the account, and the last bar; and a head kept from a void window makes the bar
stepped again after the ack exactly as a fresh encoding does."""

from __future__ import annotations

from application.simulation import Simulation, Step
from domain.broker import AccountView
from entrypoints.protocol import messages as m
from entrypoints.protocol.engine import (
    account_data,
    bars_json,
    report_data,
    tick_bars_json,
    window_tick_head,
    window_tick_json,
    window_tick_plain,
)
from tests.unit.test_simulation import BUY, RICH, RICH_B, limit, market, simulation

SID = "sess_test"


def reference(step: Step, account: AccountView | None) -> bytes:
    tick = step.tick
    return m.encoder.encode(
        m.WindowTickOut(
            sequence_id=tick.sequence_id,
            sim_time=tick.sim_time,
            bars=bars_json(tick.bars),
            equity=tick.equity,
            cash=tick.cash,
            is_last=tick.is_last,
            executions=[report_data(SID, r) for r in step.reports],
            account=None
            if account is None
            else account_data(SID, tick.sequence_id, tick.sim_time, account),
        )
    )


def fast(step: Step, account: AccountView | None, head: bytes | None = None) -> bytes:
    tick = step.tick
    return window_tick_json(
        head if head is not None else window_tick_head(tick),
        tick,
        [report_data(SID, r) for r in step.reports],
        None if account is None else account_data(SID, tick.sequence_id, tick.sim_time, account),
    )


def window(sim: Simulation, size: int) -> list[tuple[Step, AccountView]]:
    """Open a window of `size` bars, keeping each bar with the account right after it."""
    made: list[tuple[Step, AccountView]] = []

    def admit(step: Step) -> bool:
        made.append((step, sim.broker.account()))
        return True

    sim.open_window(size, admit)
    return made


def test_the_head_and_the_rest_encode_as_the_struct_does() -> None:
    sim = simulation({"AAA": RICH, "BBB": RICH_B})
    first = window(sim, 2)
    sim.acknowledge(first[-1][0].tick.sequence_id, [market("b1", "AAA", BUY, "3")])
    rest = window(sim, 100)  # to the end of data
    steps = first + rest
    assert any(step.reports for step, _ in steps)  # a fill inside the window
    assert steps[-1][0].tick.is_last
    assert not steps[-1][0].reports  # (the last bar goes the plain way)
    assert any(len(step.tick.bars) == 1 for step, _ in steps)  # a symbol without a bar
    for step, account in steps:
        assert fast(step, account) == reference(step, account)
        assert fast(step, None) == reference(step, None)
        if not step.reports:
            head = window_tick_head(step.tick)
            assert window_tick_head(step.tick, sim.series) == head  # (from the columns)
            from_columns = tick_bars_json(step.tick, sim.series)  # (a lone tick's bars)
            assert bytes(from_columns) == bytes(bars_json(step.tick.bars))
            assert window_tick_plain(head, step.tick) == reference(step, None)
            cash = m.encoder.encode(step.tick.cash)  # (given: made for an earlier bar)
            assert window_tick_plain(head, step.tick, cash) == reference(step, None)
    decoded = m.window_tick_decoder.decode(fast(*steps[2]))
    assert decoded.executions[0].execution_id == steps[2][0].reports[0].execution_id


def test_a_head_kept_from_a_void_bar_makes_the_bar_stepped_again() -> None:
    sim = simulation({"AAA": RICH, "BBB": RICH_B})
    sim.submit([limit("l1", "AAA", BUY, "2", "99.5")])  # fills inside the window
    void = window(sim, 6)
    heads = {step.tick.sequence_id: window_tick_head(step.tick) for step, _ in void}
    # A decision on bar 2: bars 3-6 are void and are stepped again with a new order live.
    sim.acknowledge(2, [market("b1", "BBB", BUY, "5")])
    again = window(sim, 4)
    assert [s.tick.sequence_id for s, _ in again] == [3, 4, 5, 6]
    assert [s.tick.equity for s, _ in again] != [s.tick.equity for s, _ in void[2:]]
    for step, account in again:
        head = heads[step.tick.sequence_id]
        assert fast(step, account, head) == reference(step, account)
