"""The expiry sweep reclaims idle sessions while other sessions are busy, and never removes
a session that was used within the timeout."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

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

TIMEOUT_SECONDS = 3.0
SWEEP_SECONDS = 0.25
IDLE_SESSIONS = 30
BUSY_USERS = 5
SESSIONS_PER_BUSY_USER = 6
CHURN_CONNECTIONS = 20


@dataclass
class Tally:
    touches: int = 0
    churned: int = 0
    violations: list[str] = field(default_factory=list)


def stored(server: EmbeddedServer, session_ids: list[str]) -> set[str]:
    """Which of `session_ids` are still in the repository (not merely hidden as expired)."""
    repository = server.container.session_repository()

    async def present() -> set[str]:
        return {sid for sid in session_ids if await repository.get(sid) is not None}

    return server.call(present())


async def keep_busy(
    client: WsClient, session_ids: list[str], stop: asyncio.Event, tally: Tally
) -> None:
    """Touch each session in turn. A SESSION_NOT_FOUND is a bug unless the session really
    was idle for a whole timeout: its idle time is at most (this reply - last touch sent)."""
    last_sent = {sid: time.monotonic() for sid in session_ids}
    while not stop.is_set():
        for sid in session_ids:
            sent = time.monotonic()
            reply = await client.request("get_session", {"session_id": sid})
            idle_at_most = time.monotonic() - last_sent[sid]
            last_sent[sid] = sent
            if reply["type"] != "session_info":
                verdict = "legitimately expired" if idle_at_most > TIMEOUT_SECONDS else "BUG"
                tally.violations.append(f"{sid}: {reply} after ≤{idle_at_most:.2f}s ({verdict})")
            tally.touches += 1
            await asyncio.sleep(0.02)


async def churn(client: WsClient, stop: asyncio.Event, tally: Tally) -> None:
    """Short-lived sessions: create, read, list, delete, as fast as the server answers."""
    while not stop.is_set():
        created = await client.request("create_session", create_data())
        assert created["type"] == "session_created", created
        ref = {"session_id": created["data"]["session_id"]}
        info = await client.request("get_session", ref)
        if info["type"] != "session_info":
            tally.violations.append(f"fresh session vanished: {info} (BUG)")
        await client.request("list_sessions")
        deleted = await client.request("delete_session", ref)
        if deleted["type"] != "session_deleted":
            tally.violations.append(f"fresh session vanished before delete: {deleted} (BUG)")
        tally.churned += 1


async def test_sweep_reclaims_idle_sessions_and_spares_busy_ones(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        session_timeout_minutes=TIMEOUT_SECONDS / 60,
        sweep_interval_seconds=SWEEP_SECONDS,
        plan_limits=raised_limits(
            messages_per_minute=1_000_000, max_active_sessions=1000, sessions_per_hour=1_000_000
        ),
    )
    idle_client = await open_client(server, issue_token(server, "idle", Plan.ENTERPRISE))
    idle_ids = []
    for _ in range(IDLE_SESSIONS):
        last_idle_sent = time.monotonic()
        created = await idle_client.request("create_session", create_data())
        idle_ids.append(created["data"]["session_id"])

    busy: list[tuple[WsClient, list[str]]] = []
    for n in range(BUSY_USERS):
        client = await open_client(server, issue_token(server, f"busy{n}", Plan.ENTERPRISE))
        ids = []
        for _ in range(SESSIONS_PER_BUSY_USER):
            created = await client.request("create_session", create_data())
            ids.append(created["data"]["session_id"])
        busy.append((client, ids))
    busy_ids = [sid for _, ids in busy for sid in ids]
    churn_token = issue_token(server, "churn", Plan.ENTERPRISE)
    churners = [await open_client(server, churn_token) for _ in range(CHURN_CONNECTIONS)]

    stop = asyncio.Event()
    tally = Tally()
    load = [asyncio.create_task(keep_busy(c, ids, stop, tally)) for c, ids in busy]
    load += [asyncio.create_task(churn(c, stop, tally)) for c in churners]
    try:
        # The idle connection stays open: an open socket is not activity on a session.
        await wait_for(
            lambda: not stored(server, idle_ids),
            TIMEOUT_SECONDS * 5,
            interval=0.1,
            what="the sweep to reclaim every idle session",
        )
        reclaimed_after = time.monotonic() - last_idle_sent
        await asyncio.sleep(SWEEP_SECONDS * 4)  # a few more sweeps while the load goes on
    finally:
        stop.set()
        await asyncio.gather(*load)

    print(
        f"\nexpiry under load: {IDLE_SESSIONS} idle sessions reclaimed after "
        f"{reclaimed_after:.1f}s (timeout {TIMEOUT_SECONDS}s); {tally.touches} touches of "
        f"{len(busy_ids)} busy sessions; {tally.churned} sessions churned"
    )
    assert not tally.violations, "\n".join(tally.violations)
    # The last idle session was created after `last_idle_sent`: it cannot go sooner.
    assert reclaimed_after >= TIMEOUT_SECONDS, "an idle session went before its time"
    assert stored(server, busy_ids) == set(busy_ids)
    assert health(server)["active_sessions"] == len(busy_ids)
    assert tally.churned > 0
    assert tally.touches > len(busy_ids)
    for client in [idle_client, *churners, *(c for c, _ in busy)]:
        await client.close()
