"""Windows over a real socket (PROTOCOL §7.14): `window` on start_simulation, tick_ack and
resume_session; the `ticks` message with each bar's reports and account; an ack inside a
window voids the rest; the frame size bounds a window; refusals; resume mid-window sends
the same window again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory
from tests.integration.test_ws_simulation import (
    JANUARY_TICKS,
    SHORT,
    SHORT_TICKS,
    connect,
    far_limit,
    kinds,
    market,
    new_session,
    refusal,
)
from tests.integration.wsclient import Message, WsClient, recv_frame, sim_request

STEP_END = {"tick", "ticks", "simulation_complete"}


async def call(ws: WsClient, message_type: str, data: dict[str, Any]) -> list[Message]:
    last = {"batch_ack"} if message_type == "order_batch" else STEP_END
    return await sim_request(ws, message_type, data, last)


async def ack(ws: WsClient, sid: str, sequence_id: int, **extra: Any) -> list[Message]:
    return await call(ws, "tick_ack", {"session_id": sid, "sequence_id": sequence_id, **extra})


def window_of(messages: list[Message]) -> list[dict[str, Any]]:
    assert messages[-1]["type"] == "ticks", kinds(messages)
    bars: list[dict[str, Any]] = messages[-1]["data"]["ticks"]
    return bars


def ids(bars: list[dict[str, Any]]) -> list[int]:
    return [b["sequence_id"] for b in bars]


@pytest.fixture
async def pro(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    client = await connect(shared_server)
    yield client
    await client.close()


async def test_a_window_carries_k_bars_and_an_ack_inside_it_voids_the_rest(
    pro: WsClient,
) -> None:
    assert pro.ready["data"]["max_window"] == 4096
    sid = await new_session(pro)
    started = await call(pro, "start_simulation", {"session_id": sid, "window": 5})
    assert kinds(started) == ["simulation_started", "ticks"]
    first = window_of(started)
    assert ids(first) == [1, 2, 3, 4, 5]
    assert all(b["executions"] == [] and b["account"] is None for b in first)
    assert set(first[0]) == {
        "sequence_id",
        "sim_time",
        "bars",
        "equity",
        "cash",
        "is_last",
        "executions",
        "account",
    }

    # A decision on bar 2: bars 3-5 are void; the order fills on bar 3, in the new window.
    step = await ack(pro, sid, 2, orders=[market("b1", quantity=4)])
    assert kinds(step) == ["batch_ack", "ticks"]
    assert step[0]["data"]["accepted"] == ["b1"]
    second = window_of(step)
    assert ids(second) == [3, 4, 5, 6, 7]
    fill = second[0]["executions"]
    assert [(r["order_id"], r["status"], r["sequence_id"]) for r in fill] == [("b1", "filled", 3)]
    # on_fill: the account after the bar that filled, and only there.
    assert second[0]["account"]["sequence_id"] == 3
    assert second[0]["account"]["positions"][0]["quantity"] == "4"
    assert [b["account"] for b in second[1:]] == [None] * 4
    # The bars that came again are the same bars (3-5 were in the first window too).
    assert [b["bars"] for b in second[:3]] == [b["bars"] for b in first[2:]]

    # A window acknowledged whole by its last bar; a new size on the ack.
    step = await ack(pro, sid, 7, window=3)
    assert ids(window_of(step)) == [8, 9, 10]
    step = await ack(pro, sid, 10, window=100)
    rest = window_of(step)
    assert ids(rest) == list(range(11, JANUARY_TICKS + 1))
    assert rest[-1]["is_last"] is True
    done = await ack(pro, sid, JANUARY_TICKS)
    assert kinds(done) == ["simulation_complete"]


async def test_window_one_is_the_per_bar_flow(pro: WsClient) -> None:
    sid = await new_session(pro)
    started = await call(pro, "start_simulation", {"session_id": sid, "window": 1})
    assert kinds(started) == ["simulation_started", "tick"]
    step = await ack(pro, sid, 1, window=4)
    assert ids(window_of(step)) == [2, 3, 4, 5]
    step = await ack(pro, sid, 3, window=1)  # back to one at a time, from inside a window
    assert kinds(step) == ["tick"]
    assert step[-1]["data"]["sequence_id"] == 4


async def test_window_refusals(pro: WsClient) -> None:
    sid = await new_session(pro)
    for wrong in (0, 4097, -1):
        details = refusal(
            await call(pro, "start_simulation", {"session_id": sid, "window": wrong}),
            "VALIDATION_FAILED",
        )
        assert details["field"] == "window"
        assert details["max"] == 4096
    await call(pro, "start_simulation", {"session_id": sid, "window": 4})
    # Outside the window in flight: nothing moves.
    details = refusal(await ack(pro, sid, 5), "INVALID_SEQUENCE")
    assert details["expected"] == 4
    refusal(await ack(pro, sid, 2, window=5000), "VALIDATION_FAILED")
    # Orders outside a tick_ack while a window is in flight: which bar they follow is unsaid.
    batch = {"session_id": sid, "batch_id": "x", "orders": [market("z")]}
    refusal(await call(pro, "order_batch", batch), "INVALID_STATE")
    step = await ack(pro, sid, 2, orders=[far_limit("l1")])
    assert ids(window_of(step)) == [3, 4, 5, 6]
    cancel = await sim_request(
        pro, "cancel_order", {"session_id": sid, "order_id": "l1"}, {"execution_report"}
    )
    refusal(cancel, "INVALID_STATE")
    step = await ack(pro, sid, 4, cancels=["l1"])  # the cancel goes with the ack
    assert kinds(step)[:2] == ["batch_ack", "execution_report"]
    assert step[1]["data"]["reason"] == "CANCELLED"
    assert step[1]["data"]["sequence_id"] == 4


async def test_fills_expiries_of_resting_orders_come_inside_the_window(pro: WsClient) -> None:
    sid = await new_session(pro, dates=SHORT)
    await call(
        pro, "start_simulation", {"session_id": sid, "window": 50, "account_updates": "every_tick"}
    )
    # A day order that cannot fill expires on its bar; a gtc market fills on the next one.
    step = await ack(
        pro,
        sid,
        1,
        orders=[
            market("d1", type="limit", limit_price="1.00", quantity=1, time_in_force="day"),
            market("m1", quantity=2),
        ],
    )
    bars = window_of(step)
    assert ids(bars) == list(range(2, SHORT_TICKS + 1))
    reports = [(r["order_id"], r["status"]) for r in bars[0]["executions"]]
    assert sorted(reports) == [("d1", "expired"), ("m1", "filled")]
    assert [b["account"]["sequence_id"] for b in bars] == ids(bars)  # every_tick
    assert bars[-1]["account"]["positions"][0]["quantity"] == "2"


async def test_the_frame_size_bounds_a_window(server_factory: ServerFactory) -> None:
    server = server_factory(max_message_bytes=4096)
    ws = await connect(server)
    try:
        sid = await new_session(ws)
        await ws.send(
            {
                "type": "start_simulation",
                "request_id": "s",
                "data": {"session_id": sid, "window": 4096},
            }
        )
        raw, message = await recv_frame(ws)
        assert message["type"] == "simulation_started"
        raw, message = await recv_frame(ws)
        assert message["type"] == "ticks"
        sent = ids(message["data"]["ticks"])
        assert len(raw.encode()) <= 4096
        assert 1 < len(sent) < JANUARY_TICKS  # fewer bars, not a larger frame
        step = await ack(ws, sid, sent[-1])
        assert ids(window_of(step))[0] == sent[-1] + 1
    finally:
        await ws.close()


async def test_resume_session_mid_window_sends_the_same_window_again(
    server: EmbeddedServer,
) -> None:
    user = "window-resumer"
    first = await connect(server, user=user)
    sid = await new_session(first)
    await call(first, "start_simulation", {"session_id": sid, "window": 6})
    step = await ack(first, sid, 2, orders=[market("b1", quantity=3)])
    sent = window_of(step)
    assert ids(sent) == [3, 4, 5, 6, 7, 8]
    await first.close()  # mid-window: the client ran bars 3-4 and decided nothing yet

    async with await connect(server, user=user) as second:
        for _ in range(50):  # until the server has seen the first socket close
            replies = await call(
                second,
                "resume_session",
                {"session_id": sid, "last_sequence_id": 4, "window": 6},
            )
            if kinds(replies) != ["session_error"]:
                break
        assert kinds(replies) == ["state_sync", "ticks"]
        sync = replies[0]["data"]
        assert sync["next_sequence_id"] == 3  # the last bar acknowledged is 2
        assert sync["account"]["sequence_id"] == 2
        again = window_of(replies)
        assert again == sent  # the same bars, fills, ids and accounts
        step = await ack(second, sid, 5, orders=[market("s1", side="sell", quantity=3)])
        assert ids(window_of(step))[0] == 6
        assert window_of(step)[0]["executions"][0]["order_id"] == "s1"


async def test_an_ack_timeout_mid_window_pauses_at_the_last_bar_acknowledged(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(tick_timeout_seconds=0.5)
    ws = await connect(server)
    try:
        sid = await new_session(ws)
        await call(ws, "start_simulation", {"session_id": sid, "window": 4})
        step = await ack(ws, sid, 3)  # bar 4 is void; the window 4-7 goes out
        sent = window_of(step)
        assert ids(sent) == [4, 5, 6, 7]
        _, paused = await recv_frame(ws)  # nothing was asked
        assert paused["type"] == "simulation_paused"
        assert paused["data"]["reason"] == "ack_timeout"
        assert paused["data"]["sequence_id"] == 3  # the window was void, not delivered
        refusal(await ack(ws, sid, 5), "INVALID_STATE")
        resumed = await call(ws, "resume_simulation", {"session_id": sid})
        assert kinds(resumed) == ["simulation_resumed", "ticks"]
        assert resumed[0]["data"]["next_sequence_id"] == 4
        assert window_of(resumed) == sent  # the same window, from the bar after the ack
    finally:
        await ws.close()
