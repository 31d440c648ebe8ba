"""`simutrador …`: the admin and user command line (Typer)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from domain.errors import DomainError
from domain.limits import Plan
from entrypoints.cli.auth_commands import auth_app
from entrypoints.cli.common import SimuTradorGroup, fail
from entrypoints.cli.data_commands import data_app
from entrypoints.cli.fetch_command import fetch
from entrypoints.cli.market_commands import symbols
from entrypoints.cli.optimize_command import optimize_command
from entrypoints.cli.run_command import run
from entrypoints.cli.session_commands import session_app
from entrypoints.container import Container
from entrypoints.logs import install_handler
from entrypoints.settings import MAX_PORT
from entrypoints.version import __version__

app = typer.Typer(
    cls=SimuTradorGroup,
    name="simutrador",
    help="SimuTrador: trading simulations against authoritative historical data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Manage API keys (admin; acts on SIMUTRADOR_HOME directly, or on Redis with "
    "SIMUTRADOR_STORAGE=redis)."
)
app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")
app.add_typer(session_app, name="session")
data_app.command()(fetch)
app.add_typer(data_app, name="data")
app.command()(symbols)
app.command()(run)
app.command("optimize")(optimize_command)

out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"simutrador {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """SimuTrador command line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [SIMUTRADOR_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=MAX_PORT, help="Port [SIMUTRADOR_PORT].")
    ] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample/--no-sample",
            help="On a home without any bars, first write the synthetic sample "
            "(AAPL, MSFT, GOOGL, JPM, EUR/USD, BTC-USD daily).",
        ),
    ] = True,
) -> None:
    """Run the server (REST + WebSocket) on embedded defaults."""
    container = Container()
    settings = container.settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    _configure_logging(settings.log_level, settings.log_format)
    _ensure_demo_key(container, bind_host, bind_port)
    if sample:
        _ensure_sample_data(container)
    if reload:
        import uvicorn

        uvicorn.run(
            "entrypoints.server.app:app_factory",
            factory=True,
            host=bind_host,
            port=bind_port,
            reload=True,
            log_level=settings.log_level,
        )
        return
    from entrypoints.server.runner import build_server

    asyncio.run(build_server(container, bind_host, bind_port).serve())


def _configure_logging(level: str, log_format: str = "text") -> None:
    """The server's own log lines (`simutrador.*`) on stderr at SIMUTRADOR_LOG_LEVEL, in
    SIMUTRADOR_LOG_FORMAT; uvicorn configures its own loggers (in the same format). Only
    this command does it: library code leaves logging to the program that embeds it."""
    logger = logging.getLogger("simutrador")
    logger.setLevel(logging.DEBUG if level == "trace" else level.upper())
    install_handler(logger, log_format)


def _ensure_sample_data(container: Container) -> None:
    written = asyncio.run(container.market_data_service().seed_sample_if_empty())
    if not written:
        return
    out.print("No bars were stored: wrote the synthetic daily sample (--no-sample skips this).")
    out.print(
        "Sample ready: "
        + ", ".join(f"{c.symbol} ({c.bars:,} bars)" for c in written)
        + ". Bring real data with `simutrador data import`.\n"
    )


def _ensure_demo_key(container: Container, host: str, port: int) -> None:
    auth = container.auth_service()
    if asyncio.run(auth.list_keys()):
        return
    created = asyncio.run(auth.create_api_key("demo", Plan.PROFESSIONAL))
    url = f"http://{host}:{port}"
    out.print("[bold]First start:[/bold] created an API key for user 'demo' (professional plan).")
    out.print("It is shown once; keep it somewhere safe:\n")
    out.print(f"    [bold green]{created.secret}[/bold green]\n", soft_wrap=True)
    out.print("Try next, in another terminal:")
    out.print(
        f"    curl -s -X POST -H 'X-API-Key: {created.secret}' {url}/auth/token\n",
        soft_wrap=True,
        highlight=False,
    )


@keys_app.command("create")
def keys_create(
    user_id: Annotated[str, typer.Option("--user-id", help="The user the key belongs to.")],
    plan: Annotated[Plan, typer.Option(help="Plan whose limits apply.")] = Plan.FREE,
) -> None:
    """Create an API key; the secret is printed once and never stored in clear."""
    try:
        created = asyncio.run(Container().auth_service().create_api_key(user_id, plan))
    except DomainError as exc:
        fail(exc.code, exc.message, exc.details)
    out.print(f"key id  {created.record.key_id}  user {user_id}  plan {plan.value}")
    out.print(created.secret, highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids, users, plans, dates in UTC; never the secrets)."""
    records = asyncio.run(Container().auth_service().list_keys())
    if not records:
        out.print("No API keys. Create one with `simutrador keys create --user-id NAME`.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("key id", no_wrap=True)
    table.add_column("user", overflow="fold")
    table.add_column("plan", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("revoked (UTC)", no_wrap=True)
    for r in records:
        revoked = _minute(r.revoked_at) if r.revoked_at else ""
        table.add_row(r.key_id, r.user_id, r.plan.value, _minute(r.created_at), revoked)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id from `keys list`.")]) -> None:
    """Revoke a key: its tokens stop working at their next connection."""
    revocation = asyncio.run(Container().auth_service().revoke_key(key_id))
    if revocation is None:
        fail("KEY_NOT_FOUND", f"No API key with id '{key_id}'")
    record = revocation.record
    if revocation.already_revoked and record.revoked_at is not None:
        out.print(
            f"{key_id} (user {record.user_id}) was already revoked on "
            f"{_minute(record.revoked_at)} UTC; nothing changed",
            soft_wrap=True,
        )
        return
    out.print(f"revoked {key_id} (user {record.user_id})")


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def main() -> None:
    app()
