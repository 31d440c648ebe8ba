"""`simutrador auth login|status|logout`: a cached token, so later commands need no key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from entrypoints.cli.common import (
    DEFAULT_URL,
    ApiKeyOption,
    JsonOption,
    ServerUrlOption,
    err,
    fail,
    fail_with,
    out,
    print_json,
)
from entrypoints.cli.token_cache import CachedLogin, TokenCache, key_fingerprint
from entrypoints.sdk import AuthClient, SimuTradorError

auth_app = typer.Typer(
    help="Log in with an API key; the token is cached under SIMUTRADOR_HOME.",
    no_args_is_help=True,
)


@auth_app.command()
def login(
    server_url: ServerUrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the API key with the server and cache the token it grants (file mode 0600)."""
    key = api_key or typer.prompt("API key", hide_input=True, err=True)
    try:
        token = asyncio.run(AuthClient(server_url, key).login())
    except SimuTradorError as exc:
        fail_with(exc)
    cache = TokenCache()
    login = CachedLogin(server_url, key_fingerprint(key), token)
    try:
        cache.save(login)
    except OSError as exc:
        fail("CACHE_WRITE_FAILED", f"Cannot write {cache.path}: {exc.strerror or exc}")
    if as_json:
        print_json(_status(login))
        return
    out.print(
        f"[green]Logged in[/green] to {escape(server_url)} as [bold]{escape(token.user_id)}"
        f"[/bold] ({escape(token.plan)} plan)."
    )
    out.print(f"Token valid until {_instant(login)}; cached in {escape(str(cache.path))}.")


@auth_app.command()
def status(server_url: ServerUrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show the cached login for the server; exit 1 when there is none or it has expired."""
    login = TokenCache().load()
    if login is None or login.server_url != server_url:
        if as_json:
            print_json({"logged_in": False, "server_url": server_url})
        where = f" (the cached login is for {login.server_url})" if login else ""
        fail("NOT_LOGGED_IN", f"Not logged in to {server_url}{where}; run `simutrador auth login`")
    expired = login.token.seconds_left() <= 0
    if as_json:
        print_json(_status(login))
    else:
        table = Table(show_header=False, box=None)
        table.add_row("server", escape(login.server_url))
        table.add_row("user", escape(login.token.user_id))
        table.add_row("plan", escape(login.token.plan))
        state = "[red]expired[/red]" if expired else "[green]valid[/green]"
        table.add_row("token", f"{state} until {_instant(login)}")
        out.print(table)
    if expired:
        fail("TOKEN_EXPIRED", "The cached token has expired; run `simutrador auth login`")


@auth_app.command()
def logout() -> None:
    """Delete the cached token."""
    cache = TokenCache()
    if cache.delete():
        out.print(f"Logged out (removed {escape(str(cache.path))}).")
    else:
        err.print("Not logged in; nothing to do.")


def _status(login: CachedLogin) -> dict[str, Any]:
    return {
        "logged_in": True,
        "server_url": login.server_url,
        "user_id": login.token.user_id,
        "plan": login.token.plan,
        "expires_at": login.token.expires_at,
        "expired": login.token.seconds_left() <= 0,
    }


def _instant(login: CachedLogin) -> str:
    left = int(login.token.seconds_left(time.time()))
    when = login.token.expires_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    if left <= 0:
        return when
    return f"{when} ({left // 60} min {left % 60} s left)"
