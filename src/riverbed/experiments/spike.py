"""`riverbed experiment spike`: loss-spike recovery, no intervention vs rollback vs PMA-init.

The PMA paper (arXiv 2505.12082) trained a 330M/3.3B MoE at a constant LR 6e-3 that spiked
irreversibly mid-training; resuming from the SMA of the 3 checkpoints saved before the spike
returned it to its original trajectory. The tiny model here is a small Mixtral-style MoE
(riverbed.model, d_model 64, 8 experts, top-2, ~0.24M parameters) on the embedded corpus, no
gradient clipping. At this scale a constant LR does not spike on its own: from 3e-2 to 1e-1
(also with AdamW beta2 = 0.999) the loss only plateaus higher, so the spike has a cause
(``--cause``):

* ``blip`` (default): a constant healthy LR ``--stable-lr`` (warmup 20) except ``--blip-len``
  steps from ``--jump`` on at ``--lr`` (10x): a transient shock that knocks the model off its
  trajectory, after which the LR is healthy again. The schedule is a function of the step, so any
  restart that replays those steps replays the blip: both guarded arms therefore scale the LR by
  ``stable_lr / lr`` for ``ckpt_every + blip_len`` steps after a restore (guard ``lr_scale``),
  which covers the blip and a few steps around it; the guard acts after 2 anomalous steps.
* ``jump``: the LR rises to ``--lr`` at ``--jump`` and stays there (the guard has no LR scale-down;
  nothing can recover from a permanently too-high LR).

Arms per seed, the same data order and checkpoints every ``CKPT`` steps:

* ``reference`` the same run without the blip / jump (the unspiked trajectory);
* ``none``      no guard: the spike is found afterwards by the same detector on the curve;
* ``rollback``  guard action "rollback" (resume from the newest healthy checkpoint);
* ``pma-init``  guard action "pma-init" (SMA of the 3 newest healthy checkpoints).

Both guarded arms keep the newest restored checkpoint's AdamW moments, so only the restart
weights differ. An arm *passes* the spike when it reaches the last step (not stopped by
max_recoveries); it *returns to the trajectory* when its final loss (mean of the last ``WINDOW``
steps) is within ``TOL`` nats of the reference run's at the same step (same seed). Writes
``results.json``, ``results.md`` (table) and ``spike.png`` under ``--out``.
RIVERBED_BOUNDED=1 runs a short form.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from riverbed.io.atomic import write_json, write_text
from riverbed.config import OptimConfig, RunConfig, TrainConfig
from riverbed.data import DataConfig, load_dataset
from riverbed.errors import RunError
from riverbed.experiments.preamble import add_arguments as add_arguments_common, start
from riverbed.model import ModelConfig
from riverbed.reports.experiment_plots import plot_spike
from riverbed.runs import BranchRecord, Run
from riverbed.orchestration.drive import train_main
from riverbed.training.callbacks import Callback
from riverbed.config.guard import GuardConfig
from riverbed.training.spike_detector import SpikeDetector
from riverbed.units import arg, parse_count

ARMS = ("reference", "none", "rollback", "pma-init")
CAUSES = ("blip", "jump")
STABLE_LR, LR = 3e-2, 3e-1
JUMP, STEPS, CKPT, WINDOW, BLIP_LEN = 155, 300, 10, 20, 3
TOL = 0.05
"""Back on the trajectory: final loss within this many nats of the reference run's."""
BOUNDED = {"steps": 160, "seeds": 1, "jump": 95}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments_common(p, "spike", seeds=3)
    p.add_argument("--steps", type=arg(parse_count), default=None, help=f"steps per run (default {STEPS}; bounded {BOUNDED['steps']})")
    p.add_argument("--cause", choices=CAUSES, default="blip",
                   help="blip: --lr for --blip-len steps, then the stable LR again; jump: --lr from --jump on")
    p.add_argument("--lr", type=float, default=LR, help=f"the too-high LR from step --jump (default {LR})")
    p.add_argument("--stable-lr", type=float, default=STABLE_LR, help=f"the healthy LR (default {STABLE_LR})")
    p.add_argument("--jump", type=arg(parse_count), default=None, help=f"first step at --lr (default {JUMP}; bounded {BOUNDED['jump']})")
    p.add_argument("--blip-len", type=arg(parse_count), default=BLIP_LEN, help=f"steps at --lr for --cause blip (default {BLIP_LEN})")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes (default 1)")


@dataclass
class Curve(Callback):
    """Per global step the loss / grad norm of the trajectory that survived (rewinds replace)."""

    loss: dict[int, float] = field(default_factory=dict)
    grad_norm: dict[int, float] = field(default_factory=dict)
    executed: int = 0

    def on_step_end(self, ctx: Any) -> None:
        self.executed += 1
        s = ctx.step - 1
        for k in [k for k in self.loss if k >= s]:  # a rewind: later steps are off the trajectory now
            del self.loss[k]
            self.grad_norm.pop(k, None)
        self.loss[s] = float(ctx.train_loss)
        self.grad_norm[s] = float(ctx.grad_norm)

    def series(self) -> tuple[list[int], list[float]]:
        steps = sorted(self.loss)
        return steps, [self.loss[s] for s in steps]


def smooth(values: list[float], w: int = WINDOW) -> list[float]:
    """Trailing mean over ``w`` values; non-finite values stay visible as inf."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - w + 1):i + 1]
        out.append(sum(chunk) / len(chunk) if all(math.isfinite(v) for v in chunk) else math.inf)
    return out


def model_config() -> ModelConfig:
    return ModelConfig.preset("tiny-moe", d_model=64, n_experts=8, top_k=2, max_seq_len=64)


def schedule_spec(lr: float, stable_lr: float, jump: int, cause: str = "blip", blip_len: int = BLIP_LEN,
                  arm: str = "none") -> dict[str, Any]:
    """Warmup 20 then the stable LR; the blip / jump as multipliers of it (none for the reference)."""
    stable: dict[str, Any] = {"type": "warmup-stable", "warmup": 20}
    if arm == "reference":
        return stable
    if cause == "jump":
        return {"type": "piecewise", "segments": [
            {"schedule": stable, "steps": jump}, {"schedule": {"type": "constant", "value": lr / stable_lr}}]}
    return {"type": "piecewise", "segments": [
        {"schedule": stable, "steps": jump},
        {"schedule": {"type": "constant", "value": lr / stable_lr}, "steps": blip_len},
        {"schedule": {"type": "constant", "value": 1.0}}]}


def run_config(seed: int, steps: int, lr: float, arm: str, stable_lr: float = STABLE_LR, jump: int = JUMP,
               cause: str = "blip", blip_len: int = BLIP_LEN) -> Any:
    guard = None
    if arm not in ("none", "reference"):
        # 3 steps in a row 10% above the median of the last 50 healthy steps (or 8 MADs); both
        # arms keep the newest restored checkpoint's AdamW moments, so only the weights differ.
        guard = GuardConfig(window=50, min_history=30, detectors=("mad", "ratio"), mad_k=8.0, ratio=1.1,
                            patience=3, action=arm, pma_count=3, pma_method="sma", max_recoveries=4,
                            optimizer_state="from-last")
        if cause == "blip":
            # a restart replays the scheduled blip unless the LR is scaled back over it; patience 2:
            # a blip's damage can fade below 1.1x the median by its third step (and still last)
            guard = replace(guard, patience=2, lr_scale=min(1.0, stable_lr / lr), lr_scale_steps=CKPT + blip_len)
    schedule = schedule_spec(lr, stable_lr, jump, cause, blip_len, arm)
    return RunConfig(model=model_config(), data=DataConfig(), optim=OptimConfig(lr=stable_lr, grad_clip=0.0),
                     schedule=schedule,
                     train=TrainConfig(batch_size=16, seq_len=64, max_steps=steps, ckpt_every=CKPT, eval_every=0,
                                       eval_batches=4, log_every=10, device="cpu", tensorboard=False, seed=seed,
                                       threads=1),
                     guard=guard)


@dataclass(frozen=True)
class Setup:
    """What makes the spike: the too-high ``lr`` from step ``jump`` (for ``blip_len`` steps when
    ``cause`` is "blip", for good when "jump"), the healthy ``stable_lr`` otherwise."""

    lr: float = LR
    stable_lr: float = STABLE_LR
    jump: int = JUMP
    cause: str = "blip"
    blip_len: int = BLIP_LEN

    def config(self, seed: int, steps: int, arm: str) -> RunConfig:
        return run_config(seed, steps, self.lr, arm, self.stable_lr, self.jump, self.cause, self.blip_len)


def run_arm(out: Path, seed: int, steps: int, setup: Setup, arm: str, data: Any,
            progress: bool) -> dict[str, Any]:
    """One arm of one seed (``returned`` is filled in by :func:`compare_to_reference`)."""

    cfg = setup.config(seed, steps, arm)
    run_dir = out / f"seed{seed}" / arm
    run = Run.create(run_dir, cfg)
    run.add_branch(BranchRecord("main", "main", dict(cfg.schedule), status="stopped"))
    curve = Curve()
    stopped = None
    try:
        res = train_main(cfg, run_dir, run, until_step=steps, callbacks=[curve], progress=progress, data=data)
        final_eval = res.last_eval_loss
    except RunError as exc:
        stopped, final_eval = str(exc), None
    events = [e for e in Run(run_dir).branch("main").events if e.get("source") == "guard"]
    steps_seen, losses = curve.series()
    det_cfg = cfg.guard or setup.config(seed, steps, "rollback").guard
    first_spike = next((e["onset"] for e in events if e["event"] == "spike"), None)
    if first_spike is None:  # the control arm (or no spike): same detector, offline
        det = SpikeDetector(det_cfg)
        verdicts = (det.update(s, v) for s, v in zip(steps_seen, losses))
        first_spike = next((v.onset for v in verdicts if v.spike), None)
    sm = smooth(losses)
    pre = None
    if first_spike is not None and first_spike >= WINDOW:
        pre = sum(losses[first_spike - WINDOW:first_spike]) / WINDOW
    final = sm[-1] if sm else math.inf
    passed = stopped is None and len(losses) == steps and math.isfinite(final)
    return {"seed": seed, "arm": arm, "spike_step": first_spike, "pre_spike_loss": pre, "final_loss": final,
            "final_eval_loss": final_eval, "passed": passed,
            "returned": False, "gap": None, "back_at": None,
            "recoveries": sum(e["event"] == "recovery" for e in events), "stopped": stopped,
            "steps_executed": curve.executed, "curve": losses, "grad_norm": [curve.grad_norm[s] for s in steps_seen],
            "events": [{k: v for k, v in e.items() if k in ("event", "step", "onset", "kind", "checkpoints",
                                                             "resume_step", "reason")} for e in events]}


def compare_to_reference(results: list[dict[str, Any]], tol: float = TOL) -> None:
    """Per seed, set each arm's ``gap`` (final loss minus the reference run's at the same step),
    ``returned`` (passed and gap <= tol) and ``back_at`` (first step from which the smoothed loss
    stays within tol of the reference's to the end; None if never)."""
    refs = {r["seed"]: smooth(r["curve"]) for r in results if r["arm"] == "reference"}
    for r in results:
        ref = refs.get(r["seed"])
        sm = smooth(r["curve"])
        if ref is None or not sm:
            continue
        n = min(len(sm), len(ref))
        r["gap"] = sm[n - 1] - ref[n - 1]
        r["returned"] = bool(r["passed"] and r["gap"] <= tol)
        start = r["spike_step"] if r["spike_step"] is not None else 0
        back = None
        for i in range(n - 1, start - 1, -1):  # walk back from the end while within tol
            if not sm[i] - ref[i] <= tol:
                break
            back = i
        r["back_at"] = back if r["passed"] else None


def run_seed(out: Path, seed: int, steps: int, setup: Setup, data: Any,
             progress: bool) -> list[dict[str, Any]]:
    import torch  # lazy: loads torch, which importing this module must not

    torch.set_num_threads(1)
    return [run_arm(out, seed, steps, setup, arm, data, progress) for arm in ARMS]


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for arm in ARMS:
        rs = [r for r in results if r["arm"] == arm]
        finals = [r["final_loss"] for r in rs if math.isfinite(r["final_loss"])]
        spikes = [r["spike_step"] for r in rs if r["spike_step"] is not None]
        rows.append({"arm": arm, "runs": len(rs), "spiked": len(spikes),
                     "spike_step": _mean_spread(spikes), "passed": sum(r["passed"] for r in rs),
                     "returned": sum(r["returned"] for r in rs), "recoveries": _mean_spread([r["recoveries"] for r in rs]),
                     "final_loss": _mean_spread(finals), "pre_spike_loss": _mean_spread(
                         [r["pre_spike_loss"] for r in rs if r["pre_spike_loss"] is not None]),
                     "gap": _mean_spread([r["gap"] for r in rs if r.get("gap") is not None and math.isfinite(r["gap"])]),
                     "back_at": _mean_spread([r["back_at"] for r in rs if r.get("back_at") is not None])})
    return rows


def _mean_spread(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "std": statistics.stdev(xs) if len(xs) > 1 else 0.0}


def _fmt(ms: dict[str, float] | None, digits: int = 3) -> str:
    if ms is None:
        return "-"
    if ms["min"] == ms["max"]:
        return f"{ms['mean']:.{digits}f}"
    return f"{ms['mean']:.{digits}f} [{ms['min']:.{digits}f}, {ms['max']:.{digits}f}]"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| arm | runs | spiked | first spike step | passed the spike | back on the reference trajectory | "
             "back from step | recoveries | pre-spike loss | final loss | final - reference |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['runs']} | {r['spiked']} | {_fmt(r['spike_step'], 0)} | {r['passed']}/{r['runs']} | "
                     f"{r['returned']}/{r['runs']} | {_fmt(r.get('back_at'), 0)} | {_fmt(r['recoveries'], 1)} | "
                     f"{_fmt(r['pre_spike_loss'])} | {_fmt(r['final_loss'])} | {_fmt(r.get('gap'))} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    st = start(args, "spike", bounded_seeds=BOUNDED["seeds"])
    b, seeds, out = st.bounded, st.seeds, st.out
    steps = st.choose(args.steps, BOUNDED["steps"], STEPS)
    jump = st.choose(args.jump, BOUNDED["jump"], JUMP)
    setup = Setup(args.lr, args.stable_lr, jump, args.cause, args.blip_len)
    data = load_dataset(setup.config(0, steps, "none").data)
    jobs = max(1, min(args.jobs, seeds))
    work = [(out, seed, steps, setup, data, st.progress and jobs == 1) for seed in range(seeds)]
    if jobs == 1:
        per_seed = [run_seed(*w) for w in work]
    else:

        # fork: the workers share the loaded corpus; each trains one seed's four arms
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            per_seed = list(pool.map(run_seed, *zip(*work)))
    results = [r for rs in per_seed for r in rs]
    compare_to_reference(results)
    for r in results:
        print(f"seed {r['seed']} {r['arm']:9s} spike@{r['spike_step']} passed={r['passed']} returned={r['returned']} "
              f"back_at={r['back_at']} recoveries={r['recoveries']} final={r['final_loss']:.3f} gap={r['gap']}")
    rows = summarize(results)
    write_json(out / "results.json", {"cause": setup.cause, "lr": args.lr, "stable_lr": args.stable_lr, "jump": jump,
                                      "blip_len": setup.blip_len, "tol": TOL, "steps": steps, "seeds": seeds, "bounded": b,
                                      "model_params": model_config().n_params(), "summary": rows, "runs": results})
    write_text(out / "results.md", table(rows))
    plot_spike(results, out / "spike.png", setup, arms=ARMS, window=WINDOW, tol=TOL, smooth=smooth)
    print(table(rows))
    print(f"wrote {out / 'spike.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
