"""`riverbed demo`: one WSD main branch, four decay branches, a table and a picture.

A ~0.8M-parameter Llama-style model learns the embedded corpus byte by byte at a constant
(high) learning rate. The planner (``riverbed.schedules.budget_plan``) puts four budgets at 12.5, 25,
50 and 100 % of the main branch; each decay branch forks at 80 % of its budget and decays the
last 20 % with 1-sqrt (Hagele et al. 2024). The main branch keeps its constant LR to the end
of the largest budget, so at every budget the table and the plot compare the decayed model
with the undecayed main branch *at the same tokens*: the WSD signature is the branch's loss
dropping well below the main branch during its decay (river-valley picture: the decay damps
the oscillation across the valley and reveals the progress made along the river).

Re-running the demo in the same directory resumes it (finished branches are kept).

>>> from riverbed.experiments.demo import run_demo, QUICK           # doctest: +SKIP
>>> result = run_demo("demo-run", QUICK, progress=False)     # doctest: +SKIP
>>> [round(r.branch_loss, 2) for r in result.rows]           # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints import layout
from riverbed.io.atomic import write_json
from riverbed.config import OptimConfig, RunConfig, TrainConfig
from riverbed.data import DataConfig, load_dataset
from riverbed.model import ModelConfig
from riverbed.reports.decays import explain_drop
from riverbed.reports.run_plots import plot_run
from riverbed.orchestration.drive import train_main
from riverbed.runs.fork import loss_at
from riverbed.orchestration.fork import run_requests
from riverbed.runs.fork_plans import requests_from_plan
from riverbed.runs.manifest import BranchRecord
from riverbed.runs.run import Run
from riverbed.runs.view import accounting, human
from riverbed.schedules import schedule_to_spec
from riverbed.schedules.budget_plan import plan_budgets


@dataclass(frozen=True)
class DemoSpec:
    """Size and length of a demo run."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    batch_size: int
    seq_len: int
    lr: float
    warmup: int
    budgets: tuple[int, ...]
    """Budgets in steps; the main branch runs to the largest."""
    decay: float
    """Decay length as a fraction of each budget."""
    shape: str
    eval_every: int
    eval_batches: int
    threads: int
    """torch CPU threads; 0 = torch's default (all cores)."""
    data_source: str = "default"
    """[data] source: the embedded corpus, or a text file."""


# ~0.8M parameters, 1024 tokens per step; main 1200 steps + decays 30 + 60 + 120 + 240 steps
# (1.7M tokens, about 3 minutes on 2 CPU cores). Two torch threads on any machine: the README table (which CI
# checks against a fresh demo) reproduces only at a fixed thread count.
FULL = DemoSpec(d_model=128, n_layers=4, n_heads=4, d_ff=352, batch_size=16, seq_len=64, lr=6e-3, warmup=30,
                budgets=(150, 300, 600, 1200), decay=0.2, shape="1-sqrt", eval_every=25, eval_batches=4, threads=2)
# Seconds: the tiny preset size, a few dozen steps.
QUICK = DemoSpec(d_model=64, n_layers=2, n_heads=4, d_ff=160, batch_size=8, seq_len=32, lr=1e-2, warmup=4,
                 budgets=(12, 24, 36), decay=0.25, shape="1-sqrt", eval_every=6, eval_batches=2, threads=1)


@dataclass(frozen=True)
class DemoRow:
    """One budget of the demo."""

    branch: str
    budget_steps: int
    fork_step: int
    tokens: int
    """Tokens of the finished model (main up to the fork + the decay)."""
    main_loss_at_fork: float | None
    main_loss_at_budget: float | None
    """The undecayed main branch at the same tokens as the finished model."""
    branch_loss: float


@dataclass(frozen=True)
class DemoResult:
    run_dir: Path
    rows: tuple[DemoRow, ...]
    plot: Path
    seconds: float
    tree_tokens: int
    scratch_tokens: int


def demo_config(spec: DemoSpec) -> RunConfig:
    model = ModelConfig(vocab_size=256, d_model=spec.d_model, n_layers=spec.n_layers, n_heads=spec.n_heads,
                        n_kv_heads=spec.n_heads, d_ff=spec.d_ff, max_seq_len=max(64, spec.seq_len))
    train = TrainConfig(batch_size=spec.batch_size, seq_len=spec.seq_len, ckpt_every=0, eval_every=spec.eval_every,
                        eval_batches=spec.eval_batches, log_every=1, tensorboard=False, threads=spec.threads, seed=0)
    return RunConfig(model=model, data=DataConfig(source=spec.data_source), optim=OptimConfig(lr=spec.lr), train=train,
                     schedule={"type": "warmup-stable", "warmup": spec.warmup})


def run_demo(out: str | Path, spec: DemoSpec = FULL, *, progress: bool = True) -> DemoResult:
    """Train the demo run tree under ``out`` (resuming one that is there), plot it, return the table."""

    t0 = time.perf_counter()
    out = Path(out)
    cfg = demo_config(spec)
    plan = plan_budgets(list(spec.budgets), decay=spec.decay, decay_of="budget", shape=spec.shape, warmup=spec.warmup,
                        tokens_per_step=None, n_params=cfg.model.n_params())
    run = Run.create(out, cfg, resume=True)
    data = load_dataset(cfg.data)
    main_spec = schedule_to_spec(cfg.schedule_object())
    # Main to the end of the largest budget, stopping (checkpoint + evaluation) at every fork
    # point and at every budget's end (the undecayed loss at the same tokens, for contrast).
    stops = sorted({r.fork for r in plan.rows} | {r.length for r in plan.rows})
    with run.training(BranchRecord(layout.MAIN, "main", main_spec)):
        train_main(cfg, out, run, until_step=plan.rows[-1].length, extra_stops=stops, progress=progress, data=data)
    # eval_every=0: about ten evaluations per decay branch, so the plots show each branch's drop.
    records = run_requests(run, requests_from_plan(run, plan), cfg=cfg, data=data, progress=progress, skip_finished=True,
                           eval_every=0)
    rows = []
    for row, rec in zip(plan.rows, records):
        final = rec.final
        rows.append(DemoRow(rec.name, row.length, row.fork, final.tokens, loss_at(run, layout.MAIN, row.fork),
                            loss_at(run, layout.MAIN, row.length), float(final.eval_loss)))

    png = plot_run(out, out / "branches.png", title="WSD: constant-LR main branch and 1-sqrt decay branches")
    acc = accounting(run)
    result = DemoResult(out, tuple(rows), png, time.perf_counter() - t0, acc.tree_tokens, acc.scratch_tokens)
    write_json(out / "demo.json", {"rows": [vars(r) for r in rows], "seconds": result.seconds,
                                   "tree_tokens": acc.tree_tokens, "scratch_tokens": acc.scratch_tokens,
                                   "n_params": cfg.model.n_params(), "plot": str(png)})
    return result


def print_result(result: DemoResult) -> None:
    t = Table(title="WSD rewind & decay: one finished model per budget (held-out loss, nats/byte)",
              caption="main @ budget: the undecayed main branch at the same tokens; drop = main @ budget - branch")
    for col in ("budget", "tokens", "main @ fork", "main @ budget", "decay branch", "drop"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in result.rows:
        at = "-" if r.main_loss_at_budget is None else f"{r.main_loss_at_budget:.4f}"
        fork = "-" if r.main_loss_at_fork is None else f"{r.main_loss_at_fork:.4f}"
        drop = "-" if r.main_loss_at_budget is None else f"{r.main_loss_at_budget - r.branch_loss:+.4f}"
        t.add_row(f"{r.budget_steps} steps", human(r.tokens), fork, at, f"{r.branch_loss:.4f}", drop)
    c = Console()
    c.print(t)
    main_last = max((r.budget_steps for r in result.rows), default=None)
    for r in result.rows:
        drop = None if r.main_loss_at_budget is None else r.main_loss_at_budget - r.branch_loss
        why = explain_drop(drop, r.main_loss_at_fork, r.main_loss_at_budget, fork=r.fork_step, budget=r.budget_steps,
                           main_last=main_last)
        if why:
            c.print(f"{r.budget_steps} steps: {why}")
    c.print(f"tokens spent by the tree: {human(result.tree_tokens)}; the same budgets as separate runs: "
            f"{human(result.scratch_tokens)}")
    c.print(f"plot: {result.plot}   run: {result.run_dir} (riverbed ls {result.run_dir})   time: {result.seconds:.0f} s")
