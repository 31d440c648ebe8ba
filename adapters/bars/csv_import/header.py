"""The header line of a bar file: which layout it is (generic, Yahoo, Stooq) and in which
column each field sits, or why the line is not a header at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ImportFormat(StrEnum):
    """The file layouts `read_bar_files` knows; `auto` tells them apart by the header."""

    AUTO = "auto"
    GENERIC = "generic"
    YAHOO = "yahoo"
    STOOQ = "stooq"


_ALIASES = {
    "vol": "volume",
    "adj close": "adj close",
    "adj_close": "adj close",
    "adjclose": "adj close",
    "adjusted close": "adj close",
}
_SINGLE_TIME_COLUMNS = ("timestamp", "datetime", "date", "time")


class BadHeader(Exception):
    """Why the first line of a file is not a header this reader can use."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each field is in the rows of one file."""

    width: int
    time: int
    time_of_day: int | None  # a separate time column (Stooq's <DATE>,<TIME>; Date,Time)
    prices: tuple[int, int, int, int]
    volume: int | None
    adj_close: int | None
    skips_null_rows: bool = False  # Yahoo's: a day without trading is a row of `null`s


def _column_name(raw: str) -> str:
    name = " ".join(raw.strip().strip("<>").lower().split())
    return _ALIASES.get(name, name)


def header_layout(header: list[str], fmt: ImportFormat, adjusted: bool) -> Layout:
    _refuse_a_header_that_is_not_one(header)
    raw = [h.strip() for h in header]
    names = [_column_name(h) for h in raw]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    detected = (
        ImportFormat.STOOQ
        if "<ticker>" in (h.lower() for h in raw) or "<date>" in (h.lower() for h in raw)
        else ImportFormat.YAHOO
        if "adj close" in index
        else ImportFormat.GENERIC
    )
    if fmt is ImportFormat.YAHOO and detected is not ImportFormat.YAHOO:
        raise BadHeader("not a Yahoo file: the header has no 'Adj Close' column")
    if fmt is ImportFormat.STOOQ and "date" not in index:
        raise BadHeader("not a Stooq file: the header has no 'Date' column")
    missing = [c for c in ("open", "high", "low", "close") if c not in index]
    if missing:
        raise BadHeader(f"the header has no {', '.join(repr(c) for c in missing)} column")
    if "date" in index and "time" in index:
        time_col, time_of_day = index["date"], index["time"]
    else:
        found = next((index[c] for c in _SINGLE_TIME_COLUMNS if c in index), None)
        if found is None:
            raise BadHeader("the header has no timestamp, datetime, date or time column")
        time_col, time_of_day = found, None
    if adjusted and "adj close" not in index:
        raise BadHeader("--adjusted needs an 'Adj Close' column (Yahoo's layout)")
    return Layout(
        width=len(header),
        time=time_col,
        time_of_day=time_of_day,
        prices=(index["open"], index["high"], index["low"], index["close"]),
        volume=index.get("volume"),
        adj_close=index["adj close"] if adjusted else None,
        skips_null_rows=detected is ImportFormat.YAHOO,
    )


_LOOKS_LIKE_DATA = re.compile(r"[0-9+-]")


def _refuse_a_header_that_is_not_one(header: list[str]) -> None:
    """A file cut by another separator, or without a header line, said as such."""
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if separator in header[0]:
                raise BadHeader(
                    f"the fields are separated by {name}, not commas; save the file as "
                    "comma-separated (CSV with ',' between fields)"
                )
    if header and _LOOKS_LIKE_DATA.match(header[0].strip()):
        raise BadHeader(
            f"the first line is data ({header[0].strip()!r}...), not a header; add a header "
            "line first, e.g. date,open,high,low,close,volume"
        )
