"""Reading users' bar files (generic, Yahoo and Stooq CSV) into one exact `BarSeries`:
decimal text goes straight to fixed-point ints, whole blocks of rows at a time.

In rooms of its own: `header` (the layouts), `fields` (the per-row rules for single values),
`columns` (the block path's column helpers), `problems` (bad lines, the refusal) and
`reader` (the files, the blocks, the series). The public names are here."""

from adapters.bars.csv_import.fields import ADJUSTED_PLACES
from adapters.bars.csv_import.header import ImportFormat
from adapters.bars.csv_import.problems import MAX_LISTED_PROBLEMS, Problem, problems_error
from adapters.bars.csv_import.reader import BLOCK_BYTES, ReadBars, read_bar_files, read_bars

__all__ = [
    "ADJUSTED_PLACES",
    "BLOCK_BYTES",
    "MAX_LISTED_PROBLEMS",
    "ImportFormat",
    "Problem",
    "ReadBars",
    "problems_error",
    "read_bar_files",
    "read_bars",
]
