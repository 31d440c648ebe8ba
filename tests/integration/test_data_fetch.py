"""`simutrador data fetch` against a local HTTP server (127.0.0.1) that serves recorded
Stooq and Yahoo answers (tests/data/fetch/): what is asked for, what gets stored, Yahoo's
`null` rows skipped and counted, other bad rows refusing everything, and one line when the
source cannot be reached."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner, Result

from entrypoints.cli.app import app

RECORDED = Path(__file__).resolve().parents[1] / "data" / "fetch"
SPAN = ["--start", "2024-01-02", "--end", "2024-01-08"]


@dataclass
class Recorded:
    """The answers to serve, by path, and the requests seen (path, query)."""

    routes: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)


def handler_for(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            recorded.seen.append((url.path, parse_qs(url.query)))
            status, name = recorded.routes.get(url.path, (404, ""))
            body = (RECORDED / name).read_bytes() if name else b"not found"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def source() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(recorded))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class DataCli:
    def __init__(self, home: Path, base_url: str) -> None:
        self.env = {
            "SIMUTRADOR_HOME": str(home),
            "SIMUTRADOR_STOOQ_URL": base_url,
            "SIMUTRADOR_YAHOO_URL": base_url + "/yahoo",
            "COLUMNS": "200",
        }
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        result = self.runner.invoke(app, ["data", *args], env=self.env)
        assert "Traceback" not in result.output
        return result

    def stored(self) -> list[dict[str, Any]]:
        listed = self("list", "--json")
        assert listed.exit_code == 0, listed.output
        rows: list[dict[str, Any]] = json.loads(listed.stdout)
        return rows


@pytest.fixture
def cli(tmp_path: Path, source: tuple[str, Recorded]) -> DataCli:
    return DataCli(tmp_path / "home", source[0])


def test_stooq_bars_are_asked_for_and_stored(cli: DataCli, source: tuple[str, Recorded]) -> None:
    _, recorded = source
    recorded.routes["/q/d/l/"] = (200, "stooq_aapl_us.csv")
    result = cli("fetch", "AAPL", "--source", "stooq", *SPAN)
    assert result.exit_code == 0, result.output
    assert "Fetched 5 1d bars of AAPL from stooq" in result.stdout
    [(path, query)] = recorded.seen
    assert path == "/q/d/l/"
    assert query == {"s": ["aapl.us"], "d1": ["20240102"], "d2": ["20240108"], "i": ["d"]}
    [stored] = cli.stored()
    assert (stored["symbol"], stored["bars"], stored["source"]) == ("AAPL", 5, "imported")
    assert stored["first"].startswith("2024-01-02")
    assert stored["last"].startswith("2024-01-08")


def test_yahoo_null_rows_are_skipped_and_counted(
    cli: DataCli, source: tuple[str, Recorded]
) -> None:
    _, recorded = source
    recorded.routes["/yahoo/v8/finance/chart/AAPL"] = (200, "yahoo_aapl.json")
    result = cli("fetch", "AAPL", "--source", "yahoo", *SPAN)
    assert result.exit_code == 0, result.output
    text = result.stdout.replace("\n", " ")
    assert "Fetched 4 1d bars of AAPL from yahoo" in text
    assert "skipped 1 `null` row (days without trading)" in text
    [(_, query)] = recorded.seen
    assert query["interval"] == ["1d"]
    assert int(query["period2"][0]) - int(query["period1"][0]) == 7 * 86_400
    assert cli.stored()[0]["bars"] == 4


def test_a_yahoo_row_partly_null_refuses_the_whole_download(
    cli: DataCli, source: tuple[str, Recorded]
) -> None:
    _, recorded = source
    recorded.routes["/yahoo/v8/finance/chart/AAPL"] = (200, "yahoo_aapl_partly_null.json")
    result = cli("fetch", "AAPL", "--source", "yahoo", *SPAN)
    assert result.exit_code == 1
    assert result.stderr.startswith("INVALID_BARS: 1 bad line; nothing was imported")
    assert "high is not a number: 'null'" in result.stderr
    assert cli.stored() == []


@pytest.mark.parametrize(
    ("route", "answer", "said"),
    [
        ("/q/d/l/", "stooq_no_data.txt", "Stooq has no bars of aapl.us"),
        ("/yahoo/v8/finance/chart/AAPL", "yahoo_not_found.json", "No data found"),
    ],
)
def test_a_source_without_the_bars_says_so(
    cli: DataCli, source: tuple[str, Recorded], route: str, answer: str, said: str
) -> None:
    _, recorded = source
    recorded.routes[route] = (404 if "yahoo" in route else 200, answer)
    which = "yahoo" if "yahoo" in route else "stooq"
    result = cli("fetch", "AAPL", "--source", which, *SPAN)
    assert result.exit_code == 1
    assert result.stderr.startswith("DOWNLOAD_FAILED: ")
    assert said in result.stderr


def test_without_a_network_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    cli = DataCli(tmp_path / "home", closed)  # nothing listens there once the probe is closed
    result = cli("fetch", "AAPL", "--source", "stooq", *SPAN)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("NETWORK_UNAVAILABLE: Cannot reach 127.0.0.1")


def test_fetched_bars_replace_synthetic_ones_and_say_so(
    tmp_path: Path, sample_bars: Path, source: tuple[str, Recorded]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(sample_bars, home / "bars.db")
    base, recorded = source
    recorded.routes["/q/d/l/"] = (200, "stooq_aapl_us.csv")
    cli = DataCli(home, base)
    result = cli("fetch", "AAPL", "--source", "stooq", *SPAN)
    assert result.exit_code == 0, result.output
    assert "they replace its synthetic bars" in result.stdout.replace("\n", " ")
    [aapl] = [c for c in cli.stored() if c["symbol"] == "AAPL"]
    assert (aapl["bars"], aapl["source"]) == (5, "imported")


def test_overlapping_bars_name_replace(cli: DataCli, source: tuple[str, Recorded]) -> None:
    _, recorded = source
    recorded.routes["/q/d/l/"] = (200, "stooq_aapl_us.csv")
    assert cli("fetch", "AAPL", "--source", "stooq", *SPAN).exit_code == 0
    again = cli("fetch", "AAPL", "--source", "stooq", *SPAN)
    assert again.exit_code == 1
    assert again.stderr.startswith("DATA_CONFLICT: ")
    assert "pass --replace to overwrite them" in again.stderr.replace("\n", " ")
    assert cli("fetch", "AAPL", "--source", "stooq", *SPAN, "--replace").exit_code == 0


def test_stooq_has_daily_bars_only(cli: DataCli) -> None:
    result = cli("fetch", "AAPL", "--source", "stooq", *SPAN, "--timeframe", "1h")
    assert result.exit_code == 1
    assert "daily bars only" in result.stderr


def test_a_symbol_outside_the_catalog_is_refused_before_any_download(
    cli: DataCli, source: tuple[str, Recorded]
) -> None:
    result = cli("fetch", "AAPL", "NOTASYMBOL", "--source", "stooq", *SPAN)
    assert result.exit_code == 1
    assert result.stderr.startswith("INVALID_SYMBOL: 'NOTASYMBOL'")
    assert source[1].seen == []


def test_one_symbol_is_one_symbol(cli: DataCli) -> None:
    result = cli("sample", "--symbols", "AAPL", "--years", "1")
    assert result.exit_code == 0, result.output
    assert "synthetic daily bars for 1 symbol\n" in result.stdout
