"""Symbols and instruments: asset classes, canonical forms and normalisation (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from domain.calendar import TradingCalendar
from domain.errors import ValidationFailed


class AssetClass(StrEnum):
    STOCK = "stock"
    FOREX = "forex"
    CRYPTO = "crypto"
    COMMODITY = "commodity"

    @property
    def calendar(self) -> TradingCalendar:
        return _CALENDARS[self]


_CALENDARS = {
    AssetClass.STOCK: TradingCalendar.EQUITY_US,
    AssetClass.FOREX: TradingCalendar.FIVE_DAY,
    AssetClass.COMMODITY: TradingCalendar.FIVE_DAY,
    AssetClass.CRYPTO: TradingCalendar.SEVEN_DAY,
}

MAX_SYMBOL_LENGTH = 24
_SEPARATORS = "/-._ "
_STRIP_SEPARATORS = str.maketrans("", "", _SEPARATORS)
_KEY = re.compile(r"[A-Z0-9]{1,16}")
_SPLIT = re.compile(r"[/\-._ ]+")
# Quote currencies recognised when a crypto pair arrives without a separator (BTCUSD).
_CRYPTO_QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "BTC", "ETH")


def symbol_key(raw: str) -> str | None:
    """Case- and separator-insensitive identity of a symbol, or None when malformed.

    `eur-usd`, `EUR/USD` and ` EURUSD ` share one key, so one lookup finds them all.
    """
    if len(raw) > MAX_SYMBOL_LENGTH:
        return None
    key = raw.strip().upper().translate(_STRIP_SEPARATORS)
    return key if _KEY.fullmatch(key) else None


def canonical_symbol(raw: str, asset_class: AssetClass) -> str | None:
    """The one display form of a symbol within its asset class, or None when malformed.

    forex `EUR/USD`, crypto `BTC-USD`, stocks keep a share-class dot (`BRK.B`),
    commodities are bare roots (`GC`). Idempotent: canonical(canonical(x)) == canonical(x).
    """
    key = symbol_key(raw)
    if key is None:
        return None
    parts = [p for p in _SPLIT.split(raw.strip().upper()) if p]
    if asset_class is AssetClass.FOREX:
        if len(key) != 6 or not key.isalpha():
            return None
        return f"{key[:3]}/{key[3:]}"
    if asset_class is AssetClass.CRYPTO:
        if len(parts) == 2:
            return f"{parts[0]}-{parts[1]}"
        for quote in _CRYPTO_QUOTES:
            if key.endswith(quote) and len(key) > len(quote):
                return f"{key[: -len(quote)]}-{quote}"
        return None
    if asset_class is AssetClass.STOCK:
        return ".".join(parts)
    return key


@dataclass(frozen=True, slots=True)
class Symbol:
    """A tradable symbol in canonical form, with the asset class it belongs to."""

    ticker: str
    asset_class: AssetClass

    def __str__(self) -> str:
        return self.ticker


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the catalog knows about one symbol: metadata only. Which bars exist is the bar
    store's business; `listed` (a listing date, when known) only feeds warnings."""

    symbol: Symbol
    name: str
    exchange: str
    currency: str = "USD"
    lot_size: Decimal = Decimal(1)
    tick_size: Decimal = Decimal("0.01")
    listed: date | None = None

    @property
    def key(self) -> str:
        key = symbol_key(self.symbol.ticker)
        assert key is not None, "catalog tickers are validated on load"
        return key


MIXED = "mixed"
"""What a session's `currency` or `asset_class` says when its instruments differ."""


def common_currency(instruments: Iterable[Instrument]) -> str:
    """The currency every instrument is quoted in, or `mixed`."""
    currencies = {i.currency for i in instruments}
    return currencies.pop() if len(currencies) == 1 else MIXED


def common_asset_class(symbols: Iterable[Symbol]) -> str:
    """The asset class of every symbol, or `mixed`."""
    classes = {s.asset_class.value for s in symbols}
    return classes.pop() if len(classes) == 1 else MIXED


def alias_warnings(raw_symbols: Sequence[str], canonical: Sequence[Symbol]) -> list[str]:
    """A note for each symbol given in another spelling than its canonical form (`BTC/USD`
    is `BTC-USD`); a difference of case alone is not worth one."""
    return [
        f"{raw.strip()} is written {symbol.ticker} here (its canonical form)"
        for raw, symbol in zip(raw_symbols, canonical, strict=False)
        if raw.strip().upper() != symbol.ticker.upper()
    ]


def find_duplicates(raw_symbols: Iterable[str]) -> list[str]:
    """Symbols that name an instrument already named earlier in the list (by key)."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for raw in raw_symbols:
        key = symbol_key(raw)
        if key is None:
            continue
        if key in seen:
            duplicates.append(raw)
        seen.add(key)
    return duplicates


def duplicates_error(raw_symbols: Sequence[str]) -> ValidationFailed | None:
    """The rejection for a list that names an instrument twice, or None."""
    duplicates = find_duplicates(raw_symbols)
    if not duplicates:
        return None
    return ValidationFailed(
        "symbols",
        "Each symbol may appear once; duplicated: " + ", ".join(duplicates),
        duplicates=duplicates,
    )


def reject_duplicates(raw_symbols: Sequence[str]) -> None:
    error = duplicates_error(raw_symbols)
    if error is not None:
        raise error
