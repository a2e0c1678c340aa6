"""`riverbed experiment bigram`: WSD on the bigram language, seen through the landscape probes.

Per seed: a tiny dense model trains a constant-LR main branch on ``source = "bigram"`` data
(riverbed.data.bigram: half the contexts deterministic, the rest up to 16 successors), with
checkpoints every ``CKPT`` steps; a linear decay branch forks at the last main checkpoint. Then:

* the held-out loss of main and decay against tokens, with the exact optimum (entropy rate);
* the drop of the decay split by context-entropy bucket (``eval_loss_by_bucket``);
* interpolation between two stable-phase checkpoints (convex with an interior minimum below both
  ends?) against the interpolation from the fork toward the decayed checkpoint (monotone?);
* the top Hessian eigenvalue (sharpness) at every main checkpoint and at the decayed one.

Mean and standard error over seeds (3 by default). Writes ``results.json``, ``results.md`` and
``bigram.png`` under ``--out``. RIVERBED_BOUNDED=1 (or ``--quick``) runs a short one-seed form.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import RunConfig
from riverbed.io.atomic import write_json, write_text
from riverbed.data import DataConfig, load_dataset
from riverbed.errors import ConfigError
from riverbed.experiments.preamble import add_arguments as add_arguments_common, fresh_output, mean_se, options
from riverbed.experiments.small import small_config
from riverbed.model import ModelConfig
from riverbed.reports.river_valley import plot_bigram_experiment
from riverbed.runs import Run
from riverbed.orchestration.drive import train_main
from riverbed.runs.fork import plan_requests
from riverbed.orchestration.fork import run_requests
from riverbed.training import read_metrics
from riverbed.units import arg, parse_count

LR, MAIN_STEPS, CKPT, DECAY, EVAL_EVERY, POINTS = 1e-2, 400, 50, 80, 25, 11
HVPS = 40
QUICK = {"main_steps": 40, "ckpt": 20, "decay": 10, "seeds": 1, "eval_every": 10, "points": 5, "hvps": 12}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=arg(parse_count, positive=True), default=None, help=f"main-branch steps (default {MAIN_STEPS})")
    p.add_argument("--decay-steps", dest="decay", type=arg(parse_count, positive=True), default=None, help=f"decay steps (default {DECAY})")
    p.add_argument("--lr", type=float, default=LR, help=f"stable LR (default {LR})")
    add_arguments_common(p, "bigram", seeds=3, quick=True)


def config(seed: int, steps: int, ckpt: int, eval_every: int, lr: float) -> RunConfig:
    return small_config(seed, lr, {"type": "warmup-stable", "warmup": 10},
                        model=ModelConfig.preset("tiny", vocab_size=64, max_seq_len=64),
                        data=DataConfig(source="bigram", vocab_size=64, bigram_tokens=1 << 18, bigram_successors=16),
                        batch_size=16, seq_len=64, max_steps=steps, ckpt_every=ckpt, eval_every=eval_every,
                        eval_batches=4, log_every=5)


def one_seed(out: Path, seed: int, steps: int, ckpt: int, decay: int, eval_every: int, lr: float, data: Any,
             progress: bool, points: int = POINTS, hvps: int = HVPS) -> dict[str, Any]:
    from riverbed.landscape import interpolate, open_checkpoints, sharpness  # lazy: loads torch, which importing this module must not

    cfg = config(seed, steps, ckpt, eval_every, lr)
    run_dir = out / f"seed{seed}"
    run = Run.create(run_dir, cfg)
    train_main(cfg, run_dir, run, until_step=steps, progress=progress, data=data)
    (rec,) = run_requests(run, plan_requests(run, [steps], "linear", decay), progress=progress, data=data)
    decayed = layout.list_checkpoints(run_dir, rec.name)[-1].path
    mains = [r for r in layout.list_checkpoints(run_dir, "main") if r.step > 0]

    def evals(branch: str) -> list[dict[str, Any]]:
        return [r for r in read_metrics(layout.metrics_path(run_dir, branch)) if r.get("kind") == "eval"]

    main_rows, decay_rows = evals("main"), evals(rec.name)
    fork_row = next(r for r in main_rows if r["step"] == steps)
    end_row = decay_rows[-1]
    setup, params = open_checkpoints([*(r.path for r in mains), decayed], data=data)
    obj = setup.objective
    a, f, d = params[len(mains) // 2 - 1 if len(mains) > 1 else 0], params[len(mains) - 1], params[-1]
    stable = interpolate(obj, a, f, points=points)
    toward = interpolate(obj, f, d, points=points)
    sharp = [sharpness(obj, p, top=1, max_hvps=hvps, tol=1e-3, seed=seed) for p in params]
    return {
        "seed": seed, "decay_branch": rec.name, "entropy_rate": data.language.entropy_rate,
        "main": [(r["tokens"], r["eval_loss"]) for r in main_rows], "decay": [(r["tokens"], r["eval_loss"]) for r in decay_rows],
        "fork_loss": fork_row["eval_loss"], "decayed_loss": end_row["eval_loss"], "optimal_loss": end_row["eval_optimal_loss"],
        "buckets_fork": fork_row["eval_loss_by_bucket"], "buckets_decayed": end_row["eval_loss_by_bucket"],
        "interp_stable": {"from_step": mains[len(mains) // 2 - 1 if len(mains) > 1 else 0].step, "to_step": steps,
                          **stable.to_json(), **_shape(stable.losses)},
        "interp_toward_decay": {"from_step": steps, **toward.to_json(), **_shape(toward.losses)},
        "sharpness": [{"step": r.step, "branch": "main", "top": s.eigenvalues[0], "converged": s.converged}
                      for r, s in zip(mains, sharp)]
                     + [{"step": steps + decay, "branch": rec.name, "top": sharp[-1].eigenvalues[0], "converged": sharp[-1].converged}],
    }


def _shape(losses: tuple[float, ...]) -> dict[str, bool]:
    """Interior minimum below both ends; monotone decrease from the first end (to 1e-6 noise)."""
    i = min(range(len(losses)), key=losses.__getitem__)
    return {"interior_min": 0 < i < len(losses) - 1 and losses[i] < min(losses[0], losses[-1]),
            "monotone_decreasing": all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    buckets = [b for b in ("deterministic", "low", "mid", "high") if all(b in r["buckets_decayed"] for r in results)]
    return {
        "entropy_rate": results[0]["entropy_rate"],
        "stable_loss": mean_se([r["fork_loss"] for r in results]),
        "decayed_loss": mean_se([r["decayed_loss"] for r in results]),
        "decay_drop": mean_se([r["fork_loss"] - r["decayed_loss"] for r in results]),
        "excess_stable": mean_se([r["fork_loss"] - r["optimal_loss"] for r in results]),
        "excess_decayed": mean_se([r["decayed_loss"] - r["optimal_loss"] for r in results]),
        "bucket_drop": {b: mean_se([r["buckets_fork"][b] - r["buckets_decayed"][b] for r in results]) for b in buckets},
        "stable_interior_min": sum(r["interp_stable"]["interior_min"] for r in results),
        "toward_decay_monotone": sum(r["interp_toward_decay"]["monotone_decreasing"] for r in results),
        "sharpness_fork": mean_se([r["sharpness"][-2]["top"] for r in results]),
        "sharpness_decayed": mean_se([r["sharpness"][-1]["top"] for r in results]),
        "seeds": len(results),
    }


def _fmt(m: dict[str, Any]) -> str:
    return f"{m['mean']:.4f}" + (f" ± {m['se']:.4f}" if m.get("se") is not None else "")


def table(s: dict[str, Any]) -> str:
    n = s["seeds"]
    lines = ["| quantity | mean ± s.e. over seeds |", "|---|---|",
             f"| entropy rate (optimal loss) | {s['entropy_rate']:.4f} |",
             f"| held-out loss, end of stable phase | {_fmt(s['stable_loss'])} |",
             f"| held-out loss after the decay | {_fmt(s['decayed_loss'])} |",
             f"| drop in the decay | {_fmt(s['decay_drop'])} |",
             f"| excess loss, stable / decayed | {_fmt(s['excess_stable'])} / {_fmt(s['excess_decayed'])} |"]
    lines += [f"| drop of bucket `{b}` | {_fmt(m)} |" for b, m in s["bucket_drop"].items()]
    lines += [f"| stable-to-stable line has an interior minimum | {s['stable_interior_min']}/{n} seeds |",
              f"| line toward the decayed checkpoint falls monotonically | {s['toward_decay_monotone']}/{n} seeds |",
              f"| top Hessian eigenvalue at the fork / decayed | {_fmt(s['sharpness_fork'])} / {_fmt(s['sharpness_decayed'])} |"]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    opts = options(args, bounded_seeds=QUICK["seeds"])
    q, seeds = opts.bounded, opts.seeds
    steps = opts.choose(args.steps, QUICK["main_steps"], MAIN_STEPS)
    decay = opts.choose(args.decay, QUICK["decay"], DECAY)
    ckpt, eval_every = (QUICK["ckpt"], QUICK["eval_every"]) if q else (CKPT, EVAL_EVERY)
    if seeds < 1 or steps < 2 * ckpt or decay < 1:
        raise ConfigError(f"need --seeds >= 1, --steps >= {2 * ckpt} (two stable checkpoints) and --decay >= 1")
    out = fresh_output(args.out, "bigram")
    data = load_dataset(config(0, steps, ckpt, eval_every, args.lr).data)
    # the quick form checks the machinery: fewer line points and Lanczos steps (CI time)
    points, hvps = (QUICK["points"], QUICK["hvps"]) if q else (POINTS, HVPS)
    results = [one_seed(out, s, steps, ckpt, decay, eval_every, args.lr, data, opts.progress, points, hvps)
               for s in range(seeds)]
    summary = summarize(results)
    write_json(out / "results.json", {"steps": steps, "decay": decay, "lr": args.lr, "seeds": seeds, "quick": q,
                                      "summary": summary, "runs": results})
    write_text(out / "results.md", table(summary))
    plot_bigram_experiment(results, out / "bigram.png")
    print(table(summary))
    print(f"wrote {out / 'bigram.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
