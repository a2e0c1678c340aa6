"""Verdicts: a claim's measurements over seeds against a threshold, with the rule stated.

A claim is measured as one number per seed, oriented so that larger means "the claim holds"
(e.g. loss of the last checkpoint minus loss of the merge). With mean m and standard error s
over the seeds, and the claim's threshold t:

* holds          if m - Z s > t  (clearly above the threshold)
* does not hold  if m + Z s < t  (clearly below it)
* inconclusive   otherwise (or with a single seed, whose standard error is unknown)

>>> verdict([0.05, 0.06, 0.04], 0.0).verdict
'holds'
>>> verdict([-0.05, -0.06, -0.04], 0.0).verdict
'does not hold'
>>> verdict([0.05], 0.0).verdict
'inconclusive'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: Standard errors a mean must clear the threshold by (about a 95 % two-sided interval).
Z = 2.0
VERDICTS = ("holds", "does not hold", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    mean: float
    stderr: float | None
    seeds: int
    verdict: str
    rule: str


def verdict(values: Sequence[float], threshold: float, *, what: str = "measured") -> Verdict:
    """The verdict of ``values`` (one per seed) against ``threshold`` (see the module rule)."""
    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: need finite measurements, got {vals!r}")
    m = statistics.fmean(vals)
    s = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
    rule = f"holds if mean - {Z:g} stderr > {threshold:g}; does not hold if mean + {Z:g} stderr < {threshold:g}"
    if s is None:
        return Verdict(m, None, 1, "inconclusive", rule + "; one seed: no standard error")
    if m - Z * s > threshold:
        v = "holds"
    elif m + Z * s < threshold:
        v = "does not hold"
    else:
        v = "inconclusive"
    return Verdict(m, s, len(vals), v, rule)
