"""The simulation messages of PROTOCOL.md §4.3 over a real WebSocket on loopback: every
request's success and each refusal it can meet, seen as raw JSON frames.

Servers hold the synthetic daily sample (AAPL, MSFT, … from 2000 to the end of last year);
US stocks close at 16:00 New York time, 21:00Z in winter. An engine failure (INTERNAL_ERROR,
session → `error`) cannot be provoked from outside and is not covered here."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from application.simulation import PauseReason
from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.fakes import METRIC_NAMES
from tests.integration.conftest import ServerFactory, issue_token
from tests.integration.wsclient import (
    SIM_STEP_END,
    Message,
    WsClient,
    error_code,
    recv_frame,
    recv_until,
    sim_request,
    wait_for,
)

D = Decimal
CAPITAL = D("100000.00")
ACCOUNT_FIELDS = {
    "session_id",
    "sim_time",
    "sequence_id",
    "cash",
    "equity",
    "buying_power",
    "realized_pnl",
    "unrealized_pnl",
    "total_commission",
    "positions",
    "open_orders",
}
POSITION_FIELDS = {
    "symbol",
    "quantity",
    "avg_price",
    "market_price",
    "market_value",
    "unrealized_pnl",
}
REPORT_FIELDS = {
    "session_id",
    "execution_id",
    "order_id",
    "symbol",
    "side",
    "status",
    "quantity",
    "fill_quantity",
    "filled_quantity",
    "remaining_quantity",
    "price",
    "commission",
    "slippage",
    "sim_time",
    "sequence_id",
    "fill_reason",
    "reason",
}
TRADE_FIELDS = {
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "return_pct",
    "commission",
}
# January 2023 has 20 NYSE trading days (the 2nd and the 16th are holidays).
JANUARY = {"start_date": "2023-01-03", "end_date": "2023-01-31"}
JANUARY_TICKS = 20
SHORT = {"start_date": "2023-01-03", "end_date": "2023-01-13"}
SHORT_TICKS = 9

_users = itertools.count(1)


# ---------------------------------------------------------------- helpers


async def connect(
    server: EmbeddedServer, plan: Plan = Plan.PROFESSIONAL, user: str | None = None
) -> WsClient:
    """A connection of `user` (a fresh one by default, so tests never share limits)."""
    name = user if user is not None else f"sim-user{next(_users)}"
    token = await asyncio.to_thread(issue_token, server, name, plan)
    return await WsClient.connect(server, token)


async def new_session(
    ws: WsClient, symbols: tuple[str, ...] = ("AAPL",), dates: dict[str, str] = JANUARY
) -> str:
    reply = await ws.create_session(symbols=list(symbols), **dates)
    assert reply["type"] == "session_created", reply
    session_id: str = reply["data"]["session_id"]
    return session_id


LAST = {
    "order_batch": {"batch_ack"},
    "cancel_order": {"execution_report"},
    "pause_simulation": {"simulation_paused"},
    "query_positions": {"current_positions"},
    "get_results": {"simulation_results"},
}
"""The message that ends each request's answer, where it is not the next tick."""


async def call(ws: WsClient, message_type: str, data: dict[str, Any]) -> list[Message]:
    """Every message one simulation request causes (or its refusal), in order."""
    return await sim_request(ws, message_type, data, LAST.get(message_type, SIM_STEP_END))


async def start(ws: WsClient, session_id: str, **data: Any) -> list[Message]:
    return await call(ws, "start_simulation", {"session_id": session_id, **data})


async def ack(ws: WsClient, session_id: str, sequence_id: int, **extra: Any) -> list[Message]:
    data = {"session_id": session_id, "sequence_id": sequence_id, **extra}
    return await call(ws, "tick_ack", data)


def kinds(messages: list[Message]) -> list[str]:
    return [message["type"] for message in messages]


def refusal(messages: list[Message], code: str) -> dict[str, Any]:
    """The single `session_error` with `code` that answered a request; its details."""
    assert kinds(messages) == ["session_error"], messages
    assert error_code(messages[0]) == code, messages[0]
    assert messages[0]["data"]["message"], messages[0]
    details: dict[str, Any] = messages[0]["data"]["details"]
    return details


def market(order_id: str, side: str = "buy", quantity: int = 10, **extra: Any) -> Message:
    return {"order_id": order_id, "symbol": "AAPL", "side": side, "quantity": quantity, **extra}


def far_limit(order_id: str) -> Message:
    """A buy limit far below any price of the sample: it rests and never fills."""
    return market(order_id, type="limit", limit_price="1.00", quantity=1)


async def session_info(ws: WsClient, session_id: str) -> dict[str, Any]:
    reply = await ws.request("get_session", {"session_id": session_id})
    assert reply["type"] == "session_info", reply
    data: dict[str, Any] = reply["data"]
    return data


async def on_server(server: EmbeddedServer, function: Any) -> Any:
    """`function()` evaluated on the server's own loop (its services are not thread-safe)."""

    async def call() -> Any:
        return function()

    return await asyncio.to_thread(server.call, call())


def is_number(value: object) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


async def run_to_end(ws: WsClient, session_id: str, tick: Message) -> list[Message]:
    """Ack every tick from `tick` on without orders; every message after the first tick."""
    received: list[Message] = []
    while tick["type"] == "tick":
        step = await ack(ws, session_id, tick["data"]["sequence_id"])
        received += step
        tick = step[-1]
    assert tick["type"] == "simulation_complete", tick
    return received


@pytest.fixture
async def pro(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    client = await connect(shared_server)
    yield client
    await client.close()


# ---------------------------------------------------------------- start_simulation


async def test_start_sends_started_history_then_tick_one(
    shared_server: EmbeddedServer, pro: WsClient
) -> None:
    sid = await new_session(pro, ("AAPL", "MSFT"))
    rid = "start-1"
    await pro.send({"type": "start_simulation", "data": {"session_id": sid, "warmup_bars": 5}})
    await pro.send(
        {
            "type": "get_session",
            "data": {"session_id": sid},
            "request_id": rid,
        }
    )
    frames = await recv_until(pro, {"tick"})
    (_, started), (history_raw, history), (tick_raw, tick) = frames
    assert kinds([started, history, tick]) == ["simulation_started", "history", "tick"]

    assert started["data"] == {
        "session_id": sid,
        "total_ticks": JANUARY_TICKS,
        "first_sim_time": "2023-01-03T21:00:00Z",
        "last_sim_time": "2023-01-31T21:00:00Z",
        "warmup_bars": 5,
    }

    bars = history["data"]["bars"]
    assert history["data"]["session_id"] == sid
    assert set(bars) == {"AAPL", "MSFT"}
    for rows in bars.values():
        assert len(rows) == 5
        times = [row[0] for row in rows]
        assert times == sorted(times)
        # The last warm-up bar is the last trading day of 2022, before start_date.
        assert times[-1] == "2022-12-30T21:00:00Z"
        for row in rows:
            assert len(row) == 6
            assert isinstance(row[0], str)
            _, o, h, lo, c, v = row
            assert all(is_number(x) for x in (o, h, lo, c, v)), row
            assert h >= max(o, c)
            assert lo <= min(o, c)
            assert v >= 0
    # On the wire: [time, number, …], never a quoted price.
    assert re.search(r'\["[^"]+",\d', history_raw)
    assert not re.search(r'\["[^"]+","', history_raw)

    data = tick["data"]
    assert data["session_id"] == sid
    assert data["sequence_id"] == 1
    assert data["sim_time"] == "2023-01-03T21:00:00Z"
    assert data["is_last"] is False
    assert data["equity"] == data["cash"] == "100000.00"
    assert set(data["bars"]) == {"AAPL", "MSFT"}
    for bar in data["bars"].values():
        assert set(bar) == {"open", "high", "low", "close", "volume"}
        assert all(is_number(x) for x in bar.values()), bar
    assert re.search(r'"open":\d', tick_raw)
    assert re.search(r'"close":\d', tick_raw)
    assert '"open":"' not in tick_raw
    assert '"close":"' not in tick_raw
    # Replies of one connection come in request order: the session is running, at tick 1.
    (_, info) = await recv_frame(pro)
    assert info["type"] == "session_info"
    assert info["request_id"] == rid
    assert info["data"]["state"] == "running"
    assert info["data"]["progress"] == {
        "sequence_id": 1,
        "total_ticks": JANUARY_TICKS,
        "sim_time": "2023-01-03T21:00:00Z",
    }


async def test_start_without_warmup_sends_no_history(pro: WsClient) -> None:
    sid = await new_session(pro)
    messages = await start(pro, sid, warmup_bars=0)
    assert kinds(messages) == ["simulation_started", "tick"]
    assert messages[0]["data"]["warmup_bars"] == 0


async def test_start_refusals(shared_server: EmbeddedServer, pro: WsClient) -> None:
    sid = await new_session(pro)
    details = refusal(await start(pro, sid, account_updates="sometimes"), "VALIDATION_FAILED")
    assert details["field"] == "account_updates"
    details = refusal(await start(pro, sid, warmup_bars=-1), "VALIDATION_FAILED")
    assert details["field"] == "warmup_bars"
    refusal(await start(pro, "sess_doesnotexist"), "SESSION_NOT_FOUND")
    assert (await session_info(pro, sid))["state"] == "ready"  # none of these started it

    assert kinds(await start(pro, sid))[-1] == "tick"
    details = refusal(await start(pro, sid), "INVALID_STATE")
    assert details["state"] == "running"
    assert details["allowed_from"] == ["ready"]  # docs/protocol.md: "allowed_from"


async def test_another_users_simulation_is_access_denied(
    shared_server: EmbeddedServer, pro: WsClient
) -> None:
    sid = await new_session(pro)
    other_ready = await new_session(pro)
    await start(pro, sid)
    async with await connect(shared_server) as mallory:
        refusal(await start(mallory, other_ready), "ACCESS_DENIED")
        refusal(await ack(mallory, sid, 1), "ACCESS_DENIED")
        for message_type in ("pause_simulation", "query_positions", "get_results"):
            refusal(await call(mallory, message_type, {"session_id": sid}), "ACCESS_DENIED")
        batch = {"session_id": sid, "batch_id": "b", "orders": [market("x")]}
        refusal(await call(mallory, "order_batch", batch), "ACCESS_DENIED")
        cancel = {"session_id": sid, "order_id": "x"}
        refusal(await call(mallory, "cancel_order", cancel), "ACCESS_DENIED")
        resume = {"session_id": sid, "last_sequence_id": 0}
        refusal(await call(mallory, "resume_session", resume), "ACCESS_DENIED")
    # The owner's simulation went on untouched.
    assert kinds(await ack(pro, sid, 1))[-1] == "tick"


async def test_running_simulations_are_limited_per_plan(server_factory: ServerFactory) -> None:
    """Free: one running simulation (the active-session limit is raised so a second session
    can exist at all)."""
    free = dataclasses.replace(PLAN_DEFAULTS[Plan.FREE], max_active_sessions=3)
    server = server_factory(plan_limits={**PLAN_DEFAULTS, Plan.FREE: free})
    async with await connect(server, Plan.FREE) as ws:
        assert ws.ready["data"]["limits"]["max_running_simulations"] == 1
        first, second = await new_session(ws), await new_session(ws)
        await start(ws, first)
        details = refusal(await start(ws, second), "SESSION_LIMIT_EXCEEDED")
        assert details["limit"] == "running_simulations"
        assert details["max"] == 1
        assert (await session_info(ws, second))["state"] == "ready"
        # A paused simulation still runs (it keeps its state): the limit holds.
        paused = await call(ws, "pause_simulation", {"session_id": first})
        assert kinds(paused) == ["simulation_paused"]
        refusal(await start(ws, second), "SESSION_LIMIT_EXCEEDED")
        # Finishing the first one frees the slot.
        await call(ws, "resume_simulation", {"session_id": first})
        deleted = await ws.request("delete_session", {"session_id": first})
        assert deleted["type"] == "session_deleted"
        assert kinds(await start(ws, second))[-1] == "tick"


# ---------------------------------------------------------------- tick / tick_ack


async def test_ticks_run_one_to_n_then_complete(shared_server: EmbeddedServer) -> None:
    async with await connect(shared_server) as ws:
        sid = await new_session(ws, dates=SHORT)
        started = await start(ws, sid)
        ticks = [started[-1]]
        received = await run_to_end(ws, sid, ticks[0])
        ticks += [m for m in received if m["type"] == "tick"]
        assert kinds(received) == ["tick"] * (SHORT_TICKS - 1) + ["simulation_complete"]
        assert [t["data"]["sequence_id"] for t in ticks] == list(range(1, SHORT_TICKS + 1))
        assert [t["data"]["is_last"] for t in ticks] == [False] * (SHORT_TICKS - 1) + [True]
        times = [datetime.fromisoformat(t["data"]["sim_time"]) for t in ticks]
        assert times == sorted(set(times))
        for t in ticks:
            assert t["data"]["equity"] == "100000.00"
            assert t["data"]["cash"] == "100000.00"

        complete = received[-1]["data"]
        assert complete["session_id"] == sid
        assert complete["total_ticks"] == SHORT_TICKS
        assert isinstance(complete["wall_time_ms"], int)
        assert complete["wall_time_ms"] >= 0
        assert set(complete["metrics"]) == set(METRIC_NAMES)
        assert complete["metrics"]["total_trades"] == 0
        assert D(complete["metrics"]["final_equity"]) == CAPITAL
        assert complete["metrics"]["total_return_pct"] == 0

        info = await session_info(ws, sid)
        assert info["state"] == "completed"
        assert info["progress"] == {
            "sequence_id": SHORT_TICKS,
            "total_ticks": SHORT_TICKS,
            "sim_time": "2023-01-13T21:00:00Z",
        }
        # Nothing is left to acknowledge.
        details = refusal(await ack(ws, sid, SHORT_TICKS), "INVALID_STATE")
        assert details["state"] == "completed"


async def test_an_ack_for_another_tick_is_invalid_sequence(pro: WsClient) -> None:
    sid = await new_session(pro)
    await start(pro, sid)
    for wrong in (2, 0, -1, 1000):
        details = refusal(await ack(pro, sid, wrong), "INVALID_SEQUENCE")
        assert details["expected"] == 1
    # The simulation did not move.
    assert (await session_info(pro, sid))["progress"]["sequence_id"] == 1
    step = await ack(pro, sid, 1)
    assert kinds(step) == ["tick"]
    assert step[0]["data"]["sequence_id"] == 2
    details = refusal(await ack(pro, sid, 1), "INVALID_SEQUENCE")  # acked already
    assert details["expected"] == 2
    assert (await session_info(pro, sid))["progress"]["sequence_id"] == 2


async def test_inline_orders_are_acked_then_fill_on_the_next_bar(pro: WsClient) -> None:
    sid = await new_session(pro)
    tick1 = (await start(pro, sid))[-1]["data"]
    orders = [
        market("buy-1", quantity=10),
        far_limit("resting"),
        market("bad-symbol", symbol="XXXX"),
        market("bad-side", side="hold"),
        market("bad-quantity", quantity=0),
        market("bad-limit", type="limit"),  # a limit without its price
        market("bad-type", type="teleport"),
    ]
    step = await ack(pro, sid, 1, orders=orders)
    assert kinds(step) == ["batch_ack", "execution_report", "account_snapshot", "tick"]
    batch, report, account, tick2 = (m["data"] for m in step)

    assert batch["session_id"] == sid
    assert batch["batch_id"] == "tick-1"
    assert batch["accepted"] == ["buy-1", "resting"]
    fields = {oid: r["details"].get("field") for oid, r in batch["rejected"].items()}
    assert fields == {
        "bad-symbol": "symbol",
        "bad-side": "side",
        "bad-quantity": "quantity",
        "bad-limit": "limit_price",
        "bad-type": "type",
    }
    for rejection in batch["rejected"].values():
        assert rejection["error_code"] == "INVALID_ORDER"
        assert rejection["message"]

    # The market order fills at the open of bar 2 (the first bar after the ack).
    assert tick2["sequence_id"] == 2
    open2 = tick2["bars"]["AAPL"]["open"]
    assert set(report) == REPORT_FIELDS
    assert report["session_id"] == sid
    assert report["order_id"] == "buy-1"
    assert report["symbol"] == "AAPL"
    assert report["side"] == "buy"
    assert report["status"] == "filled"
    assert (report["quantity"], report["fill_quantity"]) == ("10", "10")
    assert (report["filled_quantity"], report["remaining_quantity"]) == ("10", "0")
    assert D(report["price"]) == open2
    assert D(report["commission"]) == 0
    assert D(report["slippage"]) == 0
    assert report["sequence_id"] == 2
    assert report["sim_time"] == tick2["sim_time"]
    assert report["fill_reason"] == "market_open"
    assert report["reason"] is None
    assert report["execution_id"]
    assert tick1["sequence_id"] == 1

    assert set(account) == ACCOUNT_FIELDS
    assert account["sequence_id"] == 2
    cash = CAPITAL - 10 * open2
    assert D(account["cash"]) == cash
    close2 = tick2["bars"]["AAPL"]["close"]
    assert D(account["equity"]) == cash + 10 * close2
    (position,) = account["positions"]
    assert set(position) == POSITION_FIELDS
    assert position["symbol"] == "AAPL"
    assert D(position["quantity"]) == 10
    assert D(position["avg_price"]) == open2
    assert D(position["market_price"]) == close2
    (resting,) = account["open_orders"]
    assert resting["order_id"] == "resting"
    assert resting["status"] == "accepted"
    assert D(resting["filled_quantity"]) == 0
    assert D(resting["limit_price"]) == 1

    # The tick carries the same money, as strings.
    assert isinstance(tick2["cash"], str)
    assert D(tick2["cash"]) == cash
    assert D(tick2["equity"]) == cash + 10 * close2

    # An id used before is refused, however it ended.
    step = await ack(pro, sid, 2, orders=[market("buy-1"), market("resting")])
    assert kinds(step) == ["batch_ack", "tick"]
    batch = step[0]["data"]
    assert batch["batch_id"] == "tick-2"
    assert batch["accepted"] == []
    assert {oid: r["error_code"] for oid, r in batch["rejected"].items()} == {
        "buy-1": "DUPLICATE_ORDER_ID",
        "resting": "DUPLICATE_ORDER_ID",
    }


async def test_account_updates_every_tick(pro: WsClient) -> None:
    sid = await new_session(pro)
    started = await start(pro, sid, account_updates="every_tick")
    assert kinds(started)[0] == "simulation_started"
    assert kinds(started)[-1] == "tick"
    for sequence in range(1, 4):
        step = await ack(pro, sid, sequence)
        assert kinds(step) == ["account_snapshot", "tick"]
        snapshot, tick = step[0]["data"], step[1]["data"]
        assert snapshot["sequence_id"] == tick["sequence_id"] == sequence + 1
        assert snapshot["sim_time"] == tick["sim_time"]
        assert snapshot["equity"] == tick["equity"]
        assert snapshot["cash"] == tick["cash"]


async def test_account_updates_on_demand(pro: WsClient) -> None:
    sid = await new_session(pro)
    await start(pro, sid, account_updates="on_demand")
    step = await ack(pro, sid, 1, orders=[market("b", quantity=3)])
    assert kinds(step) == ["batch_ack", "execution_report", "tick"]  # a fill, no snapshot
    positions = await call(pro, "query_positions", {"session_id": sid})
    assert kinds(positions) == ["current_positions"]
    data = positions[0]["data"]
    assert set(data) == ACCOUNT_FIELDS
    assert data["session_id"] == sid
    assert data["sequence_id"] == 2
    assert data["sim_time"] == step[-1]["data"]["sim_time"]
    assert [(p["symbol"], D(p["quantity"])) for p in data["positions"]] == [("AAPL", D(3))]
    assert data["cash"] == step[-1]["data"]["cash"]


async def test_query_positions_of_a_fresh_simulation(pro: WsClient) -> None:
    sid = await new_session(pro)
    refusal(await call(pro, "query_positions", {"session_id": sid}), "INVALID_STATE")
    await start(pro, sid)
    await call(
        pro,
        "order_batch",
        {"session_id": sid, "batch_id": "b", "orders": [far_limit("rest")]},
    )
    (reply,) = await call(pro, "query_positions", {"session_id": sid})
    data = reply["data"]
    assert set(data) == ACCOUNT_FIELDS
    assert data["positions"] == []
    assert D(data["cash"]) == D(data["equity"]) == D(data["buying_power"]) == CAPITAL
    assert D(data["realized_pnl"]) == D(data["unrealized_pnl"]) == 0
    assert D(data["total_commission"]) == 0
    (order,) = data["open_orders"]
    assert {"order_id", "symbol", "side", "type", "status", "filled_quantity"} <= set(order)
    assert (order["order_id"], order["type"], order["side"]) == ("rest", "limit", "buy")


# ---------------------------------------------------------------- order_batch / cancel_order


async def test_order_batch_is_acked_and_live_from_the_next_bar(pro: WsClient) -> None:
    sid = await new_session(pro)
    batch = {"session_id": sid, "batch_id": "b1", "orders": [market("m")]}
    refusal(await call(pro, "order_batch", batch), "INVALID_STATE")  # not started
    await start(pro, sid)
    batch["orders"] = [market("m", quantity=5), far_limit("l"), market("x", symbol="ZZZZ")]
    (reply,) = await call(pro, "order_batch", batch)
    assert reply["type"] == "batch_ack"
    assert reply["data"]["session_id"] == sid
    assert reply["data"]["batch_id"] == "b1"
    assert reply["data"]["accepted"] == ["m", "l"]
    assert reply["data"]["rejected"]["x"]["error_code"] == "INVALID_ORDER"
    assert reply["data"]["rejected"]["x"]["details"]["field"] == "symbol"
    step = await ack(pro, sid, 1)
    assert kinds(step) == ["execution_report", "account_snapshot", "tick"]
    assert step[0]["data"]["order_id"] == "m"
    assert step[0]["data"]["sequence_id"] == 2
    assert D(step[0]["data"]["price"]) == step[-1]["data"]["bars"]["AAPL"]["open"]


async def test_order_batch_over_500_orders_is_refused(pro: WsClient) -> None:
    sid = await new_session(pro)
    await start(pro, sid)
    orders = [market(f"o{i}", quantity=1) for i in range(501)]
    batch = {"session_id": sid, "batch_id": "big", "orders": orders}
    details = refusal(await call(pro, "order_batch", batch), "VALIDATION_FAILED")
    assert details["field"] == "orders"
    # Nothing of it was taken; 500 are fine.
    batch["orders"] = orders[:500]
    (reply,) = await call(pro, "order_batch", batch)
    assert len(reply["data"]["accepted"]) == 500
    assert reply["data"]["rejected"] == {}


async def test_cancel_order(pro: WsClient) -> None:
    sid = await new_session(pro)
    await start(pro, sid)
    batch = {"session_id": sid, "batch_id": "b", "orders": [far_limit("a"), far_limit("b")]}
    await call(pro, "order_batch", batch)

    cancel = {"session_id": sid, "order_id": "a"}
    replies = await call(pro, "cancel_order", cancel)
    assert kinds(replies) == ["order_cancelled", "execution_report"]
    assert replies[0]["data"] == {"session_id": sid, "order_id": "a"}
    report = replies[1]["data"]
    assert report["order_id"] == "a"
    assert report["status"] == "cancelled"
    assert D(report["fill_quantity"]) == 0
    assert D(report["filled_quantity"]) == 0
    assert report["fill_reason"] is None

    details = refusal(await call(pro, "cancel_order", cancel), "ORDER_NOT_FOUND")
    assert details["order_id"] == "a"
    missing = {"session_id": sid, "order_id": "never-sent"}
    refusal(await call(pro, "cancel_order", missing), "ORDER_NOT_FOUND")

    # Cancels inline with an ack: a batch_ack, the report, then the next tick.
    step = await ack(pro, sid, 1, cancels=["b", "a"])
    assert kinds(step) == ["batch_ack", "execution_report", "tick"]
    batch_ack = step[0]["data"]
    assert batch_ack["batch_id"] == "tick-1"
    assert batch_ack["accepted"] == []
    assert batch_ack["rejected"]["a"]["error_code"] == "ORDER_NOT_FOUND"
    assert step[1]["data"]["order_id"] == "b"
    assert step[1]["data"]["status"] == "cancelled"
    positions = await call(pro, "query_positions", {"session_id": sid})
    assert positions[0]["data"]["open_orders"] == []


# ---------------------------------------------------------------- pause / resume


async def test_pause_and_resume(pro: WsClient) -> None:
    sid = await new_session(pro)
    await start(pro, sid)
    tick2 = (await ack(pro, sid, 1))[-1]
    paused = await call(pro, "pause_simulation", {"session_id": sid})
    assert kinds(paused) == ["simulation_paused"]
    assert paused[0]["data"] == {
        "session_id": sid,
        "sequence_id": 2,
        "sim_time": tick2["data"]["sim_time"],
        "reason": "requested",
    }
    info = await session_info(pro, sid)
    assert info["state"] == "paused"
    assert info["progress"]["sequence_id"] == 2

    details = refusal(await ack(pro, sid, 2), "INVALID_STATE")
    assert details["state"] == "paused"
    batch = {"session_id": sid, "batch_id": "b", "orders": [market("m")]}
    refusal(await call(pro, "order_batch", batch), "INVALID_STATE")
    # Reading the account is fine while paused.
    assert kinds(await call(pro, "query_positions", {"session_id": sid})) == ["current_positions"]

    resumed = await call(pro, "resume_simulation", {"session_id": sid})
    assert kinds(resumed) == ["simulation_resumed", "tick"]
    assert resumed[0]["data"] == {"session_id": sid, "next_sequence_id": 2}
    assert resumed[1]["data"] == tick2["data"]  # the pending tick, sent again as it was
    assert (await session_info(pro, sid))["state"] == "running"
    details = refusal(await call(pro, "resume_simulation", {"session_id": sid}), "INVALID_STATE")
    assert details["state"] == "running"
    step = await ack(pro, sid, 2)
    assert kinds(step) == ["tick"]
    assert step[0]["data"]["sequence_id"] == 3


async def test_ack_timeout_pauses_unasked(server_factory: ServerFactory) -> None:
    server = server_factory(tick_timeout_seconds=0.5)
    async with await connect(server) as ws:
        sid = await new_session(ws)
        await start(ws, sid)
        tick2 = (await ack(ws, sid, 1))[-1]
        _, paused = await recv_frame(ws)  # nothing was asked
        assert paused["type"] == "simulation_paused"
        assert paused["request_id"] is None
        assert paused["data"] == {
            "session_id": sid,
            "sequence_id": 2,
            "sim_time": tick2["data"]["sim_time"],
            "reason": "ack_timeout",
        }
        info = await session_info(ws, sid)
        assert info["state"] == "paused"
        assert info["progress"] == {
            "sequence_id": 2,
            "total_ticks": JANUARY_TICKS,
            "sim_time": tick2["data"]["sim_time"],
        }
        refusal(await ack(ws, sid, 2), "INVALID_STATE")
        resumed = await call(ws, "resume_simulation", {"session_id": sid})
        assert kinds(resumed) == ["simulation_resumed", "tick"]
        assert resumed[1]["data"]["sequence_id"] == 2
        step = await ack(ws, sid, 2)  # promptly, this time
        assert step[-1]["data"]["sequence_id"] == 3


# ---------------------------------------------------------------- completion and results


async def test_completion_then_results(pro: WsClient) -> None:
    sid = await new_session(pro, dates=SHORT)
    await start(pro, sid)
    refusal(await call(pro, "get_results", {"session_id": sid}), "INVALID_STATE")

    step = await ack(pro, sid, 1, orders=[market("in", quantity=10)])
    entry = step[1]["data"]
    step = await ack(pro, sid, 2)
    step = await ack(pro, sid, 3, orders=[market("out", "sell", quantity=10), far_limit("left")])
    assert kinds(step) == ["batch_ack", "execution_report", "account_snapshot", "tick"]
    exit_ = step[1]["data"]
    for sequence in range(4, SHORT_TICKS):
        assert kinds(await ack(pro, sid, sequence)) == ["tick"]
    last = await ack(pro, sid, SHORT_TICKS)
    # The order still open is cancelled at the end of data, then the run completes.
    assert kinds(last) == ["execution_report", "simulation_complete"]
    assert last[0]["data"]["order_id"] == "left"
    assert last[0]["data"]["status"] == "cancelled"
    assert last[0]["data"]["reason"] == "END_OF_DATA"
    complete = last[1]["data"]
    assert complete["total_ticks"] == SHORT_TICKS
    assert set(complete["metrics"]) == set(METRIC_NAMES)
    assert complete["metrics"]["total_trades"] == 1

    results = await call(pro, "get_results", {"session_id": sid})
    assert kinds(results) == ["simulation_results"]
    data = results[0]["data"]
    assert data["session_id"] == sid
    assert data["metrics"] == complete["metrics"]
    assert data["executions"] == 2  # fills only
    curve = data["equity_curve"]
    assert len(curve) == SHORT_TICKS
    assert [day for day, _ in curve] == sorted(day for day, _ in curve)
    assert curve[0] == ["2023-01-03", "100000.00"]
    pnl = (D(exit_["price"]) - D(entry["price"])) * 10
    assert D(curve[-1][1]) == CAPITAL + pnl == D(complete["metrics"]["final_equity"])
    (trade,) = data["trades"]
    assert set(trade) == TRADE_FIELDS
    assert trade["symbol"] == "AAPL"
    assert trade["side"] == "long"
    assert D(trade["quantity"]) == 10
    assert D(trade["entry_price"]) == D(entry["price"])
    assert D(trade["exit_price"]) == D(exit_["price"])
    assert trade["entry_time"] == entry["sim_time"]
    assert trade["exit_time"] == exit_["sim_time"]
    assert D(trade["pnl"]) == pnl
    # Results are kept: asking again gives the same.
    again = await call(pro, "get_results", {"session_id": sid})
    assert again[0]["data"] == data


# ---------------------------------------------------------------- who drives, deletion, limits


async def test_second_connection_of_the_same_user_is_session_busy(
    shared_server: EmbeddedServer,
) -> None:
    user = f"busy-user{next(_users)}"
    async with await connect(shared_server, user=user) as first:
        sid = await new_session(first)
        await start(first, sid)
        async with await connect(shared_server, user=user) as second:
            details = refusal(await ack(second, sid, 1), "SESSION_BUSY")
            assert details.get("session_id", sid) == sid
            batch = {"session_id": sid, "batch_id": "b", "orders": [market("m")]}
            refusal(await call(second, "order_batch", batch), "SESSION_BUSY")
            refusal(await call(second, "resume_simulation", {"session_id": sid}), "SESSION_BUSY")
            # Reading is not driving.
            assert (await session_info(second, sid))["progress"]["sequence_id"] == 1
            assert kinds(await call(second, "query_positions", {"session_id": sid})) == [
                "current_positions"
            ]
        step = await ack(first, sid, 1)
        assert kinds(step) == ["tick"]
        assert step[0]["data"]["sequence_id"] == 2


async def test_delete_session_stops_its_running_simulation(server: EmbeddedServer) -> None:
    service = server.container.simulation_service()
    async with await connect(server) as ws:
        sid = await new_session(ws)
        await start(ws, sid)
        assert await on_server(server, service.running_count) == 1
        deleted = await ws.request("delete_session", {"session_id": sid})
        assert deleted["type"] == "session_deleted"
        assert deleted["data"]["session_id"] == sid
        assert await on_server(server, service.running_count) == 0
        refusal(await ack(ws, sid, 1), "SESSION_NOT_FOUND")
        refusal(await call(ws, "get_results", {"session_id": sid}), "SESSION_NOT_FOUND")


async def test_tick_acks_are_not_charged_to_the_message_rate(
    server_factory: ServerFactory,
) -> None:
    slow = dataclasses.replace(PLAN_DEFAULTS[Plan.PROFESSIONAL], messages_per_minute=4)
    server = server_factory(plan_limits={**PLAN_DEFAULTS, Plan.PROFESSIONAL: slow})
    async with await connect(server) as ws:
        sid = await new_session(ws)  # 1
        tick = (await start(ws, sid))[-1]  # 2
        for _ in range(JANUARY_TICKS - 5):  # far more acks than the budget holds
            step = await ack(ws, sid, tick["data"]["sequence_id"])
            assert kinds(step) == ["tick"], step
            tick = step[-1]
        for _ in range(2):  # 3 and 4
            assert kinds(await call(ws, "query_positions", {"session_id": sid})) == [
                "current_positions"
            ]
        limited = await call(ws, "query_positions", {"session_id": sid})
        assert kinds(limited) == ["error"]
        assert limited[0]["data"]["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert limited[0]["data"]["details"]["limit"] == "messages_per_minute"
        assert limited[0]["data"]["details"]["max"] == 4
        # The budget is spent, yet the simulation goes on.
        step = await ack(ws, sid, tick["data"]["sequence_id"])
        assert kinds(step) == ["tick"]


# ---------------------------------------------------------------- resume_session


async def test_resume_session_after_the_driving_socket_closed(server: EmbeddedServer) -> None:
    user = "resumer"
    first = await connect(server, user=user)
    sid = await new_session(first)
    await start(first, sid)
    step = await ack(first, sid, 1, orders=[market("b1", quantity=4)])
    seen = step[1]["data"]  # the fill on bar 2, received
    step = await ack(first, sid, 2, orders=[market("b2", quantity=6)])
    missed = step[1]["data"]  # the fill on bar 3: the client will claim not to have seen it
    tick3 = step[-1]["data"]
    await first.close()

    service = server.container.simulation_service()

    def reason() -> PauseReason | None:
        run = service.run_of_any(sid)
        return run.paused if run is not None else None

    async def disconnected() -> bool:
        return bool(await on_server(server, reason) == PauseReason.DISCONNECTED)

    await wait_for(disconnected, what="the simulation paused as disconnected")
    async with await connect(server, user=user) as second:
        assert (await session_info(second, sid))["state"] == "paused"
        replies = await call(second, "resume_session", {"session_id": sid, "last_sequence_id": 2})
        assert kinds(replies) == ["state_sync", "tick"]
        sync = replies[0]["data"]
        assert sync["session_id"] == sid
        assert sync["state"] == "running"
        assert sync["next_sequence_id"] == 3
        assert sync["sim_time"] == tick3["sim_time"]
        assert set(sync["account"]) == ACCOUNT_FIELDS
        assert [(p["symbol"], D(p["quantity"])) for p in sync["account"]["positions"]] == [
            ("AAPL", D(10))
        ]
        assert sync["account"]["cash"] == tick3["cash"]
        assert sync["missed_executions"] == [missed]
        assert replies[1]["data"] == tick3

        # Claiming to have seen less brings back more; nothing twice within one answer.
        replies = await call(second, "resume_session", {"session_id": sid, "last_sequence_id": 0})
        executions = replies[0]["data"]["missed_executions"]
        assert executions == [seen, missed]
        assert replies[1]["data"]["sequence_id"] == 3

        assert (await session_info(second, sid))["state"] == "running"
        step = await ack(second, sid, 3)
        assert kinds(step) == ["tick"]
        assert step[0]["data"]["sequence_id"] == 4


async def test_resume_session_refusals(pro: WsClient) -> None:
    sid = await new_session(pro)
    resume = {"session_id": sid, "last_sequence_id": 0}
    details = refusal(await call(pro, "resume_session", resume), "INVALID_STATE")
    assert details["state"] == "ready"
    missing = {"session_id": "sess_nothere", "last_sequence_id": 0}
    refusal(await call(pro, "resume_session", missing), "SESSION_NOT_FOUND")
