"""Verdicts: a claim's measurements over seeds against a threshold, with the rule stated.

A claim is measured as one number per seed, with a threshold t and a direction: either larger
means "the claim holds" (e.g. loss of the last checkpoint minus loss of the merge, t = 0), or
smaller does (e.g. a relative prediction error, t = its tolerance). With mean m and standard
error s over the seeds, when larger holds:

* holds          if m - Z s > t  (clearly above the threshold)
* does not hold  if m + Z s < t  (clearly below it)
* inconclusive   otherwise (or with a single seed, whose standard error is unknown)

and mirrored when smaller holds (holds if m + Z s < t, does not hold if m - Z s > t). A
*deterministic* measurement (no seed enters it, e.g. a refit of published data) is judged by its
one value: holds on the right side of t, does not hold otherwise.

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


def rule_text(threshold: float, *, larger_holds: bool = True, deterministic: bool = False) -> str:
    """The rule in words, as the table prints it."""
    t = f"{threshold:g}"
    if deterministic:
        return f"deterministic: holds if value {'>' if larger_holds else '<'} {t}, else does not hold"
    if larger_holds:
        return f"holds if mean - {Z:g} stderr > {t}; does not hold if mean + {Z:g} stderr < {t}"
    return f"holds if mean + {Z:g} stderr < {t}; does not hold if mean - {Z:g} stderr > {t}"


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
        return Verdict(m, None, 1, "holds" if sign * (m - threshold) > 0 else "does not hold", rule)
    s = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
    if s is None:
        return Verdict(m, None, 1, "inconclusive", rule + "; one seed: no standard error")
    if sign * (m - threshold) - Z * s > 0:
        v = "holds"
    elif sign * (m - threshold) + Z * s < 0:
        v = "does not hold"
    else:
        v = "inconclusive"
    return Verdict(m, s, len(vals), v, rule)
