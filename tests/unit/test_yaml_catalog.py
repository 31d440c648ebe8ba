"""YamlSymbolCatalog: the shipped catalog, and errors that point at the file and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from adapters.catalog.yaml_catalog import DEFAULT_CATALOG, CatalogError, YamlSymbolCatalog
from domain.symbols import AssetClass, canonical_symbol, symbol_key
from tests.fakes import instrument

GOOD_ENTRY = """\
  - symbol: AAPL
    name: Apple Inc.
    exchange: NASDAQ
    asset_class: stock
    available_from: 1980-12-12
    available_to: 2026-10-30
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text("version: 1\nsymbols:\n" + body, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        YamlSymbolCatalog.from_file(path)
    return str(caught.value)


# --- the shipped file -------------------------------------------------------------------------


def test_shipped_catalog_size_and_markets(shipped_catalog: YamlSymbolCatalog) -> None:
    instruments = shipped_catalog.instruments()
    assert len(instruments) >= 60
    assert {"NASDAQ", "NYSE", "FOREX", "CRYPTO"} <= set(shipped_catalog.markets())
    assert list(shipped_catalog.markets()) == sorted(shipped_catalog.markets())
    assert {i.symbol.asset_class for i in instruments} == set(AssetClass)
    assert shipped_catalog.source == str(DEFAULT_CATALOG)


def test_shipped_catalog_entries_are_canonical_and_consistent(
    shipped_catalog: YamlSymbolCatalog,
) -> None:
    for item in shipped_catalog.instruments():
        ticker = item.symbol.ticker
        assert canonical_symbol(ticker, item.symbol.asset_class) == ticker
        assert item.available_from <= item.available_to
        assert shipped_catalog.lookup(item.key) is item


@pytest.mark.parametrize("ticker", ["AAPL", "MSFT"])
def test_big_names_cover_2023(shipped_catalog: YamlSymbolCatalog, ticker: str) -> None:
    item = shipped_catalog.lookup(ticker)
    assert item is not None
    assert item.exchange == "NASDAQ"
    assert item.available_from <= date(2023, 1, 3)
    assert item.available_to >= date(2023, 12, 29)


@pytest.mark.parametrize(
    ("raw", "canonical", "asset_class"),
    [
        ("eurusd", "EUR/USD", AssetClass.FOREX),
        ("btc/usd", "BTC-USD", AssetClass.CRYPTO),
        ("brk-b", "BRK.B", AssetClass.STOCK),
        ("gc", "GC", AssetClass.COMMODITY),
    ],
)
def test_lookup_by_key(
    shipped_catalog: YamlSymbolCatalog, raw: str, canonical: str, asset_class: AssetClass
) -> None:
    key = symbol_key(raw)
    assert key is not None
    item = shipped_catalog.lookup(key)
    assert item is not None
    assert (item.symbol.ticker, item.symbol.asset_class) == (canonical, asset_class)


def test_kvue_listing_date(shipped_catalog: YamlSymbolCatalog) -> None:
    item = shipped_catalog.lookup("KVUE")
    assert item is not None
    assert item.available_from == date(2023, 5, 4)


# --- loading and errors -----------------------------------------------------------------------


def test_a_small_file_loads_and_canonicalises(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_ENTRY
        + """\
  - symbol: eurusd
    name: Euro / US Dollar
    exchange: FOREX
    asset_class: forex
    available_from: 2003-12-01
    available_to: 2026-10-30
""",
    )
    catalog = YamlSymbolCatalog.from_file(path)
    assert [i.symbol.ticker for i in catalog.instruments()] == ["AAPL", "EUR/USD"]
    assert catalog.markets() == ("FOREX", "NASDAQ")
    assert catalog.source == str(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert str(path) in load_error(path)


def test_bad_yaml_syntax_names_file_and_line(tmp_path: Path) -> None:
    # Line 10 is indented one column less than the mapping it should belong to.
    path = write(tmp_path, GOOD_ENTRY + "  - symbol: MSFT\n   name: Microsoft\n")
    assert load_error(path).startswith(f"{path}:10: invalid YAML")


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    body = GOOD_ENTRY + "  - symbol: MSFT\n    name: Microsoft\n    exchange: NASDAQ\n"
    message = load_error(write(tmp_path, body))
    # The MSFT entry starts on line 9: two header lines, then six lines of AAPL.
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:9: ")
    assert "asset_class" in message
    assert "available_from" in message


def test_bad_asset_class_names_file_and_line(tmp_path: Path) -> None:
    body = GOOD_ENTRY + GOOD_ENTRY.replace("AAPL", "MSFT").replace("stock", "equity")
    message = load_error(write(tmp_path, body))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:9: ")
    assert "equity" in message


def test_colliding_symbols_name_file_and_both_lines(tmp_path: Path) -> None:
    body = (
        GOOD_ENTRY
        + GOOD_ENTRY.replace("AAPL", "MSFT")
        + GOOD_ENTRY.replace("AAPL", "aapl").replace("Apple Inc.", "Apple again")
    )
    message = load_error(write(tmp_path, body))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:15: ")
    assert "line 3" in message
    assert "AAPL" in message


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("symbol: MSFT", "symbol: M$FT", "M$FT"),
        ("asset_class: stock", "asset_class: forex", "not a valid forex symbol"),
        ("available_to: 2026-10-30", "available_to: 1970-01-01", "available_from <= available_to"),
        ("available_from: 1980-12-12", "available_from: soon", "ISO dates"),
    ],
)
def test_bad_values_name_file_and_line(tmp_path: Path, old: str, new: str, needle: str) -> None:
    second = GOOD_ENTRY.replace("AAPL", "MSFT")
    assert old in second
    message = load_error(write(tmp_path, GOOD_ENTRY + second.replace(old, new)))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:9: ")
    assert needle in message


@pytest.mark.parametrize("text", ["[]\n", "symbols: AAPL\n", "version: 1\n", ""])
def test_wrong_top_level_shape(tmp_path: Path, text: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_error(path).startswith(f"{path}:1: ")


def test_empty_symbol_list(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("symbols: []\n", encoding="utf-8")
    assert str(path) in load_error(path)


def test_direct_construction_refuses_collisions() -> None:
    with pytest.raises(CatalogError, match="collide"):
        YamlSymbolCatalog([instrument("BRK.B"), instrument("BRKB")], "<test>")
