"""Create many sessions at once over a single connection, then delete them.

    SIMUTRADOR_API_KEY=sk_... python examples/concurrent_creates.py [COUNT]

COUNT defaults to 100. Every request is in flight at the same time on one WebSocket;
replies are matched to requests by `request_id`. Plans cap active sessions (professional:
10) and creates per hour (professional: 50), so 100 needs an enterprise key; with a smaller
plan the refusals are counted and explained."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

from entrypoints.sdk import (
    AuthClient,
    SessionClient,
    SessionData,
    SessionError,
    SimuTradorError,
)


async def main(count: int) -> int:
    # AuthClient() reads SIMUTRADOR_SERVER_URL and SIMUTRADOR_API_KEY from the environment.
    async with SessionClient(AuthClient()) as client:
        limits = client.ready.limits
        print(
            f"{client.ready.user_id} ({client.ready.plan} plan): at most "
            f"{limits.max_active_sessions} active sessions, {limits.sessions_per_hour} per hour"
        )

        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                client.create_session(
                    ["AAPL", "MSFT"], "2023-01-03", "2023-06-30", 100_000, {"n": n}
                )
                for n in range(count)
            ),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started

        created = [r for r in results if isinstance(r, SessionData)]
        refused = Counter(r.code for r in results if isinstance(r, SessionError))
        unexpected = [
            r for r in results if isinstance(r, BaseException) and not isinstance(r, SessionError)
        ]
        print(
            f"created {len(created)} of {count} sessions in {elapsed * 1000:.0f} ms "
            f"on {client.connections_opened} connection"
        )
        for code, times in refused.items():
            print(f"refused {times}: {code}")
        if refused["SESSION_LIMIT_EXCEEDED"]:
            print(
                f"Your plan allows {limits.max_active_sessions} active sessions and "
                f"{limits.sessions_per_hour} creates per hour; use an enterprise key to create "
                f"{count}, or pass a smaller COUNT."
            )

        await asyncio.gather(*(client.delete_session(s.session_id) for s in created))
        print(f"deleted {len(created)} sessions")
        if unexpected:
            raise unexpected[0]
        return 0 if len(created) == count else 1


def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Create COUNT sessions at once, then delete them.")
    parser.add_argument(
        "count", nargs="?", type=positive_count, default=100, help="sessions (default 100)"
    )
    count = parser.parse_args().count  # a bad COUNT: one usage line, exit 2
    try:
        sys.exit(asyncio.run(main(count)))
    except SimuTradorError as error:
        sys.exit(str(error))
