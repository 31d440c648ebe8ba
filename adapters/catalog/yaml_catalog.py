"""The market-data catalog read from a YAML file (the shipped `market_data.yaml` by default)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from adapters.files import write_file_atomically
from domain.errors import ValidationFailed
from domain.symbols import AssetClass, Instrument, Symbol, canonical_symbol, symbol_key

DEFAULT_CATALOG = Path(__file__).with_name("market_data.yaml")
_REQUIRED = ("symbol", "name", "exchange", "asset_class")


class CatalogError(Exception):
    """The catalog file is missing or malformed; the message names the file and the line."""


# libyaml's parser when PyYAML was built with it: the catalog loads ~10x faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """Remembers where each mapping started, so errors can point at the line."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YamlSymbolCatalog:
    """Immutable after load: lookups are one dict access, safe from any thread."""

    def __init__(self, instruments: Sequence[Instrument], source: str = "<memory>") -> None:
        self.source = source
        self._instruments = tuple(instruments)
        self._by_key: dict[str, Instrument] = {}
        for instrument in self._instruments:
            if instrument.key in self._by_key:
                raise CatalogError(
                    f"{source}: symbols {self._by_key[instrument.key].symbol} and "
                    f"{instrument.symbol} collide"
                )
            self._by_key[instrument.key] = instrument
        self._markets = tuple(sorted({i.exchange for i in self._instruments}))

    @classmethod
    def from_file(
        cls, path: Path | str = DEFAULT_CATALOG, *, allow_empty: bool = False
    ) -> YamlSymbolCatalog:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read the market-data catalog ({exc})") from None
        try:
            document = yaml.load(text, Loader=_LineLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise CatalogError(f"{where}: invalid YAML: {problem}") from None
        if not isinstance(document, dict) or not isinstance(document.get("symbols"), list):
            raise CatalogError(f"{path}:1: expected a mapping with a 'symbols' list")
        instruments: list[Instrument] = []
        first_seen: dict[str, tuple[Instrument, object]] = {}
        for entry in document["symbols"]:
            instrument = _instrument(path, entry)
            line = entry.get("__line__", "?")
            earlier = first_seen.setdefault(instrument.key, (instrument, line))
            if earlier[0] is not instrument:  # checked here, where the lines are still known
                raise CatalogError(
                    f"{path}:{line}: symbol {instrument.symbol} collides with "
                    f"{earlier[0].symbol} (line {earlier[1]})"
                )
            instruments.append(instrument)
        if not instruments and not allow_empty:
            raise CatalogError(f"{path}: the catalog lists no symbols")
        return cls(instruments, str(path))

    def lookup(self, key: str) -> Instrument | None:
        return self._by_key.get(key)

    def instruments(self) -> Sequence[Instrument]:
        return self._instruments

    def markets(self) -> Sequence[str]:
        return self._markets

    def add(self, instrument: Instrument) -> None:
        raise ValidationFailed(
            "symbol", f"{self.source} is read-only; cannot add {instrument.symbol}"
        )


class LayeredSymbolCatalog:
    """The shipped catalog (read-only) plus the user's own `instruments.yaml`, which `add`
    appends to. The user file is re-read when it changes, so instruments added by
    `simutrador data import` in another process reach a running server."""

    RECHECK_SECONDS = 1.0

    def __init__(self, shipped: YamlSymbolCatalog, user_path: Path) -> None:
        self._shipped = shipped
        self._user_path = Path(user_path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked_at = -math.inf
        self._merged = shipped

    @classmethod
    def from_files(cls, shipped: Path | str, user_path: Path | str) -> LayeredSymbolCatalog:
        return cls(YamlSymbolCatalog.from_file(shipped), Path(user_path))

    def lookup(self, key: str) -> Instrument | None:
        return self._current().lookup(key)

    def instruments(self) -> Sequence[Instrument]:
        return self._current().instruments()

    def markets(self) -> Sequence[str]:
        return self._current().markets()

    def add(self, instrument: Instrument) -> None:
        with self._lock:
            merged = self._reload()
            if merged.lookup(instrument.key) is not None:
                raise ValidationFailed("symbol", f"{instrument.symbol} is already in the catalog")
            user = [i for i in merged.instruments() if self._shipped.lookup(i.key) is None] + [
                instrument
            ]
            document = {"version": 2, "symbols": [instrument_entry(i) for i in user]}
            text = "# Instruments added by `simutrador data import`.\n" + yaml.safe_dump(
                document, sort_keys=False, allow_unicode=True
            )
            write_file_atomically(self._user_path, text.encode())
            self._checked_at = -math.inf
            self._reload()

    def _current(self) -> YamlSymbolCatalog:
        now = time.monotonic()
        if now - self._checked_at < self.RECHECK_SECONDS:
            return self._merged
        with self._lock:
            return self._reload()

    def _reload(self) -> YamlSymbolCatalog:
        self._checked_at = time.monotonic()
        try:
            stat = self._user_path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            extra: Sequence[Instrument] = ()
            if stamp is not None:
                extra = YamlSymbolCatalog.from_file(self._user_path, allow_empty=True).instruments()
            self._merged = YamlSymbolCatalog(
                (*self._shipped.instruments(), *extra),
                f"{self._shipped.source} + {self._user_path}",
            )
            self._stamp = stamp
        return self._merged


def _instrument(path: Path, entry: Any) -> Instrument:
    if not isinstance(entry, dict):
        raise CatalogError(f"{path}: each entry of 'symbols' must be a mapping")
    where = f"{path}:{entry.get('__line__', '?')}"
    missing = [f for f in _REQUIRED if f not in entry]
    if missing:
        raise CatalogError(f"{where}: symbol entry lacks {', '.join(missing)}")
    try:
        asset_class = AssetClass(str(entry["asset_class"]))
    except ValueError:
        allowed = ", ".join(a.value for a in AssetClass)
        raise CatalogError(
            f"{where}: asset_class '{entry['asset_class']}' is not one of {allowed}"
        ) from None
    raw = str(entry["symbol"])
    ticker = canonical_symbol(raw, asset_class)
    if ticker is None or symbol_key(ticker) is None:
        raise CatalogError(f"{where}: '{raw}' is not a valid {asset_class.value} symbol")
    currency = str(entry.get("currency", "USD")).strip().upper()
    if not currency.isalpha() or not 3 <= len(currency) <= 5:
        raise CatalogError(f"{where}: currency '{currency}' is not a currency code (e.g. USD)")
    lot_size = _positive_decimal(where, entry, "lot_size", Decimal(1))
    tick_size = _positive_decimal(where, entry, "tick_size", Decimal("0.01"))
    listed = entry.get("listed")
    if listed is not None and not isinstance(listed, date):
        raise CatalogError(f"{where}: listed must be an ISO date (YYYY-MM-DD)")
    return Instrument(
        Symbol(ticker, asset_class),
        str(entry["name"]),
        str(entry["exchange"]),
        currency,
        lot_size,
        tick_size,
        listed,
    )


def _positive_decimal(where: str, entry: dict[str, Any], name: str, default: Decimal) -> Decimal:
    raw = entry.get(name)
    if raw is None:
        return default
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0:
        raise CatalogError(f"{where}: {name} must be a positive decimal, not '{raw}'")
    return value


def instrument_entry(instrument: Instrument) -> dict[str, Any]:
    """The YAML mapping that `_instrument` reads back as `instrument`."""
    entry: dict[str, Any] = {
        "symbol": instrument.symbol.ticker,
        "name": instrument.name,
        "exchange": instrument.exchange,
        "asset_class": instrument.symbol.asset_class.value,
        "currency": instrument.currency,
        "lot_size": str(instrument.lot_size),
        "tick_size": str(instrument.tick_size),
    }
    if instrument.listed is not None:
        entry["listed"] = instrument.listed
    return entry
