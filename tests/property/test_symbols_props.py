"""Properties of symbol identity: keys ignore case and separators, canonical forms are stable."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from domain.symbols import MAX_SYMBOL_LENGTH, AssetClass, canonical_symbol, symbol_key
from tests.fakes import InMemoryBarStore, make_validator

SEPARATORS = "/-._ "
tickers = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=16)
asset_classes = st.sampled_from(list(AssetClass))


@st.composite
def spellings(draw: st.DrawFn, ticker: str) -> str:
    """`ticker` with random case, separators between characters and padding."""
    out = [draw(st.sampled_from(["", " "]))]
    for char in ticker:
        out.append(draw(st.sampled_from([char, char.lower()])))
        out.append(draw(st.sampled_from(["", "", "", *SEPARATORS])))
    out.append(draw(st.sampled_from(["", " "])))
    return "".join(out)


@given(st.data(), tickers)
def test_case_and_separators_do_not_change_the_key(data: st.DataObject, ticker: str) -> None:
    spelled = data.draw(spellings(ticker))
    assume(len(spelled) <= MAX_SYMBOL_LENGTH)
    assert symbol_key(spelled) == ticker


@given(st.text(max_size=40))
def test_a_key_is_its_own_key(raw: str) -> None:
    key = symbol_key(raw)
    if key is not None:
        assert symbol_key(key) == key
        assert 1 <= len(key) <= 16
        assert key == key.upper()


@given(st.text(max_size=30), asset_classes)
def test_canonical_forms_are_idempotent_and_keep_the_key(raw: str, cls: AssetClass) -> None:
    canonical = canonical_symbol(raw, cls)
    if canonical is None:
        return
    assert canonical_symbol(canonical, cls) == canonical
    assert symbol_key(canonical) == symbol_key(raw)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=6, max_size=6), st.data())
def test_every_spelling_of_a_pair_gives_one_forex_form(pair: str, data: st.DataObject) -> None:
    spelled = data.draw(spellings(pair))
    assert canonical_symbol(spelled, AssetClass.FOREX) == f"{pair[:3]}/{pair[3:]}"


@given(
    st.lists(
        st.sampled_from(["AAPL", "MSFT", "JPM", "BRK.B", "EUR/USD", "BTC-USD", "GC", "NOPE"]),
        max_size=8,
    ),
    st.data(),
)
def test_validation_keeps_order_and_flags_exactly_the_repeats(
    chosen: list[str], data: st.DataObject
) -> None:
    requested = [data.draw(spellings(symbol_key(s) or s)) for s in chosen]
    # Symbols only: no bars needed (building the default bars once takes longer than the
    # hypothesis deadline).
    check = make_validator(store=InMemoryBarStore()).validate_symbols(requested)
    known = [s for s in chosen if s != "NOPE"]
    assert [s.ticker for s in check.symbols] == known
    has_repeats = len({symbol_key(s) for s in chosen}) < len(chosen)
    has_unknown = "NOPE" in chosen
    assert check.result.valid is not (has_repeats or has_unknown)
