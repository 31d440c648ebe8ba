"""The Deflated Sharpe Ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio",
Journal of Portfolio Management, 2014): the probability that the best of N trials has a
true Sharpe above zero, once the Sharpe expected from the best of N unskilled trials
(given the variance of the trials' Sharpes) and the non-normality of its returns (skew,
kurtosis) are allowed for. Every Sharpe here is per period (daily), not annualised."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

EULER_MASCHERONI = 0.5772156649015329
_NORMAL = NormalDist()


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe of `trials` independent unskilled trials whose
    Sharpes have variance `sharpe_variance` (eq. 6 of the paper)."""
    if trials < 2:
        return 0.0
    g = EULER_MASCHERONI
    inv = _NORMAL.inv_cdf
    return math.sqrt(sharpe_variance) * (
        (1 - g) * inv(1 - 1 / trials) + g * inv(1 - 1 / (trials * math.e))
    )


def probabilistic_sharpe(
    sharpe: float, benchmark: float, observations: int, skew: float, kurtosis: float
) -> float | None:
    """PSR(benchmark): P[true Sharpe > benchmark] from `observations` returns with the given
    skew and (non-excess) kurtosis; None where the variance term is not positive."""
    if observations < 2:
        return None
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:
        return None
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread))


def deflated_sharpe(
    sharpe: float,
    trial_sharpes: Sequence[float],
    observations: int,
    skew: float,
    kurtosis: float,
) -> float | None:
    """DSR = PSR(SR0) with SR0 from the number of trials and the variance of their Sharpes."""
    if len(trial_sharpes) < 2:
        return None
    return probabilistic_sharpe(
        sharpe,
        expected_max_sharpe(len(trial_sharpes), _variance(trial_sharpes)),
        observations,
        skew,
        kurtosis,
    )


def moments(returns: Sequence[float]) -> tuple[float, float, float] | None:
    """(Sharpe, skew, kurtosis) of per-period returns: mean over sample std, and the
    population skewness and (non-excess) kurtosis; None when the returns do not vary."""
    n = len(returns)
    if n < 2:
        return None
    mean = math.fsum(returns) / n
    deviations = [r - mean for r in returns]
    m2 = math.fsum(d * d for d in deviations) / n
    if m2 == 0:
        return None
    m3 = math.fsum(d**3 for d in deviations) / n
    m4 = math.fsum(d**4 for d in deviations) / n
    sample_std = math.sqrt(m2 * n / (n - 1))
    return mean / sample_std, m3 / m2**1.5, m4 / m2**2


def _variance(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
