"""YamlSymbolCatalog: the shipped catalog (v2: instrument metadata, no data ranges), errors that
point at the file and line, and LayeredSymbolCatalog's user layer (`instruments.yaml`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.catalog.yaml_catalog import (
    DEFAULT_CATALOG,
    CatalogError,
    LayeredSymbolCatalog,
    YamlSymbolCatalog,
)
from domain.errors import ValidationFailed
from domain.symbols import AssetClass, Instrument, Symbol, canonical_symbol, symbol_key
from tests.fakes import instrument

GOOD_ENTRY = """\
  - symbol: AAPL
    name: Apple Inc.
    exchange: NASDAQ
    asset_class: stock
    currency: USD
    lot_size: "1"
    tick_size: "0.01"
    listed: 1980-12-12
"""
EXCHANGES = {"NASDAQ", "NYSE", "FOREX", "CRYPTO", "COMEX", "NYMEX", "CBOT"}
"""The exchanges whose hours domain/exchanges.py knows (the catalog header lists them)."""


def write(tmp_path: Path, body: str, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text("version: 2\nsymbols:\n" + body, encoding="utf-8")
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
        assert shipped_catalog.lookup(item.key) is item
        assert item.exchange in EXCHANGES, ticker
        assert item.lot_size > 0
        assert item.tick_size > 0
        assert item.listed is None or item.listed < date(2024, 1, 1)
        if item.symbol.asset_class is AssetClass.FOREX:
            assert item.currency == ticker.split("/")[1]  # quoted in the quote currency
        else:
            assert item.currency == "USD", ticker


@pytest.mark.parametrize(
    ("ticker", "exchange", "currency", "lot_size", "tick_size"),
    [
        ("AAPL", "NASDAQ", "USD", "1", "0.01"),
        ("EUR/USD", "FOREX", "USD", "1000", "0.00001"),
        ("USD/JPY", "FOREX", "JPY", "1000", "0.001"),
        ("BTC-USD", "CRYPTO", "USD", "0.00001", "0.01"),
        ("GC", "COMEX", "USD", "1", "0.1"),
    ],
)
def test_shipped_instrument_metadata(
    shipped_catalog: YamlSymbolCatalog,
    ticker: str,
    exchange: str,
    currency: str,
    lot_size: str,
    tick_size: str,
) -> None:
    key = symbol_key(ticker)
    assert key is not None
    item = shipped_catalog.lookup(key)
    assert item is not None
    assert (item.exchange, item.currency) == (exchange, currency)
    assert (item.lot_size, item.tick_size) == (Decimal(lot_size), Decimal(tick_size))


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


def test_listing_dates(shipped_catalog: YamlSymbolCatalog) -> None:
    kvue, txn = shipped_catalog.lookup("KVUE"), shipped_catalog.lookup("TXN")
    assert kvue is not None
    assert txn is not None
    assert kvue.listed == date(2023, 5, 4)
    assert txn.listed is None  # optional: not every entry has one


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
""",
    )
    catalog = YamlSymbolCatalog.from_file(path)
    assert [i.symbol.ticker for i in catalog.instruments()] == ["AAPL", "EUR/USD"]
    aapl, eurusd = catalog.instruments()
    assert aapl == Instrument(
        Symbol("AAPL", AssetClass.STOCK),
        "Apple Inc.",
        "NASDAQ",
        "USD",
        Decimal(1),
        Decimal("0.01"),
        date(1980, 12, 12),
    )
    # Only symbol, name, exchange and asset_class are required; the rest have defaults.
    assert (eurusd.currency, eurusd.lot_size, eurusd.tick_size, eurusd.listed) == (
        "USD",
        Decimal(1),
        Decimal("0.01"),
        None,
    )
    assert catalog.markets() == ("FOREX", "NASDAQ")
    assert catalog.source == str(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert str(path) in load_error(path)


def test_bad_yaml_syntax_names_file_and_line(tmp_path: Path) -> None:
    # Line 12 is indented one column less than the mapping it should belong to.
    path = write(tmp_path, GOOD_ENTRY + "  - symbol: MSFT\n   name: Microsoft\n")
    assert load_error(path).startswith(f"{path}:12: invalid YAML")


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    body = GOOD_ENTRY + "  - symbol: MSFT\n    name: Microsoft\n    exchange: NASDAQ\n"
    message = load_error(write(tmp_path, body))
    # The MSFT entry starts on line 11: two header lines, then eight lines of AAPL.
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:11: ")
    assert message.endswith("symbol entry lacks asset_class")


def test_bad_asset_class_names_file_and_line(tmp_path: Path) -> None:
    body = GOOD_ENTRY + GOOD_ENTRY.replace("AAPL", "MSFT").replace("stock", "equity")
    message = load_error(write(tmp_path, body))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:11: ")
    assert "equity" in message


def test_colliding_symbols_name_file_and_both_lines(tmp_path: Path) -> None:
    body = (
        GOOD_ENTRY
        + GOOD_ENTRY.replace("AAPL", "MSFT")
        + GOOD_ENTRY.replace("AAPL", "aapl").replace("Apple Inc.", "Apple again")
    )
    message = load_error(write(tmp_path, body))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:19: ")
    assert "line 3" in message
    assert "AAPL" in message


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("symbol: MSFT", "symbol: M$FT", "M$FT"),
        ("asset_class: stock", "asset_class: forex", "not a valid forex symbol"),
        ("listed: 1980-12-12", "listed: soon", "listed must be an ISO date"),
        ("listed: 1980-12-12", "listed: 19801212", "listed must be an ISO date"),
        ('lot_size: "1"', 'lot_size: "0"', "lot_size must be a positive decimal, not '0'"),
        ('lot_size: "1"', "lot_size: -5", "lot_size must be a positive decimal, not '-5'"),
        ('lot_size: "1"', "lot_size: lots", "lot_size must be a positive decimal, not 'lots'"),
        ('tick_size: "0.01"', 'tick_size: "NaN"', "tick_size must be a positive decimal"),
        ('tick_size: "0.01"', 'tick_size: "inf"', "tick_size must be a positive decimal"),
        ("currency: USD", "currency: US", "currency 'US' is not a currency code"),
        ("currency: USD", "currency: U$D", "currency 'U$D' is not a currency code"),
        ("currency: USD", "currency: DOLLARS", "currency 'DOLLARS' is not a currency code"),
    ],
)
def test_bad_values_name_file_and_line(tmp_path: Path, old: str, new: str, needle: str) -> None:
    second = GOOD_ENTRY.replace("AAPL", "MSFT")
    assert old in second
    message = load_error(write(tmp_path, GOOD_ENTRY + second.replace(old, new)))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}:11: ")
    assert needle in message


def test_currency_is_upper_cased(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ENTRY.replace("currency: USD", "currency: usdt"))
    (item,) = YamlSymbolCatalog.from_file(path).instruments()
    assert item.currency == "USDT"


@pytest.mark.parametrize("text", ["[]\n", "symbols: AAPL\n", "version: 2\n", ""])
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


def test_the_read_only_catalog_refuses_add(shipped_catalog: YamlSymbolCatalog) -> None:
    with pytest.raises(ValidationFailed, match="read-only"):
        shipped_catalog.add(instrument("NEWCO"))


# --- the user layer: instruments.yaml in SIMUTRADOR_HOME --------------------------------------

SOL2 = instrument(
    "SOL2-USD",
    AssetClass.CRYPTO,
    "CRYPTO",
    "Solana two",
    lot_size=Decimal("0.001"),
    listed=date(2021, 3, 1),
)


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A small shipped catalog, in its own file so a test can see that it is never touched."""
    return write(tmp_path, GOOD_ENTRY, "shipped.yaml")


def test_without_a_user_file_the_layer_is_the_shipped_catalog(
    shipped: Path, tmp_path: Path
) -> None:
    catalog = LayeredSymbolCatalog.from_files(shipped, tmp_path / "home" / "instruments.yaml")
    assert [i.symbol.ticker for i in catalog.instruments()] == ["AAPL"]
    assert catalog.markets() == ("NASDAQ",)


def test_add_writes_the_user_file_and_a_fresh_catalog_reads_it_back(
    shipped: Path, tmp_path: Path
) -> None:
    user = tmp_path / "home" / "instruments.yaml"
    shipped_text = shipped.read_text(encoding="utf-8")
    catalog = LayeredSymbolCatalog.from_files(shipped, user)

    catalog.add(SOL2)
    catalog.add(instrument("NEWCO", exchange="NYSE"))

    assert user.is_file()
    assert shipped.read_text(encoding="utf-8") == shipped_text  # the shipped file is untouched
    assert catalog.lookup("SOL2USD") == SOL2  # seen at once by the catalog that added it
    assert catalog.markets() == ("CRYPTO", "NASDAQ", "NYSE")
    # Another process (a server started later) reads the same instruments back, exactly.
    reread = LayeredSymbolCatalog.from_files(shipped, user)
    assert [i.symbol.ticker for i in reread.instruments()] == ["AAPL", "SOL2-USD", "NEWCO"]
    assert reread.lookup("SOL2USD") == SOL2
    # The user file holds only the user's instruments, as a valid v2 catalog on its own.
    alone = YamlSymbolCatalog.from_file(user)
    assert [i.symbol.ticker for i in alone.instruments()] == ["SOL2-USD", "NEWCO"]


def test_a_running_catalog_sees_instruments_added_by_another_process(
    shipped: Path, tmp_path: Path
) -> None:
    user = tmp_path / "instruments.yaml"
    server = LayeredSymbolCatalog.from_files(shipped, user)
    assert server.lookup("SOL2USD") is None
    LayeredSymbolCatalog.from_files(shipped, user).add(SOL2)  # e.g. `simutrador data import`
    server.RECHECK_SECONDS = 0.0  # instead of waiting out the one-second recheck interval
    assert server.lookup("SOL2USD") == SOL2


@pytest.mark.parametrize("spelling", ["AAPL", "aapl", "SOL2-USD", "sol2/usd"])
def test_add_refuses_a_symbol_already_in_either_layer(
    shipped: Path, tmp_path: Path, spelling: str
) -> None:
    user = tmp_path / "instruments.yaml"
    catalog = LayeredSymbolCatalog.from_files(shipped, user)
    catalog.add(SOL2)
    before = user.read_text(encoding="utf-8")
    asset_class = AssetClass.CRYPTO if "SOL" in spelling.upper() else AssetClass.STOCK
    ticker = canonical_symbol(spelling, asset_class)
    assert ticker is not None
    with pytest.raises(ValidationFailed) as caught:
        catalog.add(instrument(ticker, asset_class))
    assert caught.value.details == {"field": "symbol"}
    assert "already in the catalog" in caught.value.message
    assert user.read_text(encoding="utf-8") == before
    assert len(catalog.instruments()) == 2
