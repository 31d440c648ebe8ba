"""`simutrador data …` against a real SIMUTRADOR_HOME (SQLite bar store, user catalog): each
import layout, list, remove, sample, and refusals that write nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from entrypoints.cli.app import app

GENERIC = "timestamp,open,high,low,close,volume\n"


class DataCli:
    """Runs `simutrador data …` in-process against one home directory."""

    def __init__(self, home: Path, files: Path) -> None:
        self.env = {"SIMUTRADOR_HOME": str(home), "COLUMNS": "80"}
        self.files = files
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        result = self.runner.invoke(app, ["data", *args], input=input, env=self.env)
        assert "Traceback" not in result.output
        if result.exception is not None:  # Typer exits via SystemExit; anything else is a bug
            assert isinstance(result.exception, SystemExit), result.exception
        return result

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def stored(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(self.ok("list", "--json").stdout)
        return listed

    def file(self, name: str, text: str) -> str:
        path = self.files / name
        path.write_text(text)
        return str(path)


@pytest.fixture
def cli(tmp_path: Path) -> DataCli:
    files = tmp_path / "files"
    files.mkdir()
    return DataCli(tmp_path / "home", files)


def daily(*days: int, price: str = "10.5") -> str:
    return GENERIC + "".join(f"2023-01-{d:02d},{price},11,10,{price},100\n" for d in days)


# ---------------------------------------------------------------- importing each layout


def test_import_generic_daily_then_list(cli: DataCli) -> None:
    result = cli.ok("import", cli.file("aapl.csv", daily(3, 4, 5)), "--symbol", "aapl")
    assert "Imported 3 1d bars of AAPL" in result.stdout
    assert cli.stored() == [
        {
            "symbol": "AAPL",
            "timeframe": "1d",
            "first": "2023-01-03T21:00:00Z",
            "last": "2023-01-05T21:00:00Z",
            "bars": 3,
            "source": "imported",
        }
    ]
    table = cli.ok("list").stdout
    assert "AAPL" in table
    assert "2023-01-03" in table
    assert "imported" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_import_yahoo_adjusted(cli: DataCli) -> None:
    path = cli.file(
        "msft.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2023-01-03,243.080002,245.750000,237.399994,239.580002,235.711609,25740000\n"
        "2023-01-04,232.279999,232.869995,225.960007,229.100006,225.400864,50623400\n",
    )
    cli.ok("import", path, "--symbol", "MSFT", "--format", "yahoo", "--adjusted")
    assert [(c["symbol"], c["bars"]) for c in cli.stored()] == [("MSFT", 2)]


def test_import_stooq_intraday_and_epoch_files(cli: DataCli) -> None:
    stooq = cli.file(
        "aapl.us.txt",
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        "AAPL.US,5,20230103,093000,130.28,130.9,130.1,130.5,1000,0\n"
        "AAPL.US,5,20230103,093500,130.5,130.9,130.2,130.3,900,0\n",
    )
    cli.ok("import", stooq, "--symbol", "AAPL", "--timeframe", "5m")
    epochs = cli.file(
        "btc.csv",
        GENERIC + "1672531200000,16500.5,16600,16400,16550.25,12.5\n"
        "1672534800000,16550.25,16700,16500,16650,8.25\n",
    )
    cli.ok("import", epochs, "--symbol", "BTC-USD", "-t", "1h")
    stored = {(c["symbol"], c["timeframe"]): c for c in cli.stored()}
    # starts 09:30 and 09:35 New York (14:30 UTC); each 5-minute bar closes 5 minutes later
    assert stored["AAPL", "5m"]["first"] == "2023-01-03T14:35:00Z"
    assert stored["AAPL", "5m"]["last"] == "2023-01-03T14:40:00Z"
    assert stored["BTC-USD", "1h"]["first"] == "2023-01-01T01:00:00Z"
    assert stored["BTC-USD", "1h"]["bars"] == 2


def test_tz_option_reads_naive_intraday_times_in_that_zone(cli: DataCli) -> None:
    path = cli.file("eur.csv", GENERIC + "2023-01-03 09:00:00,1.05,1.06,1.04,1.055,0\n")
    cli.ok("import", path, "--symbol", "EUR/USD", "-t", "1h", "--tz", "Europe/London")
    assert cli.stored()[0]["first"] == "2023-01-03T10:00:00Z"


# ---------------------------------------------------------------- refusals


def test_bad_rows_exit_1_listing_every_line_and_nothing_is_written(cli: DataCli) -> None:
    text = daily(3, 4) + "2023-01-04,10,11,10,10,100\n" + "2023-01-06,10,9,8,10,100\n"
    result = cli("import", path := cli.file("bad.csv", text), "--symbol", "AAPL")
    assert result.exit_code == 1
    assert result.stderr.startswith("INVALID_BARS: 2 bad lines; nothing was imported")
    assert f"{path}:4: duplicate time" in result.stderr
    assert f"{path}:5: high is below max(open, close)" in result.stderr
    assert cli.stored() == []


def test_more_than_twenty_bad_lines_are_summed_up(cli: DataCli) -> None:
    text = GENERIC + "".join(f"2023-02-{d:02d},10,9,8,10,100\n" for d in range(1, 26))
    result = cli("import", cli.file("bad.csv", text), "--symbol", "AAPL")
    assert result.exit_code == 1
    assert "25 bad lines" in result.stderr
    assert result.stderr.count("high is below") == 20
    assert "… and 5 more" in result.stderr
    assert cli.stored() == []


def test_a_bad_second_file_refuses_the_first_too(cli: DataCli) -> None:
    good = cli.file("a.csv", daily(3, 4))
    bad = cli.file("b.csv", daily(4, 5))  # 4 Jan again: out of order across the files
    result = cli("import", good, bad, "--symbol", "AAPL")
    assert result.exit_code == 1
    assert f"{bad}:2: duplicate time" in result.stderr
    assert cli.stored() == []


def test_unknown_symbol_needs_an_asset_class_then_joins_the_user_catalog(cli: DataCli) -> None:
    path = cli.file("acme.csv", daily(3, 4))
    refused = cli("import", path, "--symbol", "ACME")
    assert refused.exit_code == 1
    assert "INVALID_SYMBOL" in refused.stderr
    assert "--asset-class" in refused.stderr
    assert cli.stored() == []
    added = cli.ok(
        "import", path, "--symbol", "ACME", "--asset-class", "stock", "--name", "Acme Corp"
    )
    assert "added ACME to your catalog" in added.stdout
    # now the catalog knows it: no --asset-class needed
    cli.ok("import", cli.file("more.csv", daily(5)), "--symbol", "acme")
    assert [(c["symbol"], c["bars"]) for c in cli.stored()] == [("ACME", 3)]


def test_a_refused_file_does_not_add_the_symbol(cli: DataCli) -> None:
    bad = cli.file("bad.csv", GENERIC + "2023-01-03,10,9,8,10,100\n")
    assert cli("import", bad, "--symbol", "ACME", "--asset-class", "stock").exit_code == 1
    assert cli("import", cli.file("ok.csv", daily(3)), "--symbol", "ACME").exit_code == 1


def test_replace_is_needed_to_overwrite_imported_bars(cli: DataCli) -> None:
    cli.ok("import", cli.file("a.csv", daily(3, 4, 5)), "--symbol", "AAPL")
    overlapping = cli.file("b.csv", daily(5, 6, price="11"))
    refused = cli("import", overlapping, "--symbol", "AAPL")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("DATA_CONFLICT")
    assert cli.stored()[0]["bars"] == 3
    cli.ok("import", overlapping, "--symbol", "AAPL", "--replace")
    (stored,) = cli.stored()
    assert (stored["first"], stored["last"], stored["bars"]) == (
        "2023-01-03T21:00:00Z",
        "2023-01-06T21:00:00Z",
        4,
    )


# ---------------------------------------------------------------- sample, import over it, remove


def test_sample_then_import_replaces_the_synthetic_series(cli: DataCli) -> None:
    written = cli.ok("sample", "--symbols", "MSFT,AAPL", "--years", "1")
    assert "synthetic" in written.stdout
    stored = {c["symbol"]: c for c in cli.stored()}
    assert {s: c["source"] for s, c in stored.items()} == {
        "AAPL": "synthetic",
        "MSFT": "synthetic",
    }
    assert stored["MSFT"]["bars"] > 200
    cli.ok("import", cli.file("msft.csv", daily(3, 4)), "--symbol", "MSFT")
    stored = {c["symbol"]: c for c in cli.stored()}
    assert (stored["MSFT"]["source"], stored["MSFT"]["bars"]) == ("imported", 2)
    assert stored["AAPL"]["source"] == "synthetic"
    again = cli.ok("sample", "--symbols", "MSFT")
    assert "Nothing written" in again.stdout
    assert {c["symbol"]: c["source"] for c in cli.stored()}["MSFT"] == "imported"


def test_remove_asks_first(cli: DataCli) -> None:
    cli.ok("import", cli.file("a.csv", daily(3, 4)), "--symbol", "AAPL")
    intraday = GENERIC + "2023-01-03 09:30:00,10,11,10,10.5,1\n"
    cli.ok("import", cli.file("b.csv", intraday), "--symbol", "AAPL", "-t", "1h")
    kept = cli.ok("remove", "AAPL", input="n\n")
    assert "Nothing removed" in kept.stdout
    assert len(cli.stored()) == 2
    cli.ok("remove", "aapl", "--timeframe", "1h", "--yes")
    assert [c["timeframe"] for c in cli.stored()] == ["1d"]
    removed = cli.ok("remove", "AAPL", input="y\n")
    assert "Removed 2 bars of AAPL" in removed.stdout
    assert cli.stored() == []
    assert "Nothing removed" in cli.ok("remove", "AAPL", "--yes").stdout


def test_list_on_an_empty_home(cli: DataCli) -> None:
    assert cli.stored() == []
    assert "No bars stored" in cli.ok("list").stdout
