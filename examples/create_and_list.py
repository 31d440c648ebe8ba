"""Create a session, list your sessions, then delete the one created.

    SIMUTRADOR_API_KEY=sk_... python examples/create_and_list.py

SIMUTRADOR_SERVER_URL defaults to http://127.0.0.1:8000 (`make serve`)."""

from __future__ import annotations

import asyncio
import sys

from entrypoints.sdk import AuthClient, SessionClient, SimuTradorError


async def main() -> None:
    # AuthClient() reads SIMUTRADOR_SERVER_URL and SIMUTRADOR_API_KEY from the environment.
    async with SessionClient(AuthClient()) as client:
        ready = client.ready
        print(f"connected to {client.auth.server_url} as {ready.user_id} ({ready.plan} plan)")

        session = await client.create_session(
            symbols=["AAPL", "MSFT"],
            start_date="2023-01-03",
            end_date="2023-06-30",
            initial_capital="100000",
            metadata={"example": "create_and_list"},
        )
        print(
            f"created {session.session_id}: {', '.join(session.symbols)}, "
            f"{session.estimated_trading_days} trading days, state {session.state}"
        )

        for listed in await client.list_sessions():
            print(f"  {listed.session_id}  {listed.state:<12} {', '.join(listed.symbols)}")

        await client.delete_session(session.session_id)
        print(f"deleted {session.session_id}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SimuTradorError as error:
        sys.exit(str(error))  # "CODE: message", exit status 1
