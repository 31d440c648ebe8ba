"""The market-data catalog read from a YAML file (the shipped `market_data.yaml` by default)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from domain.symbols import AssetClass, Instrument, Symbol, canonical_symbol, symbol_key

DEFAULT_CATALOG = Path(__file__).with_name("market_data.yaml")
_REQUIRED = ("symbol", "name", "exchange", "asset_class", "available_from", "available_to")


class CatalogError(Exception):
    """The catalog file is missing or malformed; the message names the file and the line."""


class _LineLoader(yaml.SafeLoader):
    """Remembers where each mapping started, so errors can point at the line."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
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
    def from_file(cls, path: Path | str = DEFAULT_CATALOG) -> YamlSymbolCatalog:
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
        if not instruments:
            raise CatalogError(f"{path}: the catalog lists no symbols")
        return cls(instruments, str(path))

    def lookup(self, key: str) -> Instrument | None:
        return self._by_key.get(key)

    def instruments(self) -> Sequence[Instrument]:
        return self._instruments

    def markets(self) -> Sequence[str]:
        return self._markets


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
    first, last = entry["available_from"], entry["available_to"]
    if not isinstance(first, date) or not isinstance(last, date) or first > last:
        raise CatalogError(f"{where}: {raw} needs ISO dates with available_from <= available_to")
    return Instrument(
        Symbol(ticker, asset_class), str(entry["name"]), str(entry["exchange"]), first, last
    )
