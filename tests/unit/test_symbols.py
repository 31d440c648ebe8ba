"""Symbol identity and canonical forms, and how requests resolve against a catalog."""

from __future__ import annotations

import pytest

from adapters.catalog.yaml_catalog import YamlSymbolCatalog
from domain.errors import InvalidSymbol, ValidationFailed
from domain.symbols import (
    MAX_SYMBOL_LENGTH,
    MIXED,
    AssetClass,
    canonical_symbol,
    common_asset_class,
    common_currency,
    find_duplicates,
    reject_duplicates,
    symbol_key,
)
from tests.fakes import instrument, make_validator

EQUIVALENT = [
    (AssetClass.FOREX, "EUR/USD", ["EUR/USD", "EURUSD", "eur-usd", " eur_usd ", "Eur.Usd"]),
    (AssetClass.CRYPTO, "BTC-USD", ["BTC-USD", "BTCUSD", "btc/usd", "btc usd"]),
    (AssetClass.STOCK, "BRK.B", ["BRK.B", "BRK-B", "brk.b", "brk/b"]),
    (AssetClass.STOCK, "AAPL", ["AAPL", "aapl", " Aapl "]),
    (AssetClass.COMMODITY, "GC", ["GC", "gc", "G-C"]),
]

MALFORMED = ["", "  ", "A$B", "X" * 30, "AB\tCD", "É", "-", "a" * (MAX_SYMBOL_LENGTH + 1)]


@pytest.mark.parametrize(("asset_class", "canonical", "variants"), EQUIVALENT)
def test_variants_share_one_key_and_one_canonical_form(
    asset_class: AssetClass, canonical: str, variants: list[str]
) -> None:
    keys = {symbol_key(v) for v in variants}
    assert keys == {symbol_key(canonical)}
    assert None not in keys
    assert {canonical_symbol(v, asset_class) for v in variants} == {canonical}


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_symbols_have_no_key(raw: str) -> None:
    assert symbol_key(raw) is None
    for asset_class in AssetClass:
        assert canonical_symbol(raw, asset_class) is None


def test_key_length_limit_is_checked_before_trimming() -> None:
    assert symbol_key("A" * 16) == "A" * 16
    assert symbol_key("A" * 17) is None
    assert symbol_key(" " * (MAX_SYMBOL_LENGTH - 1) + "A") == "A"
    assert symbol_key(" " * MAX_SYMBOL_LENGTH + "A") is None


@pytest.mark.parametrize(
    ("raw", "asset_class"),
    [
        ("EURUS", AssetClass.FOREX),  # five letters
        ("EUR1SD", AssetClass.FOREX),  # a digit
        ("BTC", AssetClass.CRYPTO),  # no quote currency
        ("USDT", AssetClass.CRYPTO),  # only a quote currency
    ],
)
def test_canonical_form_needs_the_asset_class_shape(raw: str, asset_class: AssetClass) -> None:
    assert symbol_key(raw) is not None
    assert canonical_symbol(raw, asset_class) is None


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("ETHBTC", "ETH-BTC"), ("SOLUSDT", "SOL-USDT"), ("xrp-eur", "XRP-EUR")],
)
def test_crypto_quote_currencies(raw: str, canonical: str) -> None:
    assert canonical_symbol(raw, AssetClass.CRYPTO) == canonical


def test_asset_class_calendars() -> None:
    assert {a.calendar.value for a in AssetClass} == {"equity_us", "five_day", "seven_day"}
    assert AssetClass.CRYPTO.calendar.value == "seven_day"
    assert AssetClass.STOCK.calendar.value == "equity_us"


def test_find_duplicates_by_key_in_order() -> None:
    raw = ["AAPL", "EUR/USD", "aapl", "eurusd", "MSFT", "A$B", "A$B", "AAPL"]
    assert find_duplicates(raw) == ["aapl", "eurusd", "AAPL"]


def test_reject_duplicates_names_them() -> None:
    reject_duplicates(["AAPL", "MSFT"])
    with pytest.raises(ValidationFailed) as caught:
        reject_duplicates(["BRK.B", "brk-b"])
    assert caught.value.code == "VALIDATION_FAILED"
    assert caught.value.details == {"field": "symbols", "duplicates": ["brk-b"]}


# --- resolution against a catalog --------------------------------------------------------------


def test_resolution_keeps_request_order_and_returns_canonical_symbols() -> None:
    validator = make_validator()
    check = validator.validate_symbols(["eur-usd", "btcusd", "brk-b", "aapl", "gc"])
    assert check.result.valid
    assert [s.ticker for s in check.symbols] == ["EUR/USD", "BTC-USD", "BRK.B", "AAPL", "GC"]


def test_resolution_against_the_shipped_catalog(shipped_catalog: YamlSymbolCatalog) -> None:
    validator = make_validator(shipped_catalog)
    check = validator.validate_symbols(["EURUSD", "eth/usd", "brk-b", "msft"])
    assert check.result.valid
    assert [str(s) for s in check.symbols] == ["EUR/USD", "ETH-USD", "BRK.B", "MSFT"]


def test_duplicates_are_rejected_whatever_their_spelling() -> None:
    check = make_validator().validate_symbols(["EUR/USD", "AAPL", "eurusd"])
    assert not check.result.valid
    with pytest.raises(ValidationFailed) as caught:
        check.result.raise_first()
    assert caught.value.details["duplicates"] == ["eurusd"]


def test_malformed_and_unknown_symbols_are_each_listed() -> None:
    validator = make_validator()
    requested = ["AAPL", *MALFORMED[:4], "ZZZZ"]
    check = validator.validate_symbols(requested)
    with pytest.raises(InvalidSymbol) as caught:
        check.result.raise_first()
    assert caught.value.code == "INVALID_SYMBOL"
    assert caught.value.details["invalid_symbols"] == ["", "  ", "A$B", "X" * 30, "ZZZZ"]
    assert caught.value.details["supported_markets"] == [
        "COMEX",
        "CRYPTO",
        "FOREX",
        "NASDAQ",
        "NYSE",
    ]
    assert [s.ticker for s in check.symbols] == ["AAPL"]


def test_a_symbol_of_the_wrong_shape_for_its_class_is_unknown() -> None:
    # EURUS has a key, but no catalog entry can share it: forex keys are six letters.
    check = make_validator().validate_symbols(["EURUS"])
    assert isinstance(check.result.errors[0], InvalidSymbol)


def test_single_and_plural_messages() -> None:
    one = InvalidSymbol(["XXXX"], ["NASDAQ"])
    two = InvalidSymbol(["XXXX", "YYYY"], ["NASDAQ"])
    assert str(one) == "Symbol 'XXXX' is not supported"
    assert str(two) == "Symbols 'XXXX', 'YYYY' are not supported"
    assert two.invalid_symbols == ("XXXX", "YYYY")


def test_a_sessions_currency_and_asset_class_are_common_or_mixed() -> None:
    dollars = [instrument("AAPL"), instrument("EUR/USD", AssetClass.FOREX, "FOREX")]
    assert common_currency(dollars) == "USD"
    assert common_asset_class(i.symbol for i in dollars) == MIXED
    euro_stock = instrument("SAP", exchange="XETRA", currency="EUR")
    assert common_currency([*dollars, euro_stock]) == MIXED
    assert common_asset_class([dollars[1].symbol]) == "forex"
