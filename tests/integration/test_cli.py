"""`simutrador auth …` and `simutrador session …` against a real server on loopback: exit
codes, `--json` output, the token cache, and no traceback whatever goes wrong."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from domain.limits import Plan
from entrypoints.cli.app import app
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory

UNREACHABLE = "http://127.0.0.1:9"
CREATE = ["session", "create", "--symbols", "AAPL,MSFT", "--start", "2023-01-03"]
CREATE += ["--end", "2023-06-30", "--capital", "100000"]


class Cli:
    """Runs `simutrador …` in-process with a given server, key and home."""

    def __init__(self, server_url: str, api_key: str | None, home: Path) -> None:
        self.env: dict[str, str | None] = {
            "SIMUTRADOR_SERVER_URL": server_url,
            "SIMUTRADOR_API_KEY": api_key,
            "SIMUTRADOR_HOME": str(home),
            "SIMUTRADOR_TIMEOUT": None,
        }
        self.home = home
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
        result = self.runner.invoke(app, list(args), input=input, env={**self.env, **(env or {})})
        assert "Traceback" not in result.output
        if result.exception is not None:  # Typer exits via SystemExit; anything else is a bug
            assert isinstance(result.exception, SystemExit), result.exception
        return result

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cli(server: EmbeddedServer, tmp_path: Path) -> Cli:
    return Cli(server.http_url, server.create_api_key("carol"), tmp_path / "client-home")


# ---------------------------------------------------------------- sessions


def test_session_lifecycle_as_json(cli: Cli) -> None:
    created = cli.json(*CREATE, "--metadata", "strategy=momentum", "-m", "note=a=b")
    session_id = created["session_id"]
    assert session_id.startswith("sess_")
    assert created["state"] == "ready"
    assert created["symbols"] == ["AAPL", "MSFT"]
    assert created["initial_capital"] == "100000.00"  # as the server quantises it
    assert created["start_date"] == "2023-01-03T00:00:00Z"
    assert created["metadata"] == {"strategy": "momentum", "note": "a=b"}
    assert created["estimated_trading_days"] > 100

    assert cli.json("session", "status", session_id)["session_id"] == session_id
    listed = cli.json("session", "list", "--state", "ready")
    assert [s["session_id"] for s in listed] == [session_id]
    assert cli.json("session", "list", "--state", "RUNNING") == []

    deleted = cli.json("session", "delete", session_id, "--yes")
    assert deleted == {"session_id": session_id, "deleted": True}
    gone = cli("session", "status", session_id)
    assert gone.exit_code == 1
    assert gone.stderr.startswith(f"SESSION_NOT_FOUND: Session '{session_id}' not found")
    assert gone.stdout == ""


def test_human_output_shows_tables(cli: Cli) -> None:
    created = cli(*CREATE, "--commission", "0.005")
    assert created.exit_code == 0, created.output
    assert "Created session sess_" in created.stdout
    assert "2023-01-03 → 2023-06-30" in created.stdout
    assert "100,000" in created.stdout
    session_id = created.stdout.split("Created session ", 1)[1].split()[0]

    listed = cli("session", "list")
    assert listed.exit_code == 0
    assert session_id in listed.stdout  # never truncated, even at 80 columns
    assert "ready" in listed.stdout

    status = cli("session", "status", session_id)
    assert "0.005 USD per share" in status.stdout
    assert "100,000.00 USD" in status.stdout

    deleted = cli("session", "delete", session_id, "-y")
    assert f"Deleted session {session_id}" in deleted.stdout
    assert "No sessions." in cli("session", "list").stdout


def test_delete_asks_first(cli: Cli) -> None:
    session_id = cli.json(*CREATE)["session_id"]
    kept = cli("session", "delete", session_id, input="n\n")
    assert kept.exit_code == 0  # the user's own "no" is not a failure
    assert "Delete session" in kept.stderr
    assert "Nothing deleted" in kept.stdout
    assert "Aborted" not in kept.output
    assert cli.json("session", "status", session_id)["session_id"] == session_id

    confirmed = cli("session", "delete", session_id, input="y\n")
    assert confirmed.exit_code == 0
    assert cli("session", "status", session_id).exit_code == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--symbols", "XXXX1"], "INVALID_SYMBOL: Symbol 'XXXX1' is not supported"),
        (["--symbols", ","], "MISSING_SYMBOLS: "),
        (["--start", "2023-07-01"], "INVALID_DATE_RANGE: "),
        (["--capital", "5"], "INSUFFICIENT_CAPITAL: "),
        (["--capital", "1e12"], "EXCESSIVE_CAPITAL: "),
    ],
)
def test_refused_requests_exit_1_with_code_on_stderr(cli: Cli, args: list[str], code: str) -> None:
    defaults = {"--symbols": "AAPL", "--start": "2023-01-03", "--end": "2023-06-30"}
    defaults["--capital"] = "100000"
    defaults.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["session", "create", *(item for pair in defaults.items() for item in pair)]
    result = cli(*argv)
    assert result.exit_code == 1
    assert result.stderr.startswith(code)
    assert result.stdout == ""


def test_refusal_details_are_shown(cli: Cli) -> None:
    result = cli(*CREATE[:3], "AAPL,XXXX1", *CREATE[4:])
    assert "invalid_symbols: XXXX1" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["session", "create", "--start", "2023-01-03", "--end", "2023-06-30", "--capital", "1"],
        [*CREATE[:-1], "lots"],
        [*CREATE, "--metadata", "no-equals-sign"],
        ["session", "list", "--state", "sleeping"],
        ["session", "status"],
        ["session", "list", "--server-url", "ftp://example.com"],
        ["session", "list", "--timeout", "0"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str]) -> None:
    assert cli(*args).exit_code == 2


def test_other_users_session_is_access_denied(cli: Cli, server: EmbeddedServer) -> None:
    session_id = cli.json(*CREATE)["session_id"]
    other = cli("session", "status", session_id, env={"SIMUTRADOR_API_KEY": _key(server, "dan")})
    assert other.exit_code == 1
    assert other.stderr.startswith("ACCESS_DENIED: ")


def test_session_limit_on_the_free_plan(cli: Cli, server: EmbeddedServer) -> None:
    free = {"SIMUTRADOR_API_KEY": server.create_api_key("fay", Plan.FREE)}
    assert cli(*CREATE, env=free).exit_code == 0
    refused = cli(*CREATE, env=free)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("SESSION_LIMIT_EXCEEDED: ")


# ---------------------------------------------------------------- auth and the token cache


def test_login_status_logout(cli: Cli) -> None:
    login = cli("auth", "login")
    assert login.exit_code == 0, login.output
    assert "Logged in" in login.stdout
    assert "carol" in login.stdout
    cache = cli.home / "token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert str(cli.env["SIMUTRADOR_API_KEY"]) not in cache.read_text()  # never stored

    status = cli.json("auth", "status")
    assert status["logged_in"] is True
    assert status["user_id"] == "carol"
    assert status["plan"] == "professional"
    assert status["expired"] is False
    assert "valid until" in cli("auth", "status").stdout

    # Logged in: session commands need no key.
    no_key = {"SIMUTRADOR_API_KEY": None}
    assert cli("session", "list", "--json", env=no_key).stdout.strip() == "[]"

    logout = cli("auth", "logout")
    assert logout.exit_code == 0
    assert not cache.exists()
    after = cli("auth", "status")
    assert after.exit_code == 1
    assert after.stderr.startswith("NOT_LOGGED_IN: ")
    assert cli("auth", "logout").exit_code == 0  # already logged out: nothing to do
    nothing = cli("session", "list", env=no_key)
    assert nothing.exit_code == 1
    assert nothing.stderr.startswith("NO_API_KEY: ")


def test_login_with_a_bad_key_exits_1(cli: Cli) -> None:
    result = cli("auth", "login", "--api-key", "sk_not_a_key")
    assert result.exit_code == 1
    assert result.stderr.startswith("INVALID_API_KEY: ")
    assert not (cli.home / "token.json").exists()


def test_login_prompts_for_the_key(cli: Cli) -> None:
    key = cli.env["SIMUTRADOR_API_KEY"]
    assert key is not None
    result = cli("auth", "login", input=f"{key}\n", env={"SIMUTRADOR_API_KEY": None})
    assert result.exit_code == 0, result.output
    assert key not in result.output  # hidden input


def test_status_is_per_server(cli: Cli) -> None:
    assert cli("auth", "login").exit_code == 0
    elsewhere = cli("auth", "status", "--server-url", "http://127.0.0.1:9")
    assert elsewhere.exit_code == 1
    assert "NOT_LOGGED_IN" in elsewhere.stderr


def test_a_renewed_token_replaces_the_cached_one(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(token_ttl_seconds=2)
    cli = Cli(server.http_url, server.create_api_key("rene"), tmp_path / "home")
    assert cli("auth", "login").exit_code == 0
    cached = (cli.home / "token.json").read_text()
    time.sleep(1.1)  # past half the token's lifetime
    assert cli("session", "list").exit_code == 0
    assert (cli.home / "token.json").read_text() != cached


def test_a_different_key_does_not_use_the_cached_login(cli: Cli, server: EmbeddedServer) -> None:
    assert cli("auth", "login").exit_code == 0
    mine = cli.json(*CREATE)["session_id"]
    theirs = cli("session", "list", "--json", env={"SIMUTRADOR_API_KEY": _key(server, "eve")})
    assert mine not in theirs.stdout
    assert json.loads(theirs.stdout) == []


# ---------------------------------------------------------------- unreachable server


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    cli = Cli(UNREACHABLE, "sk_whatever", tmp_path)
    for args in (["session", "list"], ["auth", "login"], ["session", "status", "sess_x"]):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith(
            "SERVER_UNREACHABLE: Cannot reach the SimuTrador server at http://127.0.0.1:9"
        )
        assert "simutrador serve" in result.stderr


def test_installed_command_has_no_traceback_when_unreachable(tmp_path: Path) -> None:
    executable = Path(sys.executable).with_name("simutrador")
    env = {
        **os.environ,
        "SIMUTRADOR_SERVER_URL": UNREACHABLE,
        "SIMUTRADOR_API_KEY": "sk_whatever",
        "SIMUTRADOR_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [str(executable), "session", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("SERVER_UNREACHABLE: ")
    assert done.stdout == ""


def _key(server: EmbeddedServer, user: str) -> str:
    return server.create_api_key(user)
