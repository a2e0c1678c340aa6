"""`riverbed experiment continued-training`: continued training from the last checkpoint vs a PMA merge.

The PMA paper (arXiv 2505.12082) reports that starting continued training from a merge of the
last checkpoints (PMA-init) gives a lower loss early, smoother gradient norms, and parity at the
end. Here: a main run trains the tiny dense model on the Shakespeare half of the embedded corpus
at a constant LR (checkpoints every ``CKPT`` steps); then the data mix shifts to the King James
Bible only, and two continued runs start through ``[init] from_merge``:

* ``last``  the last main-branch checkpoint (a "merge" of 1);
* ``pma``   the SMA of the last ``N`` checkpoints (spaced ``CKPT`` steps).

Both reset the AdamW moments and use the same schedule and data order (one per seed). Reported:
held-out (Bible) loss over the continued run, from step 0, and the gradient-norm curves, mean and
min..max over seeds. Writes ``results.json``, ``results.md`` and ``continued.png`` under ``--out``.
RIVERBED_BOUNDED=1 runs a short form.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import RunConfig
from riverbed.io.atomic import write_json, write_text
from riverbed.data import DataConfig, load_dataset
from riverbed.data.sources import default_corpus
from riverbed.experiments.preamble import add_arguments as add_arguments_common, start
from riverbed.experiments.small import evaluator, small_config
from riverbed.reports.experiment_plots import plot_continued
from riverbed.runs import Run
from riverbed.orchestration.drive import train_main
from riverbed.training import read_metrics
from riverbed.config.init import InitConfig
from riverbed.units import arg, parse_count

ARMS = ("last", "pma")
LR, MAIN_STEPS, CT_STEPS, CKPT, N, EVAL_EVERY = 3e-3, 600, 200, 25, 6, 10
BOUNDED = {"main_steps": 80, "ct_steps": 30, "seeds": 1, "ckpt": 10}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments_common(p, "continued-training", seeds=3)
    p.add_argument("--main-steps", type=arg(parse_count), default=None, help=f"main-run steps (default {MAIN_STEPS})")
    p.add_argument("--steps", type=arg(parse_count), default=None, help=f"continued-training steps (default {CT_STEPS})")
    p.add_argument("--last", type=int, default=N, help=f"checkpoints in the PMA merge (default {N})")


def corpus_files(out: Path) -> tuple[Path, Path]:
    """The two halves of the embedded corpus as text files (Shakespeare, Bible)."""
    docs = default_corpus()
    shakespeare = "\n".join(t for name, t in docs if "kjv" not in name.lower())
    bible = "\n".join(t for name, t in docs if "kjv" in name.lower())
    a, b = out / "data" / "shakespeare.txt", out / "data" / "bible.txt"
    a.parent.mkdir(parents=True, exist_ok=True)
    a.write_text(shakespeare, encoding="utf-8")
    b.write_text(bible, encoding="utf-8")
    return a, b


def config(source: Path, steps: int, seed: int, init: InitConfig | None = None, ckpt: int = CKPT) -> RunConfig:
    return small_config(seed, LR, {"type": "warmup-stable", "warmup": 20}, data=DataConfig(source=str(source)),
                        batch_size=16, seq_len=64, max_steps=steps, ckpt_every=ckpt, eval_every=EVAL_EVERY,
                        eval_batches=4, log_every=1, init=init)


def continued(out: Path, main_dir: Path, bible: Path, arm: str, seed: int, steps: int, last: int, data: Any,
              progress: bool) -> dict[str, Any]:
    init = InitConfig(from_merge=str(main_dir), last=1 if arm == "last" else last, method="sma", optimizer_state="reset")
    cfg = config(bible, steps, seed, init)
    run_dir = out / f"seed{seed}" / arm
    train_main(cfg, run_dir, Run.create(run_dir, cfg), until_step=steps, progress=progress, data=data)
    rows = read_metrics(layout.metrics_path(run_dir, "main"))
    # the merged start, evaluated like the trainer's eval rows (riverbed.training.evaluate)
    evals = [(0, evaluator(cfg, data).loss(layout.init_merge_dir(run_dir)))]
    evals += [(r["step"], r["eval_loss"]) for r in rows if r["kind"] == "eval"]
    grad = [r["grad_norm"] for r in rows if r["kind"] == "train"]
    return {"arm": arm, "seed": seed, "eval": evals, "grad_norm": grad}


def summarize(results: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    marks = sorted({0, EVAL_EVERY, *(m - m % EVAL_EVERY for m in (steps // 4, steps // 2)), steps})
    rows = []
    for arm in ARMS:
        rs = [r for r in results if r["arm"] == arm]
        row: dict[str, Any] = {"arm": arm, "runs": len(rs)}
        for m in marks:
            vals = [dict(r["eval"]).get(m) for r in rs]
            row[f"eval@{m}"] = _ms([v for v in vals if v is not None])
        early = max(1, steps // 4)
        row["grad_norm_mean_early"] = _ms([statistics.fmean(r["grad_norm"][:early]) for r in rs])
        row["grad_norm_std_early"] = _ms([statistics.pstdev(r["grad_norm"][:early]) for r in rs])
        row["grad_norm_max_early"] = _ms([max(r["grad_norm"][:early]) for r in rs])
        rows.append(row)
    return rows


def _ms(xs: list[float]) -> dict[str, float] | None:
    return {"mean": statistics.fmean(xs), "min": min(xs), "max": max(xs)} if xs else None


def table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k not in ("arm", "runs")]
    head = "| start | runs | " + " | ".join(k.replace("eval@", "held-out loss @ step ").replace("_", " ") for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for r in rows:
        cells = []
        for k in keys:
            v = r[k]
            cells.append("-" if v is None else (f"{v['mean']:.3f}" if v["min"] == v["max"] else
                                                f"{v['mean']:.3f} [{v['min']:.3f}, {v['max']:.3f}]"))
        lines.append(f"| {r['arm']} | {r['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    st = start(args, "continued-training", bounded_seeds=BOUNDED["seeds"])
    b, seeds, out = st.bounded, st.seeds, st.out
    main_steps = st.choose(args.main_steps, BOUNDED["main_steps"], MAIN_STEPS)
    steps = st.choose(args.steps, BOUNDED["ct_steps"], CT_STEPS)
    shakespeare, bible = corpus_files(out)
    ckpt = BOUNDED["ckpt"] if b else CKPT
    main_cfg = config(shakespeare, main_steps, 0, ckpt=ckpt)
    main_dir = out / "main"
    train_main(main_cfg, main_dir, Run.create(main_dir, main_cfg), until_step=main_steps,
               progress=st.progress)
    data = load_dataset(config(bible, steps, 0).data)
    results = [continued(out, main_dir, bible, arm, seed, steps, args.last, data, st.progress)
               for seed in range(seeds) for arm in ARMS]
    rows = summarize(results, steps)
    write_json(out / "results.json", {"main_steps": main_steps, "steps": steps, "seeds": seeds, "last": args.last,
                                      "ckpt_every": ckpt, "bounded": b, "summary": rows, "runs": results})
    write_text(out / "results.md", table(rows))
    plot_continued(results, out / "continued.png", arms=ARMS, last=args.last)
    print(table(rows))
    print(f"wrote {out / 'continued.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
