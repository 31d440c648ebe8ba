"""Why lines of a bar file cannot be imported, and the one error that refuses an import
for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import InvalidBars

MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one line of one file cannot be imported (line 1 is the header)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def problems_error(problems: Sequence[Problem]) -> InvalidBars:
    """The InvalidBars that refuses an import for `problems` (in file and line order)."""
    count = len(problems)
    noun = "line" if count == 1 else "lines"
    return InvalidBars(
        f"{count} bad {noun}; nothing was imported",
        {
            "problems": [
                {"file": p.file, "line": p.line, "reason": p.reason}
                for p in problems[:MAX_LISTED_PROBLEMS]
            ],
            "count": count,
        },
    )
