"""What the importer tells a newcomer: a file cut by semicolons or without a header says so,
and Yahoo's `null` rows (days without trading) are skipped and counted while any other bad
line still refuses the file whole."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.bars.csv_import import read_bars
from domain.bars import Timeframe
from domain.errors import InvalidBars
from tests.unit.test_csv_import import NEW_YORK, refused, write

YAHOO = "Date,Open,High,Low,Close,Adj Close,Volume\n"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("date;open;high;low;close\n2024-01-02;1;2;1;2\n", "separated by semicolons, not commas"),
        ("date\topen\thigh\tlow\tclose\n2024-01-02\t1\t2\t1\t2\n", "separated by tabs"),
        ("2024-01-02,1,2,1,2\n2024-01-03,1,2,1,2\n", "the first line is data ('2024-01-02'"),
    ],
)
def test_a_file_that_is_not_comma_separated_with_a_header_says_so(
    tmp_path: Path, text: str, said: str
) -> None:
    [(line, reason)] = refused(tmp_path, text)
    assert line == 1
    assert said in reason


def test_yahoo_null_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    text = (
        YAHOO
        + "2024-01-02,10,11,9,10.5,10.4,100\n"
        + "2024-01-03,null,null,null,null,null,null\n"
        + "2024-01-04,10.5,12,10,11,10.9,200\n"
        + "2024-01-05,null,null,null,null,null,null\n"
    )
    read = read_bars([write(tmp_path, text)], "TEST", Timeframe.D1, hours=NEW_YORK)
    assert read.skipped_null_rows == 2
    assert [b.close for b in read.series.bars()] == [Decimal("10.5"), Decimal(11)]


def test_other_bad_lines_of_a_yahoo_file_still_refuse_it_whole(tmp_path: Path) -> None:
    text = (
        YAHOO
        + "2024-01-02,10,11,9,10.5,10.4,100\n"
        + "2024-01-03,null,null,null,null,null,null\n"
        + "2024-01-04,10.5,null,10,11,10.9,200\n"
    )
    assert refused(tmp_path, text) == [(4, "high is not a number: 'null'")]


def test_null_rows_are_only_yahoos(tmp_path: Path) -> None:
    generic = "date,open,high,low,close\n2024-01-02,1,2,1,2\n2024-01-03,null,null,null,null\n"
    with pytest.raises(InvalidBars):
        read_bars([write(tmp_path, generic)], "TEST", Timeframe.D1, hours=NEW_YORK)
