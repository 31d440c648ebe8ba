"""Indicators without look-ahead: a series computed by any function over NumPy arrays (yours,
TA-Lib's, pandas' rolling means), declared once in `on_start` and read in `on_bar` through a
view that ends at the current bar: `ind[-1]` is its value now, `ind[-2]` one bar before, and
a later bar cannot be indexed.

In process the whole range is known at the start, so the function runs once over it, after
a check that it is causal: run again on shorter prefixes, it must give the same values there
(a centred window or a `shift(-1)` does not, and is refused with `LookAheadError`). Against a
server the client holds only the bars received so far, so the function runs over those when
the indicator is read past the bars it was last run over; a causal function gives the very
same values both ways. With windows of bars (PROTOCOL §7.14) the bars received run ahead of
the current one (those of the window not shown to the strategy yet): the function runs over
them all at once, once a window, not once a bar, and again up to the current bar only, which
must agree (else `LookAheadError`, before any value past the current bar's inputs is read).

NumPy is imported only when an indicator is declared."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from entrypoints.sdk.errors import SimuTradorError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

INPUT_FIELDS = ("open", "high", "low", "close", "volume")
CAUSALITY_CUTS = (0.5, 1.0)
"""Where (as fractions of the bars) the in-process check cuts the range: prefixes ending
there, minus one bar, must agree with the whole run (the last bar of a prefix is where a
peek ahead shows: a centred window, a negative shift)."""

IndicatorFunction = Callable[..., Any]


class LookAheadError(SimuTradorError):
    """An indicator's function reads later bars: its value at some bar changes once later
    bars are known (a centred window, a negative shift). Only causal functions may be
    computed over the whole range."""

    code = "INDICATOR_LOOKS_AHEAD"


class IndicatorError(SimuTradorError):
    """An indicator was declared wrongly (outside `on_start`, an unknown symbol or field, a
    function whose result is not one value per bar)."""

    code = "STRATEGY_USAGE"


@dataclass(frozen=True, slots=True)
class IndicatorTrack:
    """An indicator's values on the bars traded (warm-up bars left out), for reports."""

    symbol: str
    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))


class Indicator:
    """A view of an indicator's values that ends at the current bar of its symbol.

    `ind[-1]` is the value on the current bar, `ind[-k]` k-1 bars before; `ind[i]` counts
    from the first bar (warm-up bars first); `len(ind)` is the number of bars so far; a
    slice gives a list. NaN where the function gives none (the first bars of a moving
    average). An index past the current bar raises IndexError."""

    __slots__ = ("_counts", "_known", "_source", "_values", "name", "symbol")

    def __init__(
        self,
        name: str,
        symbol: str,
        counts: Mapping[str, int],
        values: array[float],
        source: _Source | None = None,
    ) -> None:
        self.name = name
        self.symbol = symbol
        self._counts = counts
        self._values = values
        self._known = len(values)
        self._source = source

    def __len__(self) -> int:
        return self._counts[self.symbol]

    def __getitem__(self, index: int) -> float:
        end = self._counts[self.symbol]
        if end > self._known:
            self._extend(end)
        if index < 0:
            if index >= -end:
                return self._values[end + index]
        elif index < end:
            return self._values[index]
        raise IndexError(
            f"{self.name}[{index}] is not a bar seen yet: the view ends at the current bar "
            f"({end} bar{'s' if end != 1 else ''} so far); [-1] is the current value"
        )

    def window(self, n: int) -> list[float]:
        """The last `n` values up to and including the current bar (fewer at the start)."""
        end = self._counts[self.symbol]
        if end > self._known:
            self._extend(end)
        return self._values[max(0, end - n) : end].tolist() if n > 0 else []

    def last(self, n: int) -> array[float]:
        """The last `n` values up to and including the current bar, as an array (a copy)."""
        end = self._counts[self.symbol]
        if end > self._known:
            self._extend(end)
        return self._values[max(0, end - n) : end] if n > 0 else array("d")

    @property
    def values(self) -> list[float]:
        """Every value up to and including the current bar."""
        return self.window(len(self))

    def __repr__(self) -> str:
        end = self._counts[self.symbol]
        last = self[-1] if end else math.nan
        return f"Indicator({self.name!r}, {self.symbol}, {end} bars, last={last})"

    def _extend(self, end: int) -> None:
        source = self._source
        if source is None:  # cannot happen: in process every value is known
            raise IndexError(f"{self.name} has no value for bar {end - 1}")
        held = source.held()
        values = source.compute(max(end, held))
        if held > end:  # computed past the current bar: only if it agrees up to here
            now = source.compute(end)
            if now != values[:end] and not _same(now, values[:end]):
                raise LookAheadError(_looks_ahead(self.name, _first_difference(now, values, end)))
        known = self._known
        if values[:known] != self._values[:known] and not _same(
            values[:known], self._values[:known]
        ):
            raise LookAheadError(
                _looks_ahead(self.name, _first_difference(values, self._values, known))
            )
        self._values, self._known = values, len(values)


class _Source:
    """What a client-side indicator is recomputed from: the bars received so far (`columns`,
    per field; `hold()` brings in those received but not shown yet and says how many)."""

    __slots__ = ("args", "columns", "function", "hold", "kwargs", "name")

    def __init__(
        self,
        name: str,
        function: IndicatorFunction,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        columns: Mapping[str, array[float]],
        hold: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.columns = columns
        self.hold = hold

    def held(self) -> int:
        """The bars the columns hold, after taking in those received ahead."""
        if self.hold is not None:
            self.hold()
        return len(self.columns["close"])

    def compute(self, end: int) -> array[float]:
        import numpy as np

        # Copies (a slice of an array is one): the columns grow while a view would pin them.
        inputs = {f: np.frombuffer(c[:end], dtype=np.float64) for f, c in self.columns.items()}
        return evaluate(self.name, self.function, self.args, self.kwargs, inputs, end)


def default_name(function: IndicatorFunction, args: Sequence[Any]) -> str:
    label = getattr(function, "__name__", type(function).__name__)
    return f"{label}({', '.join(str(a) for a in args)})"


def fields_of(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """The bar fields an indicator reads: the arguments that name one."""
    return [a for a in (*args, *kwargs.values()) if isinstance(a, str) and a in INPUT_FIELDS]


def evaluate(
    name: str,
    function: IndicatorFunction,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    inputs: Mapping[str, FloatArray],
    bars: int,
) -> array[float]:
    """`function` with field names replaced by those columns (each `bars` long), as an
    array of one float per bar."""
    import numpy as np

    def value(a: Any) -> Any:
        return inputs[a] if isinstance(a, str) and a in INPUT_FIELDS else a

    try:
        result = function(*(value(a) for a in args), **{k: value(v) for k, v in kwargs.items()})
        out = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IndicatorError(f"indicator {name!r} failed: {exc}") from exc
    if out.shape != (bars,):
        raise IndicatorError(
            f"indicator {name!r} must give one value per bar ({bars}), not shape {out.shape}"
        )
    return array("d", out.tobytes())


def check_causal(
    name: str,
    function: IndicatorFunction,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    inputs: Mapping[str, FloatArray],
    whole: array[float],
) -> None:
    """Raise LookAheadError unless `function` gives on prefixes of the bars what it gave on
    all of them (`whole`)."""
    n = len(whole)
    cuts = sorted({min(n - 1, int(n * f)) for f in CAUSALITY_CUTS} - {0})
    for cut in cuts:
        prefix = {f: column[:cut] for f, column in inputs.items()}
        part = evaluate(name, function, args, kwargs, prefix, cut)
        if part != whole[:cut] and not _same(part, whole[:cut]):
            raise LookAheadError(_looks_ahead(name, _first_difference(part, whole, cut)))


def _same(a: array[float], b: array[float]) -> bool:
    """Equal value for value, NaN equal to NaN (compared in NumPy: indicators are long)."""
    if len(a) != len(b):
        return False
    if not a:
        return True
    import numpy as np

    return bool(np.array_equal(np.frombuffer(a), np.frombuffer(b), equal_nan=True))


def _first_difference(a: array[float], b: array[float], n: int) -> int:
    for i in range(n):
        x, y = a[i], b[i]
        if not (x == y or (x != x and y != y)):
            return i
    return n


def _looks_ahead(name: str, bar: int) -> str:
    return (
        f"indicator {name!r} looks ahead: its value at bar {bar} changes once later bars are "
        "known (a centred window? a negative shift?); only a function whose value at a bar "
        "depends on that bar and earlier ones can be computed over the whole range"
    )


def sma(values: FloatArray, n: int) -> FloatArray:
    """Simple moving average of the last `n` values (NaN for the first n-1 bars); each
    window summed on its own, so a prefix gives the same values as the whole."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.full(len(values), np.nan)
    if 0 < n <= len(values):
        out[n - 1 :] = sliding_window_view(values, n).mean(axis=1)
    return out


def crossover(a: Indicator, b: Indicator) -> bool:
    """`a` crossed above `b` on the current bar: below it on the bar before, above now."""
    end_a, end_b = a._counts[a.symbol], b._counts[b.symbol]
    if end_a < 2 or end_b < 2:
        return False
    if end_a > a._known:
        a._extend(end_a)
    if end_b > b._known:
        b._extend(end_b)
    va, vb = a._values, b._values  # read directly: this runs on every bar of a strategy
    return va[end_a - 2] < vb[end_b - 2] and va[end_a - 1] > vb[end_b - 1]
