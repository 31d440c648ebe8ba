"""Simulations on a real server under faults: clients that vanish (TCP reset) or never ack,
garbage interleaved with a running simulation's acks, fifty simulations at once, and
expiry of a paused simulation. Whatever happens, a simulation is either resumed with
nothing lost or filled twice, or cleanly gone; and its results equal an undisturbed run."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection

from application.simulation import PauseReason
from domain.limits import Plan
from entrypoints.sdk import BacktestResults, Strategy
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.backtest import drive
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.local import LocalDriver
from entrypoints.sdk.remote import RemoteDriver
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import build_container
from tests.integration.wsclient import recv_frame, sim_request
from tests.reliability.conftest import (
    ServerFactory,
    WsClient,
    issue_token,
    open_client,
    raised_limits,
)

D = Decimal
CENT = D("0.01")
CAPITAL = D(100_000)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTLE_SECONDS = 10.0
Message = dict[str, Any]
LAST = {
    "order_batch": {"batch_ack"},
    "pause_simulation": {"simulation_paused"},
    "query_positions": {"current_positions"},
    "get_results": {"simulation_results"},
}


def reset(ws: ClientConnection) -> None:
    """Drop the TCP connection with a RST: no close frame, no FIN, nothing flushed."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def call(ws: WsClient, message_type: str, data: Mapping[str, Any]) -> list[Message]:
    return await sim_request(
        ws, message_type, data, LAST.get(message_type, {"tick"}) | {"simulation_complete"}
    )


async def on_server(server: EmbeddedServer, function: Callable[[], Any]) -> Any:
    """`function()` evaluated on the server's loop (its services are not thread-safe)."""

    async def run() -> Any:
        return function()

    return await asyncio.to_thread(server.call, run())


async def eventually(
    condition: Callable[[], Any], what: str, seconds: float = SETTLE_SECONDS
) -> None:
    """Await `condition()` (a coroutine function) until it is true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await asyncio.sleep(0.02)


def pause_reason(server: EmbeddedServer, session_id: str) -> Callable[[], Any]:
    service = server.container.simulation_service()

    async def reason() -> PauseReason | None:
        def read() -> PauseReason | None:
            run = service.run_of_any(session_id)
            return run.paused if run is not None else None

        found: PauseReason | None = await on_server(server, read)
        return found

    return reason


def without_session(report: Message) -> Message:
    return {k: v for k, v in report.items() if k != "session_id"}


# ---------------------------------------------------------------- a scripted raw client


def order(order_id: str, side: str, quantity: int, **extra: Any) -> Message:
    return {"order_id": order_id, "symbol": "AAPL", "side": side, "quantity": quantity, **extra}


def plan(sequence: int, close: Decimal) -> list[Message]:
    """The orders sent with the ack of tick `sequence` (prices from that tick's close)."""

    def at(factor: str) -> str:
        return str((close * D(factor)).quantize(CENT))

    return {
        1: [order("m1", "buy", 10)],
        2: [order("l2", "buy", 5, type="limit", limit_price=at("0.99"))],
        4: [order("m4", "buy", 7)],
        6: [order("s6", "sell", 5, type="stop", stop_price=at("0.97"))],
        8: [order("m8", "sell", 5)],
        10: [order("b10", "buy", 3, stop_loss=at("0.97"), take_profit=at("1.03"))],
        13: [
            order(
                "sl13", "buy", 4, type="stop_limit", stop_price=at("1.01"), limit_price=at("1.02")
            )
        ],
        15: [order("m15", "sell", 3, time_in_force="ioc")],
        18: [order("l18", "sell", 2, type="limit", limit_price=at("1.10"))],
    }.get(sequence, [])


class RawRun:
    """Drives one session over raw frames with the orders of `plan`, collecting every
    execution report it is sent (replies and `state_sync.missed_executions` alike)."""

    def __init__(self, ws: WsClient, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.reports: list[Message] = []
        self.tick: Message | None = None
        self.complete: Message | None = None

    def take(self, messages: list[Message]) -> None:
        for message in messages:
            kind, data = message["type"], message["data"]
            assert kind not in ("error", "session_error"), message
            if kind == "execution_report":
                self.reports.append(data)
            elif kind == "state_sync":
                self.reports += data["missed_executions"]
            elif kind == "tick":
                self.tick = data
            elif kind == "simulation_complete":
                self.tick, self.complete = None, data

    async def start(self) -> None:
        self.take(await call(self.ws, "start_simulation", {"session_id": self.session_id}))

    def ack_frame(self) -> Message:
        assert self.tick is not None
        sequence = self.tick["sequence_id"]
        orders = plan(sequence, self.tick["bars"]["AAPL"]["close"])
        data: Message = {"session_id": self.session_id, "sequence_id": sequence}
        if orders:
            data["orders"] = orders
        return {"type": "tick_ack", "data": data, "request_id": f"ack-{sequence}"}

    async def ack(self) -> None:
        frame = self.ack_frame()
        self.take(await call(self.ws, "tick_ack", frame["data"]))

    async def run_until(self, sequence: int | None = None) -> None:
        """Ack until tick `sequence` is the one in flight (or to the end)."""
        while self.tick is not None and self.tick["sequence_id"] != sequence:
            await self.ack()

    async def results(self) -> Message:
        (reply,) = await call(self.ws, "get_results", {"session_id": self.session_id})
        assert reply["type"] == "simulation_results", reply
        data: Message = reply["data"]
        return data


async def new_run(ws: WsClient, end: str = "2023-02-28") -> RawRun:
    reply = await ws.request(
        "create_session",
        {
            "symbols": ["AAPL"],
            "start_date": "2023-01-03",
            "end_date": end,
            "initial_capital": "100000.00",
            "commission_pct": "0.001",
        },
    )
    assert reply["type"] == "session_created", reply
    return RawRun(ws, reply["data"]["session_id"])


async def reference(server: EmbeddedServer, token: str) -> tuple[list[Message], Message]:
    """The undisturbed run: its reports (without session id) and results."""
    async with await open_client(server, token) as ws:
        run = await new_run(ws)
        await run.start()
        await run.run_until(None)
        results = await run.results()
    return [without_session(r) for r in run.reports], without_session(results)


def same_results(results: Message, expected: Message) -> None:
    for key in ("metrics", "equity_curve", "trades", "executions"):
        assert results[key] == expected[key], f"{key} differs from the undisturbed run"


# ---------------------------------------------------------------- vanishing clients


async def test_a_vanished_client_leaves_a_resumable_simulation(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    token = issue_token(server, "vanisher", Plan.PROFESSIONAL)
    expected_reports, expected_results = await reference(server, token)
    assert len({r["execution_id"] for r in expected_reports}) == len(expected_reports)
    assert {r["sequence_id"] for r in expected_reports} >= {5, 9}, "fills right after the cuts"

    observer = await open_client(server, token)
    first = await open_client(server, token)
    run = await new_run(first)
    await run.start()

    # 1. Vanish with tick 4 in flight, its ack (and orders) never sent.
    await run.run_until(4)
    reset(first.connection)
    await eventually(
        lambda: _is(pause_reason(server, run.session_id), PauseReason.DISCONNECTED),
        "a pause as disconnected",
    )
    info = await observer.request("get_session", {"session_id": run.session_id})
    assert info["data"]["state"] == "paused"
    assert info["data"]["progress"]["sequence_id"] == 4

    second = await open_client(server, token)
    run.ws = second
    resumed = await call(
        second, "resume_session", {"session_id": run.session_id, "last_sequence_id": 4}
    )
    assert [m["type"] for m in resumed] == ["state_sync", "tick"]
    sync = resumed[0]["data"]
    assert (sync["state"], sync["next_sequence_id"]) == ("running", 4)
    assert sync["missed_executions"] == []
    run.take(resumed)
    assert run.tick is not None
    assert run.tick["sequence_id"] == 4

    # 2. Vanish right after the ack of tick 8 was handled, its replies unread: the fill
    # on bar 9 comes back in missed_executions.
    await run.run_until(8)
    await second.send(run.ack_frame())
    await eventually(
        lambda: _progress_is(observer, run.session_id, 9), "the server to handle the ack of 8"
    )
    reset(second.connection)
    await eventually(
        lambda: _is(pause_reason(server, run.session_id), PauseReason.DISCONNECTED),
        "a pause as disconnected",
    )
    third = await open_client(server, token)
    run.ws = third
    resumed = await call(
        third, "resume_session", {"session_id": run.session_id, "last_sequence_id": 8}
    )
    sync = resumed[0]["data"]
    assert sync["next_sequence_id"] == 9
    assert sync["missed_executions"], "the fill on bar 9 was sent to the vanished client"
    assert {r["sequence_id"] for r in sync["missed_executions"]} == {9}
    run.take(resumed)

    await run.run_until(None)
    assert run.complete is not None
    ids = [r["execution_id"] for r in run.reports]
    assert len(ids) == len(set(ids)), "an execution was delivered twice"
    assert [without_session(r) for r in run.reports] == expected_reports
    same_results(without_session(await run.results()), expected_results)
    for ws in (observer, third):
        await ws.close()


async def test_what_an_ack_caused_comes_back_after_vanishing(
    server_factory: ServerFactory,
) -> None:
    """The client vanishes with an ack handled and its replies unread: the cancel and the
    refusal that ack caused come back in state_sync (missed_executions, missed_rejections);
    and once more after the last ack, when the simulation completed meanwhile."""
    server = server_factory()
    token = issue_token(server, "canceller", Plan.PROFESSIONAL)
    observer = await open_client(server, token)
    ws = await open_client(server, token)
    run = await new_run(ws, end="2023-01-31")
    sid = run.session_id
    await run.start()
    resting = order("rest", "buy", 1, type="limit", limit_price="1.00")
    await call(ws, "tick_ack", {"session_id": sid, "sequence_id": 1, "orders": [resting]})
    bad = order("bad", "buy", 1, symbol="XXXX")
    await ws.send(
        {
            "type": "tick_ack",
            "data": {"session_id": sid, "sequence_id": 2, "cancels": ["rest"], "orders": [bad]},
        }
    )
    await eventually(lambda: _progress_is(observer, sid, 3), "the server to handle the ack of 2")
    reset(ws.connection)
    await eventually(
        lambda: _is(pause_reason(server, sid), PauseReason.DISCONNECTED), "a disconnected pause"
    )
    ws = await open_client(server, token)
    resumed = await call(ws, "resume_session", {"session_id": sid, "last_sequence_id": 2})
    assert [m["type"] for m in resumed] == ["state_sync", "tick"]
    sync = resumed[0]["data"]
    assert sync["account"]["open_orders"] == []
    assert [(r["order_id"], r["status"]) for r in sync["missed_executions"]] == [
        ("rest", "cancelled")
    ]
    assert {oid: r["error_code"] for oid, r in sync["missed_rejections"].items()} == {
        "bad": "INVALID_ORDER"
    }
    assert resumed[1]["data"]["sequence_id"] == 3

    # To the last tick with an order left open; vanish with the last ack handled.
    left = order("left", "buy", 1, type="limit", limit_price="1.00")
    step = await call(ws, "tick_ack", {"session_id": sid, "sequence_id": 3, "orders": [left]})
    tick = step[-1]["data"]
    while not tick["is_last"]:
        ack = {"session_id": sid, "sequence_id": tick["sequence_id"]}
        tick = (await call(ws, "tick_ack", ack))[-1]["data"]
    total = tick["sequence_id"]
    await ws.send({"type": "tick_ack", "data": {"session_id": sid, "sequence_id": total}})

    async def completed() -> bool:
        info = await observer.request("get_session", {"session_id": sid})
        return bool(info["data"]["state"] == "completed")

    await eventually(completed, "the simulation to complete")
    reset(ws.connection)
    async with await open_client(server, token) as again:
        resume = {"session_id": sid, "last_sequence_id": total}
        replies = await call(again, "resume_session", resume)
        assert [m["type"] for m in replies] == ["state_sync", "simulation_complete"]
        sync = replies[0]["data"]
        assert sync["state"] == "completed"
        assert [(r["order_id"], r["status"], r["reason"]) for r in sync["missed_executions"]] == [
            ("left", "cancelled", "END_OF_DATA")
        ]
        assert sync["missed_rejections"] == {}
        assert replies[1]["data"]["total_ticks"] == total
        results = await call(again, "get_results", {"session_id": sid})
        assert results[0]["data"]["metrics"] == replies[1]["data"]["metrics"]
    await observer.close()


async def _is(read: Callable[[], Any], expected: object) -> bool:
    return bool(await read() == expected)


async def _progress_is(ws: WsClient, session_id: str, sequence: int) -> bool:
    info = await ws.request("get_session", {"session_id": session_id})
    return bool(info["data"]["progress"]["sequence_id"] == sequence)


async def test_a_client_that_never_acks_is_paused_by_the_ack_timeout(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(tick_timeout_seconds=0.3)
    token = issue_token(server, "sleeper", Plan.PROFESSIONAL)
    async with await open_client(server, token) as ws:
        runs = [await new_run(ws, end="2023-01-31") for _ in range(3)]
        for run in runs:
            await run.start()
        # Each simulation times out on its own and says so, unasked.
        paused = [(await recv_frame(ws))[1] for _ in runs]
        assert {m["type"] for m in paused} == {"simulation_paused"}
        assert {m["data"]["session_id"] for m in paused} == {r.session_id for r in runs}
        assert {m["data"]["reason"] for m in paused} == {"ack_timeout"}
        assert {m["data"]["sequence_id"] for m in paused} == {1}
        for run in runs:
            assert await pause_reason(server, run.session_id)() is PauseReason.ACK_TIMEOUT
            info = await ws.request("get_session", {"session_id": run.session_id})
            assert info["data"]["state"] == "paused"
            assert info["data"]["progress"]["sequence_id"] == 1
        # A late ack is refused; the simulation waits, whole, for a resume.
        late = await call(ws, "tick_ack", {"session_id": runs[0].session_id, "sequence_id": 1})
        assert late[0]["data"]["error_code"] == "INVALID_STATE"
        resumed = await call(ws, "resume_simulation", {"session_id": runs[0].session_id})
        assert [m["type"] for m in resumed] == ["simulation_resumed", "tick"]
        assert resumed[1]["data"]["sequence_id"] == 1


# ---------------------------------------------------------------- garbage between acks


def fuzz_frames(rng: random.Random, session_id: str, sequence: int) -> list[str | bytes]:
    """Frames that must each be refused with one typed reply and change nothing."""
    sid = session_id
    ref = {"session_id": sid}
    families: list[Callable[[], str | bytes]] = [
        lambda: "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(1, 60))),
        lambda: rng.randbytes(rng.randint(1, 64)),
        lambda: json.dumps(rng.choice([[], 3, "tick_ack", None, True, 1.5])),
        lambda: json.dumps(
            {"type": rng.choice(["tick", "ack", "TICK_ACK", "", "order"]), "data": ref}
        ),
        lambda: json.dumps({"type": rng.choice([7, None, ["tick_ack"], {"a": 1}]), "data": ref}),
        lambda: json.dumps({"type": "tick_ack", "data": {**ref, "sequence_id": str(sequence)}}),
        lambda: json.dumps({"type": "tick_ack", "data": {**ref, "sequence_id": sequence, "x": 1}}),
        lambda: json.dumps(
            {"type": "tick_ack", "data": {**ref, "sequence_id": sequence + rng.randint(1, 9)}}
        ),
        lambda: json.dumps(
            {"type": "tick_ack", "data": {**ref, "sequence_id": sequence - rng.randint(1, 9)}}
        ),
        lambda: json.dumps(
            {
                "type": "tick_ack",
                "data": {
                    **ref,
                    "sequence_id": sequence,
                    "orders": [{"order_id": 5, "side": "buy"}],
                },
            }
        ),
        lambda: json.dumps({"type": "tick_ack", "data": {"sequence_id": sequence}}),
        lambda: json.dumps({"type": "tick_ack", "data": [sid, sequence]}),
        lambda: json.dumps({"type": "order_batch", "data": {**ref, "batch_id": 1, "orders": []}}),
        lambda: json.dumps(
            {"type": "cancel_order", "data": {**ref, "order_id": f"fz-{rng.random()}"}}
        ),
        lambda: json.dumps({"type": "start_simulation", "data": ref}),
        lambda: json.dumps({"type": "resume_simulation", "data": ref}),
        lambda: json.dumps({"type": "get_results", "data": ref}),
        lambda: json.dumps({"type": "query_positions", "data": {"session_id": sid, "extra": 1}}),
        lambda: json.dumps(
            {"type": "tick_ack", "data": {**ref, "sequence_id": sequence}, "pad": "x" * 70_000}
        ),
        lambda: json.dumps(
            {
                "type": "order_batch",
                "data": {
                    **ref,
                    "batch_id": "b",
                    "orders": [order(f"fz{i}", "buy", 1) for i in range(501)],
                },
            }
        ),
        lambda: (
            '{"type": "tick_ack", "data": {"session_id": "'
            + sid
            + '", "sequence_id": '
            + str(sequence)
        ),
    ]
    return [rng.choice(families)() for _ in range(rng.randint(0, 4))]


async def test_garbage_between_acks_never_disturbs_a_simulation(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    token = issue_token(server, "fuzzer", Plan.PROFESSIONAL)
    expected_reports, expected_results = await reference(server, token)
    rng = random.Random(20240601)
    replies: dict[str, int] = {}
    async with await open_client(server, token) as ws:
        run = await new_run(ws)
        await run.start()
        while run.tick is not None:
            garbage = fuzz_frames(rng, run.session_id, run.tick["sequence_id"])
            ack = run.ack_frame()
            # Pipelined: the garbage and the ack go out together; replies come in order.
            for frame in garbage:
                await ws.send_raw(frame)
            await ws.send(ack)
            for frame in garbage:
                _, reply = await recv_frame(ws)
                kind = reply["type"]
                code = reply["data"].get("error_code")
                replies[code or kind] = replies.get(code or kind, 0) + 1
                assert kind in ("error", "session_error"), (frame[:200], reply)
                assert code != "INTERNAL_ERROR", (frame[:200], reply)
                assert reply.get("request_id") != ack["request_id"]
            step: list[Message] = []
            while not step or step[-1]["type"] not in ("tick", "simulation_complete"):
                _, message = await recv_frame(ws)
                assert message.get("request_id") == ack["request_id"], message
                step.append(message)
            run.take(step)
        assert run.complete is not None
        results = without_session(await run.results())
    assert sum(replies.values()) > 50, replies
    assert set(replies) == {
        "INVALID_MESSAGE",
        "UNKNOWN_MESSAGE_TYPE",
        "MESSAGE_TOO_LARGE",
        "INVALID_SEQUENCE",
        "INVALID_STATE",
        "ORDER_NOT_FOUND",
        "VALIDATION_FAILED",
    }, replies
    assert [without_session(r) for r in run.reports] == expected_reports
    same_results(results, expected_results)


# ---------------------------------------------------------------- many at once


@dataclass(frozen=True)
class Job:
    example: str
    symbols: tuple[str, ...]
    start: str
    end: str
    params: Mapping[str, Any]
    engine: Mapping[str, Any]


def jobs(n: int) -> list[Job]:
    rng = random.Random(50)
    made = []
    for i in range(n):
        example = ["sma_cross.py", "bracket_orders.py", "buy_and_hold.py"][i % 3]
        symbols = rng.choice([("AAPL",), ("MSFT",), ("AAPL", "JPM"), ("GOOGL", "MSFT")])
        month = rng.randint(1, 6)
        params: dict[str, Any] = (
            {"fast": rng.randint(3, 8), "slow": rng.randint(10, 20)}
            if example == "sma_cross.py"
            else {"lookback": rng.randint(5, 15)}
            if example == "bracket_orders.py"
            else {}
        )
        engine = {"slippage_bps": str(rng.choice([0, 2, 5])), "commission_pct": "0.001"}
        made.append(
            Job(
                example, symbols, f"2022-{month:02d}-01", f"2022-{month + 5:02d}-28", params, engine
            )
        )
    return made


def strategy_of(job: Job) -> Strategy:
    return load_strategy(EXAMPLES / job.example)()


def comparable(results: BacktestResults) -> dict[str, Any]:
    return {
        "executions": [msgspec.structs.replace(r, session_id="") for r in results.executions],
        "trades": results.trades,
        "equity_curve": results.equity_curve,
        "metrics": results.metrics,
        "total_ticks": results.total_ticks,
    }


async def test_fifty_simulations_at_once_each_equal_their_twin(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(plan_limits=raised_limits(max_connections=100))
    keys = [server.create_api_key(f"crowd-{u}", Plan.ENTERPRISE) for u in range(5)]
    todo = jobs(50)

    async def remote(i: int, job: Job) -> BacktestResults:
        auth = AuthClient(server.http_url, keys[i % len(keys)])
        driver = RemoteDriver(
            auth,
            list(job.symbols),
            job.start,
            job.end,
            CAPITAL,
            engine_settings=dict(job.engine),
            timeout=60.0,
        )
        try:
            return await drive(strategy_of(job), driver, params=job.params)
        finally:
            await driver.close()

    results = await asyncio.gather(*(remote(i, job) for i, job in enumerate(todo)))
    assert len({r.session_id for r in results}) == len(todo)
    service = server.container.simulation_service()
    assert await on_server(server, service.running_count) == 0

    container = build_container(server.container.settings().home)
    for job, got in zip(todo, results, strict=True):
        driver = LocalDriver(
            list(job.symbols),
            job.start,
            job.end,
            CAPITAL,
            engine_settings=dict(job.engine),
            container=container,
        )
        try:
            twin = await drive(strategy_of(job), driver, params=job.params)
        finally:
            await driver.close()
        a, b = comparable(got), comparable(twin)
        for key in a:
            assert a[key] == b[key], f"{key} of {job} differs from its in-process twin"
    assert sum(len(r.executions) for r in results) > 50, "the crowd must trade"


# ---------------------------------------------------------------- expiry


async def test_expiry_of_a_paused_simulation_frees_it(server_factory: ServerFactory) -> None:
    server = server_factory(session_timeout_minutes=0.01, sweep_interval_seconds=0.05)
    service = server.container.simulation_service()
    token = issue_token(server, "expirer", Plan.PROFESSIONAL)
    ws = await open_client(server, token)
    by_request, by_disconnect = await new_run(ws), await new_run(ws)
    for run in (by_request, by_disconnect):
        await run.start()
        await run.ack()
    paused = await call(ws, "pause_simulation", {"session_id": by_request.session_id})
    assert paused[0]["data"]["reason"] == "requested"
    assert await on_server(server, service.running_count) == 2
    reset(ws.connection)

    async def freed() -> bool:
        return bool(await on_server(server, service.running_count) == 0)

    await eventually(freed, "the sweep to drop both simulations")
    async with await open_client(server, token) as again:
        for run in (by_request, by_disconnect):
            resume = {"session_id": run.session_id, "last_sequence_id": 2}
            refused = await call(again, "resume_session", resume)
            assert refused[0]["type"] == "session_error"
            assert refused[0]["data"]["error_code"] == "SESSION_NOT_FOUND"
            info = await again.request("get_session", {"session_id": run.session_id})
            assert info["data"]["error_code"] == "SESSION_NOT_FOUND"
        listed = await again.request("list_sessions")
        assert listed["data"]["sessions"] == []
        # The running-simulation slots are free: new simulations start.
        fresh = await new_run(again, end="2023-01-31")
        await fresh.start()
        assert fresh.tick is not None
        assert fresh.tick["sequence_id"] == 1
