"""Column helpers for the block path: a whole block of unquoted lines split into columns
and read as ints in a few C-speed passes; None means "read these rows one by one"."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import repeat
from operator import mul

from adapters.bars.csv_import.fields import POW10
from domain.bars import MAX_SCALE

_DIGITS = re.compile(r"[0-9]+(?:,[0-9]+)*")


def all_epochs(stamps: list[str]) -> bool:
    # Eight digits are a date (Stooq's YYYYMMDD), so epochs here have at least nine.
    return bool(_DIGITS.fullmatch(",".join(stamps))) and min(map(len, stamps)) > 8


def split_columns(body: str, width: int) -> list[list[str]] | None:
    """Every column of a block of unquoted lines, or None unless each line has `width` fields.

    One split on commas: the piece that holds each newline joins the last field of a line
    to the first of the next. With exactly one newline in each such piece (and none
    elsewhere, as there are no more), every line has width - 1 commas."""
    commas = width - 1
    flat = body.split(",")
    n, rest = divmod(len(flat) - 1, commas)
    if rest or body.count("\n") != n - 1:
        return None
    joints = flat[commas:-1:commas]
    if not all(map(str.__contains__, joints, repeat("\n"))):
        return None
    ends = "\n".join(joints).split("\n")
    firsts = [flat[0], *ends[1::2]]
    lasts = ends[0::2]
    lasts.append(flat[-1])
    return [firsts, *(flat[c::commas] for c in range(1, commas)), lasts]


def split_stamps(stamps: list[str]) -> tuple[list[str], list[str]] | None:
    """`YYYY-MM-DD` + `T` or space + time of day, as the two parts (checked by their parsers;
    neither may hold the separator, so n separators, each at index 10, is one per stamp)."""
    first = stamps[0]
    separator = first[10] if len(first) > 10 else ""
    if separator not in ("T", " "):
        return None
    joined = ",".join(stamps)
    if joined.count(separator) != len(stamps):
        return None
    if set(map(str.find, stamps, repeat(separator))) != {10}:
        return None
    parts = joined.replace(separator, ",").split(",")
    return parts[0::2], parts[1::2]


_SHAPE = bytes.maketrans(b"123456789", b"000000000")


def fast_decimals(values: list[str]) -> tuple[list[int], int] | None:
    """Plain unsigned decimals as ints at their most places, or None to go row by row."""
    joined = ",".join(values)
    if not joined.isascii():
        return None
    shape = joined.encode().translate(_SHAPE)  # every digit becomes "0"
    if shape.translate(None, b"0.,"):
        return None  # only digits, dots and commas from here on
    dots = shape.count(b".")
    digits = joined.replace(".", "") if dots else joined
    n = len(values)
    first = values[0]
    dot = first.find(".")
    places = len(first) - dot - 1 if dot >= 0 else 0
    # n values ending in "." + `places` digits, and n dots in all: that is every value.
    uniform = dots == (n if places else 0) and (
        not places or (shape + b",").count(b"." + b"0" * places + b",") == n
    )
    if uniform and places <= MAX_SCALE:
        return _ints(digits), places
    parts = list(map(str.partition, values, repeat(".")))
    if sum(map(len, map(_separator, parts))) != dots:
        return None  # a value with two dots
    each = list(map(len, map(_fraction, parts)))
    places = max(each)
    if places > MAX_SCALE:
        return None
    factors = map(POW10.__getitem__, map(int.__rsub__, each, repeat(places)))
    return list(map(mul, _ints(digits), factors)), places


def _separator(parts: tuple[str, str, str]) -> str:
    return parts[1]


def _fraction(parts: tuple[str, str, str]) -> str:
    return parts[2]


def _ints(digits: str) -> list[int]:
    """Comma-joined runs of ASCII digits as ints."""
    if digits[0] != "0" and ",0" not in digits:
        # json's C scanner reads integers exactly and faster than int() one by one; it
        # refuses leading zeros, which the check above keeps away.
        parsed: list[int] = json.loads(f"[{digits}]")
        return parsed
    return list(map(int, digits.split(",")))


def scaled(values: Iterable[int], factor: int) -> list[int]:
    return list(map(mul, values, repeat(factor)))
