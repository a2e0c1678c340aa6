"""Pictures of schedules: one or more curves, all decay shapes, a multi-budget plan, boundaries.

matplotlib (Agg) is imported inside each function so importing riverbed stays fast. Every
file goes through an atomic write.

>>> from riverbed.schedules.wsd import WSD
>>> plot_schedules({"wsd": WSD(10, 70, 20)}, "/tmp/riverbed-doctest-lr.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from riverbed.errors import ConfigError
from riverbed.reports.pyplot import pyplot, save
from riverbed.schedules.core import Schedule
from riverbed.schedules.presets import hf_wsd, torchtitan_wsd
from riverbed.schedules.shapes import DECAY_SHAPES
from riverbed.schedules.wsd import WSD

_MAX_POINTS = 4000


def _figure(*args: Any, **kw: Any) -> Any:
    return pyplot().subplots(*args, **kw)


def _save(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> None:
    save(fig, path, dpi=dpi, format="png", bbox_inches="tight")


def _curve(schedule: Schedule, n: int) -> tuple[list[int], list[float]]:
    stride = max(1, n // _MAX_POINTS)
    xs = list(range(0, n, stride))
    if xs[-1] != n - 1:
        xs.append(n - 1)
    # Add the neighbours of every phase boundary so jumps stay sharp when subsampling.
    if stride > 1:
        extra = {s for ph in schedule.phases() for b in (ph.start, ph.end) if b is not None for s in (b - 1, b) if 0 <= s < n}
        xs = sorted(set(xs) | extra)
    return xs, [schedule.multiplier(s) for s in xs]


def plot_schedules(
    schedules: dict[str, Schedule], path: str | os.PathLike[str], *, steps: int | None = None,
    lr: float = 1.0, title: str = "", xlabel: str = "step",
) -> None:
    """Plot LR (``lr`` times the multiplier) against the step for each named schedule."""
    if steps is None:
        totals = [s.total_steps for s in schedules.values() if s.total_steps is not None]
        if not totals:
            raise ConfigError("steps: all schedules are indefinite; say how many steps to plot")
        steps = max(totals)
    fig, ax = _figure(figsize=(7, 3.6))
    for name, sched in schedules.items():
        xs, ys = _curve(sched, steps)
        ax.plot(xs, [lr * y for y in ys], label=name, lw=1.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate" if lr != 1.0 else "LR multiplier")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(schedules) > 1:
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_shapes(path: str | os.PathLike[str], *, min_ratio: float = 0.1) -> None:
    """All decay shapes side by side: WSD(10, 60, 30) with each shape, min_ratio 0.1."""
    n = len(DECAY_SHAPES)
    cols = 5
    rows = -(-n // cols)
    fig, axes = _figure(rows, cols, figsize=(2.6 * cols, 2.1 * rows), sharex=True, sharey=True)
    for ax, shape in zip(axes.flat, DECAY_SHAPES):
        extra = {"half_life": 6.0} if shape == "exp-minicpm" else {}
        s = WSD(warmup=10, stable=60, decay=30, shape=shape, min_ratio=min_ratio, **extra)
        xs, ys = _curve(s, 110)
        ax.plot(xs, ys, color="tab:blue", lw=1.8)
        ax.axvspan(70, 100, color="tab:orange", alpha=0.08)
        ax.axhline(min_ratio, color="grey", lw=0.6, ls=":")
        ax.set_title(shape + (" (T½=6)" if extra else ""), fontsize=10)
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"riverbed decay shapes: WSD warmup 10, stable 60, decay 30 (shaded), min ratio {min_ratio}", fontsize=11)
    fig.tight_layout()
    _save(fig, path, dpi=90)


def plot_boundaries(path: str | os.PathLike[str]) -> None:
    """The boundary steps of riverbed's convention vs transformers and torchtitan (W=4, S=4, D=4)."""

    W, S, D, r = 4, 4, 4, 0.1
    T = W + S + D
    curves = {
        "riverbed (warmup_start 0) = OLMo-core at c = s + 1": WSD(W, S, D, shape="linear", min_ratio=r),
        "transformers get_wsd_schedule": hf_wsd(W, D, T, decay_type="linear", min_lr_ratio=r),
        "torchtitan": torchtitan_wsd(T, W, decay_ratio=D / T, decay_type="linear", min_lr_factor=r),
    }
    fig, ax = _figure(figsize=(7.5, 3.8))
    for i, (name, s) in enumerate(curves.items()):
        xs = list(range(T + 1))
        ax.plot(xs, [s.multiplier(x) for x in xs], marker="os^"[i], ms=6 - i, lw=1.2, label=name, alpha=0.85)
    ax.axvline(T - 0.5, color="black", lw=0.8, ls="--")
    ax.annotate("riverbed: last executed\nstep is at the min", xy=(T - 1, r), xytext=(T - 6.6, 0.18), fontsize=8,
                arrowprops={"arrowstyle": "->", "lw": 0.7})
    ax.text(T - 0.45, 0.55, "end of run\n(step T is not executed)", fontsize=8)
    for x, label in ((W - 0.5, "warmup | stable"), (W + S - 0.5, "stable | decay")):
        ax.axvline(x, color="grey", lw=0.6, ls=":")
        ax.text(x + 0.05, 1.03, label, fontsize=8, color="grey")
    ax.set_xticks(range(T + 1))
    ax.set_xlabel("0-based optimizer step s (the update the multiplier is applied to)")
    ax.set_ylabel("multiplier")
    ax.set_ylim(0, 1.12)
    ax.set_title(f"Boundary steps, W={W} S={S} D={D} min ratio {r}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_plan(plan: Any, path: str | os.PathLike[str]) -> None:
    """One figure, three panels: WSD main + branches, WSD-S, cosine runs (shared x axis)."""
    unit = plan.position_unit
    n = plan.largest
    fig, axes = _figure(3, 1, figsize=(8, 7.5), sharex=True)
    main = plan.main_schedule()
    xs, ys = _curve(main, plan.rows[-1].fork + 1)
    axes[0].plot(xs, ys, color="black", lw=1.8, label="main branch")
    for k, row in enumerate(plan.rows):
        br = plan.wsd_branch(k)
        # Start one step before the fork so the branch visibly leaves the main line.
        bx = list(range(max(row.fork - 1, 0), row.length, max(1, row.decay // 400)))
        axes[0].plot(bx + [row.length - 1], [br.multiplier(s) for s in bx + [row.length - 1]], lw=1.4)
    ws = plan.wsds_schedule()
    xs, ys = _curve(ws, n)
    axes[1].plot(xs, ys, color="tab:green", lw=1.4)
    for k in range(len(plan.rows)):
        cs = plan.cosine_schedule(k)
        xs, ys = _curve(cs, cs.total_steps)
        axes[2].plot(xs, ys, lw=1.4)
    names = {"wsd": "WSD branches", "wsds": "WSD-S (one branch)", "cosine": "one cosine run per budget"}
    for ax, s in zip(axes, ("wsd", "wsds", "cosine")):
        ax.set_title(f"{names[s]}: total {plan.total(s):,} {unit} = {plan.ratio(s):.0%} of the largest run", fontsize=10)
        ax.set_ylabel("LR multiplier")
        ax.grid(alpha=0.3)
        for row in plan.rows:
            ax.axvline(row.length, color="grey", lw=0.5, ls=":")
    axes[0].legend(fontsize=8, loc="center left", bbox_to_anchor=(0.02, 0.55))
    axes[2].set_xlabel(unit)
    fig.tight_layout()
    _save(fig, path)
