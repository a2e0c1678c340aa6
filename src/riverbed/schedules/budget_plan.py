"""Plan several training budgets at once: WSD branches vs WSD-S vs one cosine run per budget.

For budgets T_1 < ... < T_K (steps, or tokens) and a decay length D_k per budget:

* **WSD branches**: one main branch (``WarmupStable``) runs to the fork point of the largest
  budget, T_K - D_K; branch k forks the main checkpoint at T_k - D_k and decays D_k steps.
  Total = (T_K - D_K) + sum_k D_k.
* **WSD-S**: one branch (``WSDS``) decays over the last D_k steps before each T_k, keeps
  that checkpoint as budget k's model, and resumes at the peak. Total = T_K.
* **Cosine baseline**: one ``Cosine`` run per budget. Total = sum_k T_k.

``decay_of`` says what ``decay`` is a fraction of: ``"budget"`` (D_k = decay * T_k, the
WSD-S authors' configs: 10 % of the cumulative steps), ``"largest"`` (the same D = decay *
T_K for every budget) or ``"period"`` (decay * (T_k - T_{k-1}), OLMo-core's
``decay_fraction``). Lengths are rounded to whole steps. For 10/30/50/70/100 % budgets the
cosine baseline costs 260 % of one largest run; WSD costs 140 % with decay_of="largest"
and 116 % with decay_of="budget" (decay=0.1).

>>> p = plan_budgets([10, 30, 50, 70, 100], decay=0.1, decay_of="largest")
>>> p.ratio("cosine"), round(p.ratio("wsd"), 6), p.ratio("wsds")
(2.6, 1.4, 1.0)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from riverbed.io.atomic import write_text
from riverbed.io.input_files import read_text
from riverbed.errors import ConfigError
from riverbed.schedules.core import WarmupStable, tokens_to_steps
from riverbed.schedules.shapes import validate_shape
from riverbed.schedules.spec import schedule_to_spec
from riverbed.schedules.wsd import WSDS, Cosine, DecayBranch

STRATEGIES = ("wsd", "wsds", "cosine")
DECAY_OF = ("budget", "largest", "period")
PLAN_VERSION = 1


@dataclass(frozen=True)
class BudgetRow:
    """One budget of a plan; lengths in the plan's position unit (steps, or tokens)."""

    budget: float
    """The budget as given, in the plan's ``unit``."""
    length: int
    """The budget in positions (steps, or tokens when no tokens_per_step was given)."""
    fork: int
    """WSD: main-branch checkpoint the decay branch forks from."""
    decay: int
    """WSD: decay length of the branch."""
    wsds_decay: int
    """WSD-S: decay length before this budget's checkpoint."""


@dataclass(frozen=True)
class Plan:
    """The three ways to get a finished model for every budget; see the module docstring."""

    budgets: tuple[float, ...]
    unit: str
    decay: float
    decay_of: str
    shape: str
    min_ratio: float
    warmup: float
    tokens_per_step: int | None
    n_params: int | None
    rows: tuple[BudgetRow, ...]

    # --- positions and totals ----------------------------------------------------------
    @property
    def position_unit(self) -> str:
        """What schedule steps count: "steps", or "tokens" for token budgets without tokens_per_step."""
        return "tokens" if self.unit == "tokens" and self.tokens_per_step is None else "steps"

    @property
    def warmup_positions(self) -> int:
        return _warmup_positions(self.warmup, self.unit, self.tokens_per_step)

    @property
    def largest(self) -> int:
        return self.rows[-1].length

    def total(self, strategy: str) -> int:
        """Total positions (steps or tokens) trained by a strategy."""
        if strategy == "wsd":
            return self.rows[-1].fork + sum(r.decay for r in self.rows)
        if strategy == "wsds":
            return self.largest
        if strategy == "cosine":
            return sum(r.length for r in self.rows)
        raise ConfigError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")

    def ratio(self, strategy: str) -> float:
        """Total cost relative to one run of the largest budget."""
        return self.total(strategy) / self.largest

    def tokens(self, positions: int) -> int | None:
        if self.position_unit == "tokens":
            return positions
        return None if self.tokens_per_step is None else positions * self.tokens_per_step

    def flops(self, positions: int) -> float | None:
        """Training FLOPs as 6 * n_params * tokens (None without n_params or tokens)."""
        tokens = self.tokens(positions)
        return None if tokens is None or self.n_params is None else 6.0 * self.n_params * tokens

    # --- schedules the trainer runs ------------------------------------------------------
    def main_schedule(self) -> WarmupStable:
        """The WSD main branch, run to ``rows[-1].fork`` positions."""
        return WarmupStable(warmup=self.warmup_positions)

    def wsd_branch(self, k: int) -> DecayBranch:
        """Budget k's decay branch, forked from the main branch."""
        r = self.rows[k]
        return DecayBranch(self.main_schedule(), fork_step=r.fork, decay_steps=r.decay, shape=self.shape, min_ratio=self.min_ratio)

    def wsds_schedule(self) -> WSDS:
        return WSDS(
            budgets=tuple(r.length for r in self.rows), warmup=self.warmup_positions,
            decays=tuple(r.wsds_decay for r in self.rows), shape=self.shape, min_ratio=self.min_ratio,
        )

    def cosine_schedule(self, k: int) -> Cosine:
        return Cosine(steps=self.rows[k].length, warmup=self.warmup_positions, min_ratio=self.min_ratio)

    def schedules(self, k: int) -> dict[str, Any]:
        """All schedules for budget k: {"main", "wsd", "wsds", "cosine"}."""
        return {
            "main": self.main_schedule(), "wsd": self.wsd_branch(k),
            "wsds": self.wsds_schedule(), "cosine": self.cosine_schedule(k),
        }

    # --- JSON --------------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        return {
            "budgets": list(self.budgets), "unit": self.unit, "decay": self.decay, "decay_of": self.decay_of,
            "shape": self.shape, "min_ratio": self.min_ratio, "warmup": self.warmup,
            "tokens_per_step": self.tokens_per_step, "n_params": self.n_params,
        }

    def to_dict(self) -> dict[str, Any]:
        strategies = {
            s: {"total": t, "ratio": self.ratio(s), "tokens": self.tokens(t), "flops": self.flops(t)}
            for s, t in ((s, self.total(s)) for s in STRATEGIES)
        }
        return {
            "version": PLAN_VERSION,
            "inputs": self.inputs(),
            "position_unit": self.position_unit,
            "rows": [asdict(r) for r in self.rows],
            "strategies": strategies,
            "schedules": {
                "main": schedule_to_spec(self.main_schedule()),
                "wsd": [schedule_to_spec(self.wsd_branch(k)) for k in range(len(self.rows))],
                "wsds": schedule_to_spec(self.wsds_schedule()),
                "cosine": [schedule_to_spec(self.cosine_schedule(k)) for k in range(len(self.rows))],
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Rebuild a plan from ``to_json`` output (re-planned from its inputs, then cross-checked)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"plan: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION or not isinstance(data.get("inputs"), dict):
            raise ConfigError(f"plan: expected a riverbed plan (version {PLAN_VERSION}) with 'inputs'")
        plan = plan_budgets(**data["inputs"])
        if "rows" in data and data["rows"] != [asdict(r) for r in plan.rows]:
            raise ConfigError("plan.rows: do not match what the plan's inputs give (edited, or from another riverbed)")
        return plan

    def save(self, path: str) -> None:
        write_text(path, self.to_json())


def _warmup_positions(warmup: float, unit: str, tokens_per_step: int | None) -> int:
    if unit == "tokens" and tokens_per_step is not None:
        return 0 if warmup == 0 else tokens_to_steps(warmup, tokens_per_step, field="warmup")
    return int(warmup)


def _positions(value: float, unit: str, tokens_per_step: int | None, field: str) -> int:
    if unit == "tokens" and tokens_per_step is not None:
        return tokens_to_steps(value, tokens_per_step, field=field)
    if abs(value - round(value)) > 1e-9:
        raise ConfigError(f"{field}: must be a whole number of {unit}, got {value!r}")
    return int(round(value))


def plan_budgets(
    budgets: list[float],
    unit: str = "steps",
    decay: float = 0.1,
    shape: str = "1-sqrt",
    warmup: float = 0,
    tokens_per_step: int | None = None,
    n_params: int | None = None,
    decay_of: str = "budget",
    min_ratio: float = 0.0,
) -> Plan:
    """Plan WSD branches, WSD-S and cosine runs for ``budgets`` (increasing, in ``unit``).

    ``warmup`` is in ``unit`` too. With ``unit="tokens"`` and ``tokens_per_step``, budgets
    become ceil(tokens / tokens_per_step) steps; without it, schedules count tokens.

    >>> p = plan_budgets([100, 200], decay=0.1)
    >>> [(r.fork, r.decay) for r in p.rows], p.total("wsd")
    ([(90, 10), (180, 20)], 210)
    """
    if unit not in ("steps", "tokens"):
        raise ConfigError(f"unit: must be 'steps' or 'tokens', got {unit!r}")
    if decay_of not in DECAY_OF:
        raise ConfigError(f"decay_of: must be one of {', '.join(DECAY_OF)}, got {decay_of!r}")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay <= 1.0:
        raise ConfigError(f"decay: must be a fraction in (0, 1], got {decay!r}")
    if isinstance(min_ratio, bool) or not isinstance(min_ratio, (int, float)) or not 0.0 <= min_ratio <= 1.0:
        raise ConfigError(f"min_ratio: must be a number in [0, 1], got {min_ratio!r}")
    validate_shape("plan", shape, float(min_ratio), None, 2)
    for name, v in (("tokens_per_step", tokens_per_step), ("n_params", n_params)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{name}: must be a positive integer, got {v!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0 or not math.isfinite(warmup):
        raise ConfigError(f"warmup: must be >= 0 (in {unit}), got {warmup!r}")
    if not budgets:
        raise ConfigError("budgets: need at least one budget, got none")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0 or not math.isfinite(b):
            raise ConfigError(f"budgets: each must be a positive number of {unit}, got {b!r}")
    for a, b in zip(budgets, budgets[1:]):
        if b <= a:
            kind = "duplicate" if a == b else "out of order"
            raise ConfigError(f"budgets: must be strictly increasing, got {kind} {a!r} then {b!r} in {list(budgets)!r}")
    lengths = [_positions(b, unit, tokens_per_step, "budgets") for b in budgets]
    for a, b in zip(lengths, lengths[1:]):
        if b <= a:
            raise ConfigError(
                f"budgets: {list(budgets)!r} round to the same step count ({a}) with tokens_per_step={tokens_per_step}"
            )
    w = _warmup_positions(warmup, unit, tokens_per_step)
    rows = []
    prev = 0
    for k, (b, t) in enumerate(zip(budgets, lengths)):
        base = {"budget": t, "largest": lengths[-1], "period": t - prev}[decay_of]
        d = max(1, round(decay * base))
        if w + d > t:
            pu = unit if tokens_per_step is None else "steps"
            raise ConfigError(f"warmup: warmup ({w}) + decay ({d}) is longer than budget {b!r} ({t} {pu})")
        room = t - prev - (w if k == 0 else 0)
        if d > room:
            raise ConfigError(
                f"decay: WSD-S decay {d} before budget {b!r} is longer than its period ({room}); "
                f"use decay_of='period' or a smaller decay"
            )
        rows.append(BudgetRow(budget=float(b), length=t, fork=t - d, decay=d, wsds_decay=d))
        prev = t
    return Plan(
        budgets=tuple(float(b) for b in budgets), unit=unit, decay=float(decay), decay_of=decay_of, shape=shape,
        min_ratio=float(min_ratio), warmup=float(warmup), tokens_per_step=tokens_per_step, n_params=n_params, rows=tuple(rows),
    )


def load_plan(path: str) -> Plan:
    """Read a plan saved with ``Plan.save`` / ``riverbed plan -o``; errors name the file."""
    text = read_text(path, "plan file")
    try:
        return Plan.from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"plan file {path}: {exc}") from None
