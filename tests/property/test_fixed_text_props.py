"""`fixed_text` prints a fixed-point value exactly as the decoded decimal prints (`str` of
what `from_fixed` and the simulation's column decoding make): the window bars' JSON is made
from it, and clients read the same numbers as from the decoded bars."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from application.simulation.columns import unit
from domain.bars import MAX_SCALE, fixed_text, from_fixed

raw_values = st.one_of(
    st.integers(-(10**18), 10**18),
    st.integers(-1000, 1000),  # around zero: leading zeros, "0.0…", the scientific cut-off
)


@given(raw_values, st.integers(-3, MAX_SCALE + 4))
def test_fixed_text_prints_as_the_decoded_decimal(value: int, scale: int) -> None:
    assert fixed_text(value, scale) == str(from_fixed(value, scale))


@given(raw_values, st.integers(0, MAX_SCALE))
def test_fixed_text_prints_as_a_decoded_column(value: int, scale: int) -> None:
    assert fixed_text(value, scale) == str(Decimal(value) * unit(scale))


def test_fixed_text_at_the_edges() -> None:
    assert fixed_text(9880, 2) == "98.80"
    assert fixed_text(5, 3) == "0.005"
    assert fixed_text(-5, 2) == "-0.05"
    assert fixed_text(0, 4) == "0.0000"
    assert fixed_text(1, 7) == "1E-7"  # (Decimal's own notation below 1e-6)
    assert fixed_text(123, 0) == "123"
