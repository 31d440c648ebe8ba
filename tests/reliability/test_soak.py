"""Soak: 200 connections of several users doing random create/get/list/delete at once.
Every reply is checked against a ledger the clients keep; at the end the server's sessions
equal the ledger exactly, and no per-user limit was ever exceeded along the way.

`make test` runs it for a few seconds; `make soak` (`-m soak`) runs it for minutes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.reliability.conftest import (
    ServerFactory,
    WsClient,
    create_data,
    health,
    issue_token,
    open_client,
    raised_limits,
    wait_for,
)

USERS = 10
CONNECTIONS_PER_USER = 20
MAX_ACTIVE = 8
"""Small, so that 20 connections of one user race for the last slots all the time."""
REPLY_DEADLINE = 30.0
CI_SECONDS = 4.0
SOAK_SECONDS = 180.0
MONITOR_INTERVAL = 0.1
PROGRESS_INTERVAL = 10.0
"""`make soak` prints its counts this often, so minutes of load are not minutes of silence."""


@dataclass
class Ledger:
    """One user's sessions as the clients know them. The event loop runs one client at a
    time, so updates between two awaits are atomic."""

    user: str
    live: set[str] = field(default_factory=set)
    """Created (reply seen) and not yet deleted (reply seen)."""
    claimed: set[str] = field(default_factory=set)
    """Live sessions some connection is using right now (a get or a delete in flight)."""
    deleting: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    ever: set[str] = field(default_factory=set)
    creating: int = 0
    deletes_done: int = 0
    creates_refused: int = 0
    listed: set[str] = field(default_factory=set)

    def pick(self, rng: random.Random) -> str | None:
        free = sorted(self.live - self.claimed)
        return rng.choice(free) if free else None


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    max_active_seen: int = 0
    max_connections_seen: int = 0

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.violations.append(message)


async def ask(client: WsClient, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return await asyncio.wait_for(client.request(kind, data), REPLY_DEADLINE)


async def create(client: WsClient, book: Ledger, tally: Tally) -> None:
    deletes_before, refused_before = book.deletes_done, book.creates_refused
    book.creating += 1
    reply = await ask(client, "create_session", create_data())
    book.creating -= 1
    if reply["type"] == "session_created":
        sid = reply["data"]["session_id"]
        tally.check(sid not in book.ever, f"duplicate session id {sid}")
        book.live.add(sid)
        book.ever.add(sid)
        # Created and never asked to be deleted: all of these exist on the server right now.
        certain = len(book.live - book.deleting)
        tally.check(certain <= MAX_ACTIVE, f"{book.user} holds {certain} > {MAX_ACTIVE}")
        tally.outcomes["create"] += 1
    elif reply["data"].get("error_code") == "SESSION_LIMIT_EXCEEDED":
        # The server saw at most: what we know of, plus creates still in flight, plus
        # whatever was deleted or refused since this request left.
        possible = (
            len(book.live)
            + book.creating
            + (book.deletes_done - deletes_before)
            + (book.creates_refused - refused_before)
        )
        tally.check(
            possible >= MAX_ACTIVE,
            f"{book.user} refused at most {possible} active sessions (limit {MAX_ACTIVE})",
        )
        book.creates_refused += 1
        tally.outcomes["create refused at limit"] += 1
    else:
        tally.violations.append(f"create: {reply}")


async def get(client: WsClient, book: Ledger, tally: Tally, rng: random.Random) -> None:
    sid = book.pick(rng)
    if sid is None:
        return await listing(client, book, tally)
    book.claimed.add(sid)
    reply = await ask(client, "get_session", {"session_id": sid})
    book.claimed.discard(sid)
    ok = reply["type"] == "session_info" and reply["data"]["session_id"] == sid
    tally.check(ok, f"get {sid} of {book.user}: {reply}")
    tally.outcomes["get"] += 1
    return None


async def delete(client: WsClient, book: Ledger, tally: Tally, rng: random.Random) -> None:
    sid = book.pick(rng)
    if sid is None:
        return await create(client, book, tally)
    book.claimed.add(sid)
    book.deleting.add(sid)
    reply = await ask(client, "delete_session", {"session_id": sid})
    book.claimed.discard(sid)
    book.deleting.discard(sid)
    if reply["type"] == "session_deleted" and reply["data"]["session_id"] == sid:
        book.live.discard(sid)
        book.gone.add(sid)
        book.deletes_done += 1
        tally.outcomes["delete"] += 1
    else:
        tally.violations.append(f"delete {sid} of {book.user}: {reply}")
    return None


async def listing(client: WsClient, book: Ledger, tally: Tally) -> None:
    must_show = book.live - book.deleting
    must_not_show = set(book.gone)
    reply = await ask(client, "list_sessions")
    if reply["type"] != "session_list":
        tally.violations.append(f"list of {book.user}: {reply}")
        return
    ids = [s["session_id"] for s in reply["data"]["sessions"]]
    shown = set(ids)
    still_required = must_show & (book.live - book.deleting)
    tally.check(len(ids) == len(shown), f"list of {book.user} repeats a session: {ids}")
    tally.check(len(ids) <= MAX_ACTIVE, f"list of {book.user} shows {len(ids)} sessions")
    tally.check(still_required <= shown, f"list lost {sorted(still_required - shown)}")
    tally.check(not (shown & must_not_show), f"list shows deleted {sorted(shown & must_not_show)}")
    book.listed |= shown
    tally.outcomes["list"] += 1


async def trespass(
    client: WsClient, book: Ledger, others: list[Ledger], tally: Tally, rng: random.Random
) -> None:
    """Someone else's session (ACCESS_DENIED), or one that never existed."""
    victim = rng.choice(others)
    target = rng.choice(sorted(victim.live)) if victim.live and rng.random() < 0.7 else None
    sid = target or f"sess_never_{rng.randrange(10**9)}"
    reply = await ask(client, "get_session", {"session_id": sid})
    code = reply["data"].get("error_code")
    allowed = {"ACCESS_DENIED", "SESSION_NOT_FOUND"} if target else {"SESSION_NOT_FOUND"}
    tally.check(reply["type"] == "session_error" and code in allowed, f"{book.user}: {reply}")
    tally.outcomes[f"trespass {code}"] += 1


async def worker(
    client: WsClient,
    book: Ledger,
    others: list[Ledger],
    tally: Tally,
    seed: int,
    deadline: float,
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.35:
            await create(client, book, tally)
        elif roll < 0.60:
            await get(client, book, tally, rng)
        elif roll < 0.75:
            await listing(client, book, tally)
        elif roll < 0.95:
            await delete(client, book, tally, rng)
        else:
            await trespass(client, book, others, tally, rng)


def server_counts(server: EmbeddedServer, users: list[str]) -> dict[str, tuple[int, int]]:
    """Per user: active sessions stored (checked in the server's loop), open connections."""
    repository = server.container.session_repository()
    registry = server.container.connection_registry()

    async def counts() -> dict[str, tuple[int, int]]:
        return {
            user: (
                sum(1 for s in await repository.list_by_owner(user) if s.is_active),
                await registry.count(user),
            )
            for user in users
        }

    return server.call(counts())


def stored_ids(server: EmbeddedServer, user: str) -> set[str]:
    repository = server.container.session_repository()

    async def ids() -> set[str]:
        return {s.id for s in await repository.list_by_owner(user)}

    return server.call(ids())


async def monitor(
    server: EmbeddedServer, users: list[str], tally: Tally, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for user, (active, connections) in (
            await asyncio.to_thread(server_counts, server, users)
        ).items():
            tally.max_active_seen = max(tally.max_active_seen, active)
            tally.max_connections_seen = max(tally.max_connections_seen, connections)
            tally.check(active <= MAX_ACTIVE, f"server holds {active} active for {user}")
            tally.check(
                connections <= CONNECTIONS_PER_USER, f"{connections} connections for {user}"
            )
        await asyncio.sleep(MONITOR_INTERVAL)


def progress_line(tally: Tally, books: dict[str, Ledger], elapsed: float, seconds: float) -> str:
    requests = sum(tally.outcomes.values())
    return (
        f"soak: {elapsed:,.0f} s of {seconds:,.0f} s: {requests:,} requests, "
        f"{sum(len(b.ever) for b in books.values()):,} sessions created, "
        f"{tally.outcomes['create refused at limit']:,} refused at the limit, "
        f"{len(tally.violations)} violations"
    )


async def report_progress(
    tally: Tally, books: dict[str, Ledger], seconds: float, stop: asyncio.Event
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_INTERVAL)
        if not stop.is_set():
            elapsed = time.monotonic() - started
            print(progress_line(tally, books, elapsed, seconds), flush=True)


def test_progress_line_counts_so_far() -> None:
    tally = Tally()
    tally.outcomes.update({"create": 3, "get": 4, "create refused at limit": 2})
    books = {"u": Ledger("u", ever={"a", "b", "c"})}
    assert progress_line(tally, books, 30.4, 180) == (
        "soak: 30 s of 180 s: 9 requests, 3 sessions created, 2 refused at the limit, 0 violations"
    )


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(CI_SECONDS, id="ci"),
        pytest.param(SOAK_SECONDS, id="soak", marks=pytest.mark.soak),
    ],
)
async def test_ledger_matches_server_after_random_load(
    server_factory: ServerFactory, seconds: float
) -> None:
    server = server_factory(
        plan_limits=raised_limits(
            max_active_sessions=MAX_ACTIVE,
            max_connections=CONNECTIONS_PER_USER,
            sessions_per_hour=10_000_000,
            messages_per_minute=10_000_000,
        )
    )
    users = [f"soak{n}" for n in range(USERS)]
    tokens = {user: issue_token(server, user, Plan.ENTERPRISE) for user in users}
    books = {user: Ledger(user) for user in users}
    connect_gate = asyncio.Semaphore(50)

    async def connect(user: str) -> WsClient:
        async with connect_gate:
            return await open_client(server, tokens[user])

    clients = await asyncio.gather(
        *(connect(user) for user in users for _ in range(CONNECTIONS_PER_USER))
    )
    # The connection limit holds while all 200 are open: one more is refused with 4029.
    with pytest.raises(websockets.ConnectionClosed) as refused:
        await open_client(server, tokens[users[0]])
    assert refused.value.rcvd is not None
    assert refused.value.rcvd.code == 4029

    tally = Tally()
    stop = asyncio.Event()
    watching = asyncio.create_task(monitor(server, users, tally, stop))
    reporting = asyncio.create_task(report_progress(tally, books, seconds, stop))
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            worker(
                client,
                books[users[n // CONNECTIONS_PER_USER]],
                [b for u, b in books.items() if u != users[n // CONNECTIONS_PER_USER]],
                tally,
                seed=n,
                deadline=deadline,
            )
            for n, client in enumerate(clients)
        )
    )
    elapsed = time.monotonic() - started
    stop.set()
    await watching
    await reporting

    # Nothing lost, nothing duplicated: the server holds exactly the ledger, user by user,
    # both in its repository and as each user sees it over the wire.
    for user, book in books.items():
        assert stored_ids(server, user) == book.live, user
        assert book.listed <= book.ever, f"{user} was shown sessions nobody created"
    for user, client in zip(users, clients[::CONNECTIONS_PER_USER], strict=True):
        listed = await client.request("list_sessions")
        assert {s["session_id"] for s in listed["data"]["sessions"]} == books[user].live
    assert health(server)["active_sessions"] == sum(len(b.live) for b in books.values())
    await asyncio.gather(*(client.close() for client in clients))
    await wait_for(lambda: health(server)["active_connections"] == 0, 15.0)

    requests = sum(tally.outcomes.values())
    print(
        f"\nsoak: {len(clients)} connections of {USERS} users for {elapsed:.1f}s: "
        f"{requests:,} requests ({requests / elapsed:,.0f}/s); "
        f"{dict(sorted(tally.outcomes.items()))}; "
        f"max active per user seen {tally.max_active_seen}/{MAX_ACTIVE}, "
        f"max connections per user {tally.max_connections_seen}/{CONNECTIONS_PER_USER}; "
        f"{sum(len(b.ever) for b in books.values()):,} sessions created, "
        f"{sum(len(b.live) for b in books.values())} left; "
        f"{len(tally.violations)} violations"
    )
    assert not tally.violations, "\n".join(tally.violations[:20])
    assert tally.outcomes["create refused at limit"] > 0, "the session limit was never reached"
