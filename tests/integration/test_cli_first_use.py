"""What a new user meets first: bad settings and arguments are one line and exit 2, the
client's network failures are bounded and explained, `--json` errors are JSON, dates,
symbols, currencies and tables read right, and the SDK leaves the user's files and logging
alone."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.cli.app import app
from entrypoints.cli.common import human_duration
from entrypoints.sdk import AuthClient, AuthenticationError, SessionClient
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory
from tests.integration.test_cli import CREATE, Cli

REPO = Path(__file__).resolve().parents[2]
TAGS = ("<bool>", "<str>", "<int>", "<list[", "<float", "Value error")


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture
def cli(server: EmbeddedServer, tmp_path: Path) -> Cli:
    return Cli(server.http_url, server.create_api_key("nina"), tmp_path / "client-home")


# ---------------------------------------------------------------- --help of every command


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in _command_paths()}
    for expected in ("serve", "run", "symbols", "keys revoke", "session create", "data import"):
        assert expected in names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "simutrador")
def test_help_renders_cleanly(path: list[str]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for tag in TAGS:
        assert tag not in result.output, (tag, result.output)


def test_a_bad_choice_is_named_plainly() -> None:
    result = invoke("keys", "create", "--user-id", "a", "--plan", "gold")
    assert result.exit_code == 2
    assert "'gold' is not one of" in result.output
    assert "Value error" not in result.output


# ---------------------------------------------------------------- settings and arguments


def test_serve_refuses_a_port_out_of_range() -> None:
    result = invoke("serve", "--port", "70000")
    assert result.exit_code == 2
    assert "70000" in result.output
    assert "65535" in result.output


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SIMUTRADOR_PORT", "abc", "is not a whole number (allowed: a port from 1 to 65535)"),
        ("SIMUTRADOR_PORT", "70000", "allowed: a port from 1 to 65535"),
        ("SIMUTRADOR_JWT_SECRET", "short", "at least 32 bytes"),
        ("SIMUTRADOR_LOG_LEVEL", "bogus", "allowed: critical, error, warning, info, debug"),
        ("SIMUTRADOR_FREE_MAX_ACTIVE_SESSIONS", "-1", "allowed: a whole number, 0 or more"),
        ("SIMUTRADOR_MIN_CAPITAL", "20000000", "must not be above SIMUTRADOR_MAX_CAPITAL"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["keys", "list"], ["data", "list"]])
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str], name: str, value: str, says: str
) -> None:
    result = invoke(*command, env={"SIMUTRADOR_HOME": str(tmp_path), name: value})
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CONFIGURATION_ERROR: {name}=")
    assert says in line
    if name == "SIMUTRADOR_JWT_SECRET":
        assert value not in line  # a secret is never echoed


def test_a_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("")
    result = invoke("keys", "list", env={"SIMUTRADOR_HOME": str(home)})
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"CONFIGURATION_ERROR: SIMUTRADOR_HOME={str(home)!r} is refused: it must be a directory"
    )


def test_a_bad_setting_with_json_is_json(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"SIMUTRADOR_HOME": str(tmp_path), "SIMUTRADOR_LOG_LEVEL": "bogus"}
    result = invoke("data", "list", "--json", env=env)
    assert result.exit_code == 2
    error = json.loads(result.stderr)
    assert error["error_code"] == "CONFIGURATION_ERROR"
    assert "SIMUTRADOR_LOG_LEVEL" in error["message"]
    assert error["details"] == {}


def test_example_with_a_bad_count_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "concurrent_creates.py"), "abc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "argument count: 'abc' is not a whole number" in done.stderr


def _readme_session_line() -> str:
    readme = (REPO / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("SESSION=$(")]
    match = re.search(r"python -c '([^']+)'", line)
    assert match is not None, line
    return match.group(1)


@pytest.mark.parametrize(
    ("listed", "printed"), [([], ""), ([{"session_id": "sess_a"}, {"session_id": "b"}], "sess_a")]
)
def test_readme_session_line_survives_an_empty_list(
    listed: list[dict[str, str]], printed: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _readme_session_line()],
        input=json.dumps(listed),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == printed


# ---------------------------------------------------------------- the client's network


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_timeout_bounds_the_whole_command(silent_port: int, tmp_path: Path) -> None:
    cli = Cli(f"http://127.0.0.1:{silent_port}", "sk_whatever", tmp_path)
    started = time.monotonic()
    result = cli("session", "list", "--timeout", "1")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 4, elapsed  # not three attempts of 10 s
    assert result.stderr.startswith("SERVER_UNREACHABLE: ")
    assert "did not answer within 1 s" in result.stderr
    assert "Start one with `simutrador serve`" not in result.stderr  # something is there

    as_json = cli("symbols", "--timeout", "1", "--json")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stderr)
    assert error["error_code"] == "SERVER_UNREACHABLE"
    assert error["details"] == {"reason": "timeout"}
    assert as_json.stdout == ""


class _NotFound(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not found")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def not_found_url() -> Iterator[str]:
    _NotFound.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_wrong_answer_is_not_retried_and_gets_fitting_advice(
    not_found_url: str, tmp_path: Path
) -> None:
    cli = Cli(not_found_url, "sk_whatever", tmp_path)
    result = cli("session", "list")
    assert result.exit_code == 1
    assert _NotFound.requests == ["POST /auth/token"]  # asked once
    assert result.stderr.startswith(f"UNEXPECTED_RESPONSE: HTTP 404 from {not_found_url}")
    assert "is this a SimuTrador server?" in result.stderr
    assert "Is it running?" not in result.stderr
    assert "Start one" not in result.stderr


def test_an_unreachable_server_gets_the_start_one_advice(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = Cli(f"http://127.0.0.1:{port}", "sk_x", tmp_path)("session", "list", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)
    assert error["error_code"] == "SERVER_UNREACHABLE"
    assert "Start one with `simutrador serve`" in error["message"]
    assert error["details"]["reason"] == "connect"


def test_refusals_and_usage_errors_are_json_with_json(cli: Cli) -> None:
    missing = cli("session", "status", "sess_nope", "--json")
    assert missing.exit_code == 1
    assert missing.stdout == ""
    assert json.loads(missing.stderr) == {
        "error_code": "SESSION_NOT_FOUND",
        "message": "Session 'sess_nope' not found",
        "details": {"session_id": "sess_nope"},
    }
    usage = cli("session", "list", "--state", "sleeping", "--json")
    assert usage.exit_code == 2
    error = json.loads(usage.stderr)
    assert error["error_code"] == "USAGE_ERROR"
    assert "sleeping" in error["message"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.2, "1 s"), (45, "45 s"), (3410.719, "56 min"), (3600, "1 h"), (7500, "2 h 5 min")],
)
def test_human_duration(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_an_hourly_limit_says_when_to_try_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    limits = dict(PLAN_DEFAULTS)
    limits[Plan.FREE] = dataclasses.replace(PLAN_DEFAULTS[Plan.FREE], sessions_per_hour=1)
    server = server_factory(plan_limits=limits)
    cli = Cli(server.http_url, server.create_api_key("hal", Plan.FREE), tmp_path)
    created = cli.json(*CREATE[:3], "AAPL", *CREATE[4:])
    assert cli("session", "delete", created["session_id"], "--yes").exit_code == 0
    refused = cli(*CREATE[:3], "AAPL", *CREATE[4:])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("SESSION_LIMIT_EXCEEDED: ")
    assert re.search(r"try again in 59 min|try again in 1 h", refused.stderr), refused.stderr
    assert "retry_after_ms" not in refused.stderr
    as_json = json.loads(cli(*CREATE[:3], "AAPL", *CREATE[4:], "--json").stderr)
    assert 3_500_000 < as_json["details"]["retry_after_ms"] <= 3_600_001


# ---------------------------------------------------------------- dates and symbols


def test_a_one_day_session(cli: Cli) -> None:
    created = cli.json(*CREATE[:5], "2023-01-03", "--end", "2023-01-03", "--capital", "5000")
    assert created["estimated_trading_days"] == 1
    assert created["total_bars"] == 1


def test_a_weekend_is_refused_with_its_reason(cli: Cli) -> None:
    result = cli(*CREATE[:5], "2023-01-07", "--end", "2023-01-08", "--capital", "5000")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "INVALID_DATE_RANGE: 2023-01-07..2023-01-08 holds no trading day of AAPL, MSFT"
    )


def test_a_range_before_the_data_names_both_fields(cli: Cli) -> None:
    result = cli(
        *["session", "create", "--symbols", "GOOGL", "--start", "2003-01-02"],
        *["--end", "2003-12-31", "--capital", "5000"],
    )
    assert result.exit_code == 1
    assert "lies entirely before GOOGL's 1d bars" in result.stderr
    assert "fields: start_date, end_date" in result.stderr
    assert "field: end_date" not in result.stderr


def test_an_alias_is_accepted_with_a_warning(cli: Cli) -> None:
    created = cli.json(*CREATE[:3], "BTC/USD,EUR/USD", *CREATE[4:])
    assert created["symbols"] == ["BTC-USD", "EUR/USD"]
    assert created["warnings"][0] == "BTC/USD is written BTC-USD here (its canonical form)"
    assert not any(w.startswith("EUR/USD is written") for w in created["warnings"])


# ---------------------------------------------------------------- presentation


def test_capital_has_a_currency_and_commission_a_unit_that_fits(cli: Cli) -> None:
    forex = cli(*CREATE[:3], "EUR/USD", *CREATE[4:], "--commission", "0.00002")
    assert forex.exit_code == 0, forex.output
    assert "100,000.00 USD" in forex.stdout
    assert "0.00002 USD per unit" in forex.stdout
    assert "per share" not in forex.stdout
    stock = cli(*CREATE, "--commission", "0.005")
    assert "0.005 USD per share" in stock.stdout
    assert cli.json(*CREATE)["currency"] == "USD"


def test_session_list_fits_80_columns(cli: Cli) -> None:
    cli.json(*CREATE[:3], "AAPL,MSFT,GOOGL,JPM,EUR/USD", *CREATE[4:])
    cli.json(
        *CREATE[:3],
        "BTC-USD",
        "--start",
        "2023-01-03T14:30:00",
        "--end",
        "2024-02-01T10:00",
        *CREATE[-2:],
    )
    listed = cli("session", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, listed.stdout
    assert any("2023-01-03..06-30" in line and "100,000.00 USD" in line for line in lines)
    assert any("2023-01-03..2024-02-01" in line for line in lines)
    ids = re.findall(r"sess_[\w-]{22}", listed.stdout)
    assert len(ids) == 2


def test_keys_list_fits_80_columns_with_readable_times(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"SIMUTRADOR_HOME": str(tmp_path)}
    for user in ("alice", "a-rather-long-user-name@example.com"):
        assert invoke("keys", "create", "--user-id", user, env=env).exit_code == 0
    key_id = invoke("keys", "create", "--user-id", "bob", env=env).stdout.split()[2]
    assert invoke("keys", "revoke", key_id, env=env).stdout.startswith(f"revoked {key_id}")
    listed = invoke("keys", "list", env=env)
    assert listed.exit_code == 0
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80, listed.stdout
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\s", listed.stdout)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", listed.stdout)  # no microseconds

    again = invoke("keys", "revoke", key_id, env=env)
    assert again.exit_code == 0
    assert "was already revoked on" in again.stdout
    assert "nothing changed" in again.stdout
    missing = invoke("keys", "revoke", "key_nope", env=env)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("KEY_NOT_FOUND: ")


# ---------------------------------------------------------------- SDK and embedded server

EMBEDDED = """
import asyncio, logging, sys
from entrypoints.sdk import AuthClient
from entrypoints.server.embedded import EmbeddedServer

with EmbeddedServer() as server:
    key = server.create_api_key("me")
    token = asyncio.run(AuthClient(server.http_url, key).login())
    home = server.home
    print(token.user_id, home)
print("exists" if home.exists() else "removed")
print("root handlers", len(logging.getLogger().handlers))
print("uvicorn handlers", len(logging.getLogger("uvicorn").handlers))
"""


def test_embedded_server_uses_a_private_home_and_stays_quiet(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMUTRADOR_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    user, home = done.stdout.splitlines()[0].split()
    assert user == "me"
    assert not Path(home).is_relative_to(tmp_path)  # never the user's ~/.simutrador
    assert done.stdout.splitlines()[1:] == ["removed", "root handlers 0", "uvicorn handlers 0"]
    assert not (tmp_path / ".simutrador").exists()
    assert done.stderr == ""  # no httpx INFO lines, nothing at all


def test_embedded_server_with_a_home_keeps_it(tmp_path: Path) -> None:
    with EmbeddedServer(home=tmp_path / "mine", sample=False) as server:
        server.create_api_key("me")
    assert (tmp_path / "mine" / "api_keys.json").exists()


async def test_auth_client_uses_the_cli_login(
    cli: Cli, server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await asyncio.to_thread(cli, "auth", "login")).exit_code == 0
    monkeypatch.setenv("SIMUTRADOR_HOME", str(cli.home))
    monkeypatch.delenv("SIMUTRADOR_API_KEY", raising=False)
    monkeypatch.setenv("SIMUTRADOR_SERVER_URL", server.http_url)
    auth = AuthClient()
    assert auth.token is not None  # the cached login, no key needed
    async with SessionClient(auth) as client:
        assert client.ready.user_id == "nina"
        assert await client.list_sessions() == []
    assert auth.tokens_fetched == 0

    without = AuthClient(use_cached_login=False)
    with pytest.raises(AuthenticationError) as caught:
        await without.get_token()
    assert caught.value.code == "NO_API_KEY"
    elsewhere = AuthClient("http://127.0.0.1:9")  # a login is per server
    assert elsewhere.token is None
