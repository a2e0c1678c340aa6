"""Compute accounting of a run tree: what the tree spent vs independent from-scratch runs.

A WSD main branch trains once; every decay branch forked from it adds only its decay. To get
the same finished models without the tree, each budget would be a separate run from step 0
(a cosine schedule is only optimal at the length it was planned for). For budgets of 10, 30,
50, 70 and 100 % of the largest, the separate runs cost 260 % of one run; the tree costs the
main branch up to the last fork plus the decays (~116 % with 10 % decays, ~130-140 % with
20 % ones, the "140 % instead of 260 %" of the WSD literature).

Everything here is a pure function of numbers (tokens and FLOPs are cumulative along a
lineage, so a decay branch forked at 800 tokens that ends at 1000 spent 200 of its own).

>>> spend = [Spend("main", 900, 900.0), Spend("d100", 10, 10.0), Spend("d1000", 100, 100.0)]
>>> budgets = [Budget("d100", 100, 100.0), Budget("d1000", 1000, 1000.0)]
>>> a = account(spend, budgets)
>>> a.tree_tokens, a.scratch_tokens, round(a.tree_pct), round(a.scratch_pct)
(1010, 1100, 101, 110)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Spend:
    """Tokens and FLOPs one branch trained itself (its own steps, not its parent's)."""

    branch: str
    tokens: int
    flops: float


@dataclass(frozen=True)
class Budget:
    """A finished model: the tokens/FLOPs a from-scratch run to the same point would spend."""

    branch: str
    tokens: int
    flops: float


@dataclass(frozen=True)
class Accounting:
    """Tree spend vs from-scratch spend; percentages are of the largest budget (one full run)."""

    tree_tokens: int
    tree_flops: float
    scratch_tokens: int
    scratch_flops: float
    largest_budget_tokens: int
    n_budgets: int
    needed_tokens: int | None = None
    """What the tree needed for its finished models: each branch only up to its last fork point
    or finished model (a main branch trained further is spent, but for later budgets)."""
    needed_flops: float | None = None

    @property
    def tree_pct(self) -> float:
        return _pct(self.tree_tokens, self.largest_budget_tokens)

    @property
    def scratch_pct(self) -> float:
        return _pct(self.scratch_tokens, self.largest_budget_tokens)

    @property
    def needed_pct(self) -> float:
        return _pct(self.needed_tokens if self.needed_tokens is not None else self.tree_tokens, self.largest_budget_tokens)

    @property
    def saving(self) -> float:
        """Fraction of the from-scratch tokens the tree did not need (negative: it spent more)."""
        return 1.0 - self.tree_tokens / self.scratch_tokens if self.scratch_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tree_pct": self.tree_pct, "needed_pct": self.needed_pct, "scratch_pct": self.scratch_pct,
                "saving": self.saving}


def _pct(x: float, of: float) -> float:
    return 100.0 * x / of if of else float("nan")


def account(spend: Sequence[Spend], budgets: Sequence[Budget], needed: Sequence[Spend] | None = None) -> Accounting:
    """Sum what the branches spent (and ``needed``: spent up to what the finished models use)
    and what the same finished models cost from scratch."""
    for s in (*spend, *(needed or ())):
        if s.tokens < 0 or s.flops < 0:
            raise ValueError(f"branch {s.branch!r}: negative spend ({s.tokens} tokens, {s.flops} FLOPs)")
    return Accounting(
        needed_tokens=None if needed is None else sum(s.tokens for s in needed),
        needed_flops=None if needed is None else float(sum(s.flops for s in needed)),
        tree_tokens=sum(s.tokens for s in spend),
        tree_flops=float(sum(s.flops for s in spend)),
        scratch_tokens=sum(b.tokens for b in budgets),
        scratch_flops=float(sum(b.flops for b in budgets)),
        largest_budget_tokens=max((b.tokens for b in budgets), default=0),
        n_budgets=len(budgets),
    )


def wsd_tree_fractions(budgets: Sequence[float], decay_fraction: float) -> tuple[float, float]:
    """(tree, from-scratch) cost, as fractions of the largest budget, of WSD branches.

    Each budget ``T`` is a decay of ``decay_fraction * T`` forked at ``(1 - decay_fraction) * T``
    from one main branch, which therefore trains up to the last fork.

    >>> [round(x, 2) for x in wsd_tree_fractions([0.1, 0.3, 0.5, 0.7, 1.0], 0.1)]
    [1.16, 2.6]
    """
    if not budgets:
        return 0.0, 0.0
    if not 0 < decay_fraction <= 1:
        raise ValueError(f"decay_fraction={decay_fraction!r}: expected a number in (0, 1]")
    top = max(budgets)
    main = (1 - decay_fraction) * top
    decays = sum(decay_fraction * b for b in budgets)
    return (main + decays) / top, sum(budgets) / top


def run_accounting(branches: Sequence[Any], points: Sequence[Any]) -> Accounting:
    """Accounting of a run from its manifest branch records and finished points."""
    spend, needed = [], []
    for b in branches:
        last = b.last
        if last is None:
            continue
        start_t = b.fork.tokens if b.fork else 0
        start_f = b.fork.flops if b.fork else 0.0
        spend.append(Spend(b.name, max(0, last.tokens - start_t), max(0.0, last.flops - start_f)))
        # Needed: up to the furthest point used by a finished model of this branch or by a child's fork.
        ends = [(p.tokens, p.flops) for p in points if p.branch == b.name]
        ends += [(c.fork.tokens, c.fork.flops) for c in branches if c.parent == b.name and c.fork is not None]
        end_t, end_f = max(ends, default=(start_t, start_f))
        needed.append(Spend(b.name, max(0, end_t - start_t), max(0.0, end_f - start_f)))
    budgets = [Budget(p.branch, p.tokens, p.flops) for p in points]
    return account(spend, budgets, needed)
