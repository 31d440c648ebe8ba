"""Daily (and Yahoo's intraday) bars downloaded over HTTP, handed back as CSV text in a
layout `read_bars` knows, so a download goes through the same importer as a file.

Stooq serves CSV (`Date,Open,High,Low,Close,Volume`) as is. Yahoo's chart API serves JSON;
it is written out as a Yahoo CSV (`Date,Open,High,Low,Close,Adj Close,Volume`, with `null`
where Yahoo has no value), each price rounded half-even to 6 decimal places from the
shortest text of Yahoo's binary float, as Yahoo's own CSV download wrote them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

import httpx

from adapters.bars.csv_import import ImportFormat
from domain.bars import Timeframe
from domain.symbols import AssetClass, Instrument

YAHOO_PLACES = Decimal("0.000001")
_YAHOO_INTERVALS = {Timeframe.D1: "1d", Timeframe.H1: "60m", Timeframe.M5: "5m", Timeframe.M1: "1m"}


class Source(StrEnum):
    STOOQ = "stooq"
    YAHOO = "yahoo"


class DownloadError(Exception):
    """A download that did not give bars. `code` is stable; the message is for people."""

    code = "DOWNLOAD_FAILED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NetworkUnavailable(DownloadError):
    """The source could not be reached at all (no network, DNS, refused, timed out)."""

    code = "NETWORK_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Download:
    text: str
    fmt: ImportFormat
    url: str


def stooq_symbol(instrument: Instrument) -> str:
    """`aapl.us`, `eurusd`, `btcusd`, `gc.f`: how Stooq names an instrument."""
    ticker = instrument.symbol.ticker.lower()
    kind = instrument.symbol.asset_class
    if kind is AssetClass.STOCK:
        return ticker.replace(".", "-").replace("/", "-") + ".us"
    if kind is AssetClass.COMMODITY:
        return ticker + ".f"
    return ticker.replace("/", "").replace("-", "")


def yahoo_symbol(instrument: Instrument) -> str:
    """`AAPL`, `BRK-B`, `EURUSD=X`, `BTC-USD`, `GC=F`: how Yahoo names an instrument."""
    ticker = instrument.symbol.ticker.upper()
    kind = instrument.symbol.asset_class
    if kind is AssetClass.FOREX:
        return ticker.replace("/", "") + "=X"
    if kind is AssetClass.CRYPTO:
        return ticker.replace("/", "-")
    if kind is AssetClass.COMMODITY:
        return ticker + "=F"
    return ticker.replace(".", "-")


def download(
    source: Source,
    instrument: Instrument,
    start: date,
    end: date,
    timeframe: Timeframe,
    base_url: str,
    *,
    client: httpx.Client | None = None,
) -> Download:
    """The bars of `instrument` from `start` to `end` (inclusive days) as CSV text."""
    if source is Source.STOOQ and timeframe is not Timeframe.D1:
        raise DownloadError("Stooq serves daily bars only (--timeframe 1d); try --source yahoo")
    owned = client is None
    http = client or httpx.Client(timeout=30.0, follow_redirects=True)
    try:
        if source is Source.STOOQ:
            return _stooq(http, instrument, start, end, base_url)
        return _yahoo(http, instrument, start, end, timeframe, base_url)
    finally:
        if owned:
            http.close()


def _get(http: httpx.Client, url: str, params: dict[str, str]) -> httpx.Response:
    host = httpx.URL(url).host or url
    try:
        return http.get(url, params=params)
    except httpx.TransportError as exc:
        raise NetworkUnavailable(
            f"Cannot reach {host} ({type(exc).__name__}: {exc or 'no answer'}); is this "
            "machine online?"
        ) from None


def _stooq(
    http: httpx.Client, instrument: Instrument, start: date, end: date, base_url: str
) -> Download:
    symbol = stooq_symbol(instrument)
    url = base_url.rstrip("/") + "/q/d/l/"
    params = {"s": symbol, "d1": f"{start:%Y%m%d}", "d2": f"{end:%Y%m%d}", "i": "d"}
    response = _get(http, url, params)
    if response.status_code != 200:
        raise DownloadError(f"Stooq answered HTTP {response.status_code} for {symbol}")
    text = response.text
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    if not first.lower().startswith("date,"):
        said = first[:80] or "an empty answer"
        raise DownloadError(f"Stooq has no bars of {symbol} from {start} to {end} ({said})")
    return Download(text, ImportFormat.AUTO, str(response.url))


def _yahoo(
    http: httpx.Client,
    instrument: Instrument,
    start: date,
    end: date,
    timeframe: Timeframe,
    base_url: str,
) -> Download:
    symbol = yahoo_symbol(instrument)
    url = base_url.rstrip("/") + f"/v8/finance/chart/{symbol}"
    first = datetime.combine(start, time.min, UTC)
    after = datetime.combine(end + timedelta(days=1), time.min, UTC)
    params = {
        "period1": str(int(first.timestamp())),
        "period2": str(int(after.timestamp())),
        "interval": _YAHOO_INTERVALS[timeframe],
        "events": "history",
        "includeAdjustedClose": "true",
    }
    response = _get(http, url, params)
    try:
        chart = json.loads(response.text)["chart"]
    except (ValueError, KeyError, TypeError):
        raise DownloadError(
            f"Yahoo answered HTTP {response.status_code} for {symbol}, not with a chart"
        ) from None
    error = chart.get("error")
    results = chart.get("result") or []
    if error or not results:
        said = (error or {}).get("description") or f"HTTP {response.status_code}"
        raise DownloadError(f"Yahoo has no bars of {symbol}: {said}")
    return Download(_yahoo_csv(results[0]), ImportFormat.YAHOO, str(response.url))


def _yahoo_csv(result: dict[str, Any]) -> str:
    stamps = result.get("timestamp") or []
    quote = (result.get("indicators", {}).get("quote") or [{}])[0]
    adjusted = (result.get("indicators", {}).get("adjclose") or [{}])[0].get("adjclose")
    columns = [quote.get(name) or [] for name in ("open", "high", "low", "close")]
    closes = columns[3]
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for i, stamp in enumerate(stamps):
        prices = [_price(column, i) for column in columns]
        adj = _price(adjusted, i) if adjusted is not None else _price(closes, i)
        volume = _at(quote.get("volume") or [], i)
        lines.append(
            ",".join([str(stamp), *prices, adj, "null" if volume is None else str(int(volume))])
        )
    return "\n".join(lines) + "\n"


def _at(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


def _price(values: list[Any] | None, i: int) -> str:
    value = _at(values or [], i)
    if value is None:
        return "null"
    exact = Decimal(repr(float(value))).quantize(YAHOO_PLACES, rounding=ROUND_HALF_EVEN)
    return format(exact.normalize(), "f")
