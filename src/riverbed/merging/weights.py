"""Merge weights of the PMA paper (ByteDance Seed, arXiv 2505.12082), as pure functions.

Checkpoints are ordered oldest first: index 1 is the oldest, index N the newest. Every function
returns a tuple of Python floats that sums to 1 (up to float rounding), except :func:`explicit`,
which normalises the weights it is given. Print them: the EMA weights surprise people.

>>> sma(4)
(0.25, 0.25, 0.25, 0.25)
>>> [round(w, 3) for w in ema(10, 0.1)][0], [round(w, 3) for w in ema(10, 0.1)][-1]
(0.387, 0.1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from riverbed.errors import MergeError

EMA_FORMS = ("recursive", "normalized")


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MergeError(f"number of checkpoints must be a positive integer, got {n!r}")


def sma(n: int) -> tuple[float, ...]:
    """Simple moving average: every checkpoint weighs 1/N (the paper's default)."""
    _check_n(n)
    return tuple(1.0 / n for _ in range(n))


def ema(n: int, alpha: float, form: str = "recursive") -> tuple[float, ...]:
    """Exponential moving average over N checkpoints, oldest first.

    ``form="recursive"`` (default) is the paper's recursion M(i) = alpha*M_i + (1-alpha)*M(i-1)
    started at M(1) = M_1, i.e. w_1 = (1-alpha)^(N-1) and w_i = alpha*(1-alpha)^(N-i) for i >= 2.
    With a small alpha the *oldest* checkpoint weighs most (alpha=0.1, N=10: 0.387 vs 0.100).
    ``form="normalized"`` is the paper's closed form alpha*(1-alpha)^(N-i), renormalised to sum
    to 1 (it does not on its own), so the newest checkpoint weighs most.

    >>> ema(3, 0.5)
    (0.25, 0.25, 0.5)
    """
    _check_n(n)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not (0.0 < alpha <= 1.0):
        raise MergeError(f"EMA alpha must be in (0, 1], got {alpha!r}")
    if form not in EMA_FORMS:
        raise MergeError(f"EMA form must be one of {', '.join(EMA_FORMS)}, got {form!r}")
    a = float(alpha)
    closed = [a * (1.0 - a) ** (n - i) for i in range(1, n + 1)]
    if form == "recursive":
        closed[0] = (1.0 - a) ** (n - 1)
        return tuple(closed)
    total = math.fsum(closed)
    return tuple(w / total for w in closed)


def wma(n: int | None = None, steps: Sequence[float] | None = None) -> tuple[float, ...]:
    """Weighted moving average: w_i proportional to the position i (newest weighs most), or to
    the given ``steps`` (one per checkpoint, oldest first) when those are passed instead of N.

    >>> wma(3)
    (0.16666666666666666, 0.3333333333333333, 0.5)
    >>> wma(steps=[100, 300])
    (0.25, 0.75)
    """
    if (n is None) == (steps is None):
        raise MergeError("wma needs exactly one of n (positions 1..N) or steps (one per checkpoint)")
    if steps is None:
        _check_n(n)  # type: ignore[arg-type]
        raw = [float(i) for i in range(1, n + 1)]  # type: ignore[operator]
    else:
        raw = [float(s) for s in steps]
        if not raw:
            raise MergeError("wma steps must name at least one checkpoint, got []")
        bad = [s for s in raw if not math.isfinite(s) or s < 0]
        if bad:
            raise MergeError(f"wma steps must be finite and >= 0, got {bad[0]!r}")
    return _normalise(raw, "wma steps")


def explicit(weights: Sequence[float]) -> tuple[float, ...]:
    """User-given weights, normalised to sum to 1. Negative entries are allowed (task-vector
    style extrapolation), but the sum must be positive.

    >>> explicit([1, 1, 2])
    (0.25, 0.25, 0.5)
    """
    raw = [float(w) for w in weights]
    if not raw:
        raise MergeError("explicit weights must name at least one checkpoint, got []")
    bad = [w for w in raw if not math.isfinite(w)]
    if bad:
        raise MergeError(f"weights must be finite numbers, got {bad[0]!r}")
    return _normalise(raw, "weights")


def _normalise(raw: list[float], what: str) -> tuple[float, ...]:
    try:
        total = math.fsum(raw)
    except OverflowError:  # weights near the float limit (1e308, 1e308): normalise their ratios instead
        top = max(abs(w) for w in raw)
        raw = [w / top for w in raw]
        total = math.fsum(raw)
    if math.isinf(total):  # the sum itself overflows (no intermediate overflow): same remedy
        top = max(abs(w) for w in raw)
        raw = [w / top for w in raw]
        total = math.fsum(raw)
    if not total > 0.0:
        raise MergeError(f"{what} must sum to a positive number, got {raw!r} (sum {total!r})")
    return tuple(w / total for w in raw)


def weights_for(
    method: str,
    n: int,
    *,
    alpha: float | None = None,
    ema_form: str = "recursive",
    weights: Sequence[float] | None = None,
    steps: Sequence[float] | None = None,
) -> tuple[float, ...]:
    """Dispatch on a method name: ``sma``, ``ema`` (needs ``alpha``), ``wma`` (by position, or by
    ``steps`` when given) or ``weights`` (needs ``weights``, one per checkpoint)."""
    if method == "sma":
        return sma(n)
    if method == "ema":
        if alpha is None:
            raise MergeError("method 'ema' needs alpha (e.g. --alpha 0.1 or 0.2, as in the PMA paper)")
        return ema(n, alpha, ema_form)
    if method == "wma":
        if steps is not None:
            if len(steps) != n:
                raise MergeError(f"wma steps: {len(steps)} given for {n} checkpoints")
            return wma(steps=steps)
        return wma(n)
    if method == "weights":
        if weights is None:
            raise MergeError("method 'weights' needs weights (e.g. --weights 0.2,0.3,0.5)")
        if len(weights) != n:
            raise MergeError(f"weights: {len(weights)} given ({list(weights)}) for {n} inputs")
        return explicit(weights)
    raise MergeError(f"merge method must be one of sma, ema, wma, weights; got {method!r}")


def format_weights(weights: Sequence[float], labels: Sequence[str] | None = None) -> str:
    """One line per checkpoint, oldest first: ``  1  0.387420  step_0000000100``."""
    lines = []
    for i, w in enumerate(weights):
        label = f"  {labels[i]}" if labels is not None else ""
        lines.append(f"{i + 1:>4}  {w:.6f}{label}")
    return "\n".join(lines)


def decay_weights(multipliers: Sequence[float]) -> tuple[float, ...]:
    """Merge weights over theta_s..theta_{s+K} that stand in for a K-update decay from step s.

    ``multipliers`` are r_0..r_{K-1}: the LR of each decay update over the constant main-branch LR.
    To first order (same gradients g_j at the same points) the decay ends at
    theta_s - eta sum_j r_j g_j, and the constant-LR checkpoints are theta_{s+k} = theta_s - eta sum_{j<k} g_j,
    so the merge sum_k c_k theta_{s+k} lands there when sum_{k>j} c_k = r_j, that is (issue 12; WSM,
    arXiv 2507.17634): c_0 = 1 - r_0, c_k = r_{k-1} - r_k for 0 < k < K, c_K = r_{K-1}. They sum to 1 and are
    non-negative for a non-increasing decay within [0, 1]. Returns K + 1 weights, oldest (the fork) first.

    >>> decay_weights([1.0, 0.5])          # K = 2, linear to zero: theta_{s+1} and theta_{s+2} equally
    (0.0, 0.5, 0.5)
    """
    r = [float(v) for v in multipliers]
    if not r:
        raise MergeError("decay multipliers: need at least one decay update")
    for i, v in enumerate(r):
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise MergeError(f"decay multipliers[{i}] = {v!r}: must be in [0, 1] (LR over the main branch's LR)")
        if i and v > r[i - 1]:
            raise MergeError(f"decay multipliers[{i}] = {v!r} rises above multipliers[{i - 1}] = {r[i - 1]!r}: a merge with "
                             "non-negative weights emulates only a non-increasing decay")
    return (1.0 - r[0],) + tuple(r[k - 1] - r[k] for k in range(1, len(r))) + (r[-1],)
