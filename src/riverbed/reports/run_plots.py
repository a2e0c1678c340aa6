"""Plots of a run tree: learning rate and held-out loss against tokens, one line per branch.

The main branch is drawn solid black; each branch in its own colour, starting at its fork
point, so the WSD signature (a branch's loss dropping below the main branch during its decay)
is visible at a glance.

>>> from riverbed.reports.run_plots import plot_run     # doctest: +SKIP
>>> plot_run("demo-run", "demo-run/branches.png")       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.reports.pyplot import pyplot, save
from riverbed.runs import Run
from riverbed.runs.metrics import read_metrics


@dataclass
class Curves:
    """One branch's series against tokens (train rows: LR; eval rows: held-out loss)."""

    name: str
    kind: str
    lr_tokens: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    loss_tokens: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr_flops: list[float] = field(default_factory=list)
    loss_flops: list[float] = field(default_factory=list)
    # PMA monitor rows (``pma_eval_loss``): the merge of the last N checkpoints at each evaluation.
    pma_tokens: list[float] = field(default_factory=list)
    pma_flops: list[float] = field(default_factory=list)
    pma_loss: list[float] = field(default_factory=list)
    # [forecast] rows: the predicted loss of a decay forked at the row's step, placed at that decay's end.
    forecast_tokens: list[float] = field(default_factory=list)
    forecast_flops: list[float] = field(default_factory=list)
    forecast_loss: list[float] = field(default_factory=list)
    forecast_lo: list[float] = field(default_factory=list)
    forecast_hi: list[float] = field(default_factory=list)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def branch_curves(run_dir: str | Path, name: str, kind: str = "main", fork: Any = None) -> Curves:
    """Read ``branches/<name>/metrics.jsonl`` into curves; a branch starts at its fork point."""
    c = Curves(name, kind)
    if fork is not None and fork.eval_loss is not None:
        c.loss_tokens.append(fork.tokens)
        c.loss_flops.append(fork.flops)
        c.loss.append(fork.eval_loss)
    for row in read_metrics(layout.metrics_path(run_dir, name)):
        tokens = _number(row.get("tokens"))
        if tokens is None:
            continue
        flops = _number(row.get("flops"))
        flops = float("nan") if flops is None else flops
        lr = _number(row.get("lr"))
        loss = _number(row.get("eval_loss", row.get("heldout_loss")))  # older metrics rows: "heldout_loss"
        pma = _number(row.get("pma_eval_loss"))
        if row.get("kind", "train") == "train" and lr is not None:
            c.lr_tokens.append(tokens)
            c.lr_flops.append(flops)
            c.lr.append(lr)
        if row.get("kind") == "eval" and loss is not None:
            c.loss_tokens.append(tokens)
            c.loss_flops.append(flops)
            c.loss.append(loss)
        fc = _number(row.get("forecast_loss"))
        step, end = _number(row.get("step")), _number(row.get("forecast_end"))
        if row.get("kind") == "forecast" and fc is not None and step and end:
            c.forecast_tokens.append(tokens * end / step)
            c.forecast_flops.append(flops * end / step)
            c.forecast_loss.append(fc)
            c.forecast_lo.append(_number(row.get("forecast_lo")) or fc)
            c.forecast_hi.append(_number(row.get("forecast_hi")) or fc)
        if row.get("kind") == "pma" and pma is not None:
            c.pma_tokens.append(tokens)
            c.pma_flops.append(flops)
            c.pma_loss.append(pma)
    return c


def run_curves(run_dir: str | Path) -> list[Curves]:
    """Curves of every branch of a run; a branch's LR line starts at its fork point."""
    run = Run.open(run_dir)
    curves = {b.name: branch_curves(run.path, b.name, b.kind, b.fork) for b in run.branches}
    for b in run.branches:
        parent = curves.get(b.parent) if b.parent else None
        c = curves[b.name]
        if parent is None or b.fork is None or b.fork.tokens not in parent.lr_tokens:
            continue
        # Start the branch's LR line where it leaves its parent (the LR of the fork step itself).
        c.lr_tokens.insert(0, b.fork.tokens)
        c.lr_flops.insert(0, b.fork.flops)
        c.lr.insert(0, parent.lr[parent.lr_tokens.index(b.fork.tokens)])
    return list(curves.values())


def plot_curves(curves: list[Curves], out: str | Path, *, title: str = "") -> Path:
    """Two panels sharing the token axis: LR (top) and held-out loss (bottom). Written atomically."""
    plt = pyplot()

    out = Path(out)
    fig, (ax_lr, ax_loss) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    colours = plt.get_cmap("viridis")
    others = [c for c in curves if c.kind not in ("main", "wsds", "cyclic", "cosine")]
    idx = 0
    for c in curves:
        if c.kind in ("main", "wsds", "cyclic", "cosine"):
            label = c.name if c.kind == "main" else f"{c.name} ({c.kind})"
            style: dict[str, Any] = {"color": "black", "linewidth": 2.0, "zorder": 3, "label": label}
        else:
            style = {"color": colours(0.1 + 0.8 * idx / max(1, len(others) - 1)), "linewidth": 1.6, "label": c.name}
            idx += 1
        if c.lr:
            ax_lr.plot(c.lr_tokens, c.lr, **style)
        if c.loss:
            ax_loss.plot(c.loss_tokens, c.loss, marker="o", markersize=2.5, **style)
    ax_lr.set_ylabel("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax_loss.set_ylabel("held-out loss (nats/token)")
    ax_loss.set_xlabel("tokens")
    ax_loss.ticklabel_format(axis="x", style="sci", scilimits=(3, 3))
    for ax in (ax_lr, ax_loss):
        ax.grid(alpha=0.3)
    all_loss = [v for c in curves for v in c.loss]
    if all_loss:
        # Zoom past the first evaluations (random-init loss dwarfs the interesting part).
        tail = sorted(all_loss)
        hi = tail[int(0.9 * (len(tail) - 1))]
        lo = tail[0]
        pad = 0.05 * max(hi - lo, 1e-6)
        ax_loss.set_ylim(lo - pad, hi + pad)
    ax_loss.legend(fontsize=8, loc="upper right")
    if title:
        ax_lr.set_title(title)
    fig.tight_layout()
    return save(fig, out, dpi=120)


def plot_run(run_dir: str | Path, out: str | Path, *, title: str | None = None) -> Path:
    """LR and held-out loss per branch of a run against tokens, saved to ``out`` (PNG/SVG/PDF)."""
    run_dir = Path(run_dir)
    return plot_curves(run_curves(run_dir), out, title=title if title is not None else f"run {run_dir.name}")
