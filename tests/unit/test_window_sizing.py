"""How many bars the SDK asks for next (PROTOCOL §7.14): after a decision, about as many as
the recent gaps between decisions (so that the next decision is in the window, and few bars
after it are stepped for nothing); after a window without a decision, a longer one; never
more than the window asked for, and one bar at a time when that is what was asked."""

from __future__ import annotations

from decimal import Decimal

from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.remote import RemoteDriver, cheapest_window


def driver(window: int = 1024) -> RemoteDriver:
    auth = AuthClient("http://127.0.0.1:1", "key", use_cached_login=False)
    return RemoteDriver(auth, ["AAPL"], "2023-01-03", "2023-12-29", Decimal(1000), window=window)


def decide_after(d: RemoteDriver, gap: int) -> int:
    """The strategy ran over `gap` bars and decided on the last: the next window asked."""
    d._since_decision += gap
    size = d._next_window(decided=True)
    d._current = size
    return size


def test_regular_decisions_get_windows_that_just_hold_the_next_one() -> None:
    d = driver()
    sizes = [decide_after(d, 210 if i % 2 else 180) for i in range(40)]
    # Once enough gaps are known, the window holds the longer of the two gaps and no more
    # than a few bars beyond it: no decision falls after it, few bars are void.
    assert all(210 <= size < 240 for size in sizes[10:])


def test_a_rare_long_gap_does_not_stretch_every_window() -> None:
    d = driver()
    sizes = [decide_after(d, 1000 if i == 30 else 40) for i in range(60)]
    assert all(40 <= size < 80 for size in sizes[31:])


def test_a_window_without_a_decision_is_followed_by_a_longer_one() -> None:
    d = driver()
    for _ in range(10):
        decide_after(d, 50)
    before = d._current
    after = d._next_window(decided=False)
    assert after > before


def test_the_window_asked_for_bounds_every_window() -> None:
    d = driver(window=100)
    sizes = [decide_after(d, 500) for _ in range(12)]
    assert max(sizes) == 100
    d._current = 100
    assert d._next_window(decided=False) == 100
    one = driver(window=1)
    assert decide_after(one, 500) == 1
    assert one._next_window(decided=False) == 1


def test_frequent_decisions_still_get_a_few_bars_per_window() -> None:
    d = driver()
    sizes = [decide_after(d, 1) for _ in range(20)]
    assert min(sizes) >= 2  # not one round trip per bar where no decision falls


def test_the_window_weighs_its_bars_against_the_round_trip() -> None:
    gaps = sorted([20] * 50 + [60] * 10 + [90] * 4)
    # Over a fast link a round trip costs less than the bars that would hold the rare
    # longer gaps; over a slow one, the window holds every gap.
    assert cheapest_window(gaps, round_trip=0.001) == 20
    assert cheapest_window(gaps, round_trip=0.010) == 60
    assert cheapest_window(gaps, round_trip=0.100) == 90


def test_the_measured_round_trip_sizes_the_windows() -> None:
    fast, slow = driver(), driver()
    fast._round_trip, slow._round_trip = 0.0005, 0.2
    gaps = [40] * 20 + [300] * 2
    fast_sizes = [decide_after(fast, gap) for gap in gaps]
    slow_sizes = [decide_after(slow, gap) for gap in gaps]
    assert fast_sizes[-1] < 100  # the two long gaps cost a round trip each: cheaper
    assert slow_sizes[-1] >= 300  # a round trip costs more than 260 bars more a window
