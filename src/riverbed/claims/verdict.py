"""Verdicts: a claim's measurements over seeds against a threshold, on a 95 % t-interval.

A claim is measured as one number per seed, with a threshold t and a direction: either larger
means "the claim holds" (e.g. loss of the last checkpoint minus loss of the merge, t = 0), or
smaller does (e.g. a relative prediction error, t = its tolerance). With n seeds, mean m and
standard error s, the 95 % confidence interval of the mean is the Student t interval with n - 1
degrees of freedom, ``ci95 = m -/+ t_{0.975, n-1} s`` (4.30 s with 3 seeds, 2.78 s with 5; not
2 s, which with 3 seeds covers only about 82 %). When larger holds:

* holds          if the whole ci95 lies above t
* does not hold  if the whole ci95 lies below t
* inconclusive   if t lies inside ci95 (or with a single seed, whose spread is unknown)

and mirrored when smaller holds. ``seeds_needed`` is the smallest number of seeds whose interval,
with the observed mean and spread, would exclude t (None where no number would: a mean exactly at
the threshold, or one seed). A *deterministic* measurement (no seed enters it, e.g. a refit of
published data) is judged by its one value: holds on the right side of t, does not hold otherwise.

>>> verdict([0.05, 0.06, 0.04], 0.0).verdict
'holds'
>>> verdict([-0.05, -0.06, -0.04], 0.0).verdict
'does not hold'
>>> verdict([0.05], 0.0).verdict
'inconclusive'
>>> verdict([0.2, 0.3, 0.25], 1.0, larger_holds=False).verdict
'holds'
>>> verdict([0.002], 0.01, larger_holds=False, deterministic=True).verdict
'holds'
>>> round(t95(3), 2), verdict([0.01, 0.03, 0.05], 0.0).seeds_needed
(4.3, 5)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
VERDICTS = ("holds", "does not hold", "inconclusive")
#: seeds_needed above this is reported as "more than" it (the effect is negligible against its spread)
MAX_SEEDS = 10_000


def t95(n: int) -> float:
    """The two-sided 95 % Student t quantile for the mean of ``n`` values (n - 1 degrees of freedom)."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


@dataclass(frozen=True)
class Verdict:
    mean: float
    stderr: float | None
    seeds: int
    verdict: str
    rule: str
    ci95: tuple[float, float] | None = None
    seeds_needed: int | None = None
    """Seeds the observed mean and spread need for ci95 to exclude the threshold (None: no number would)."""


def rule_text(threshold: float, *, larger_holds: bool = True, deterministic: bool = False) -> str:
    """The rule in words, as the table prints it."""
    t = f"{threshold:g}"
    if deterministic:
        return f"deterministic: holds if value {'>' if larger_holds else '<'} {t}, else does not hold"
    if larger_holds:
        return f"holds if the 95 % t-interval (n-1 dof) lies above {t}; does not hold if it lies below {t}"
    return f"holds if the 95 % t-interval (n-1 dof) lies below {t}; does not hold if it lies above {t}"


def seeds_needed(mean: float, sd: float, threshold: float) -> int | None:
    """Smallest n >= 2 with t_{0.975, n-1} sd / sqrt(n) < |mean - threshold|; None where none is
    (a mean at the threshold), MAX_SEEDS + 1 where it is beyond MAX_SEEDS.

    >>> seeds_needed(0.02, 0.01, 0.0), seeds_needed(0.0, 0.01, 0.0), seeds_needed(1e-9, 1.0, 0.0)
    (4, None, 10001)
    """
    gap = abs(mean - threshold)
    if gap == 0 or not math.isfinite(gap):
        return None
    if sd == 0:
        return 2

    def decisive(n: int) -> bool:
        return t95(n) * sd / math.sqrt(n) < gap

    if not decisive(MAX_SEEDS):
        return MAX_SEEDS + 1
    lo, hi = 2, MAX_SEEDS  # decisive(n) is monotone in n: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if decisive(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def verdict(values: Sequence[float], threshold: float, *, larger_holds: bool = True, deterministic: bool = False,
            what: str = "measured") -> Verdict:
    """The verdict of ``values`` (one per seed) against ``threshold`` (see the module rule)."""
    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: need finite measurements, got {vals!r}")
    rule = rule_text(threshold, larger_holds=larger_holds, deterministic=deterministic)
    sign = 1.0 if larger_holds else -1.0
    m = statistics.fmean(vals)
    if deterministic:
        if len(set(vals)) != 1:
            raise ValueError(f"{what}: a deterministic measurement differs between runs: {vals!r}")
        return Verdict(m, None, 1, "holds" if sign * (m - threshold) > 0 else "does not hold", rule, (m, m), 1)
    if len(vals) == 1:
        return Verdict(m, None, 1, "inconclusive", rule + "; one seed: no spread, no interval")
    sd = statistics.stdev(vals)
    n = len(vals)
    s = sd / math.sqrt(n)
    half = t95(n) * s
    lo, hi = m - half, m + half
    if (lo > threshold and larger_holds) or (hi < threshold and not larger_holds):
        v = "holds"
    elif (hi < threshold and larger_holds) or (lo > threshold and not larger_holds):
        v = "does not hold"
    else:
        v = "inconclusive"
    return Verdict(m, s, n, v, rule, (lo, hi), seeds_needed(m, sd, threshold))
