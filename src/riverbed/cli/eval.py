"""`riverbed eval CKPT... [--run RUN | --config CONFIG] [--data FILE] [--json]`: held-out loss of checkpoints.

Evaluates each CKPT (a run's checkpoint directory, a `riverbed merge` output, a Hugging Face
model directory, a torch DCP folder, a .safetensors / .bin / ckpt.pt file) on the run's held-out
split with the trainer's own evaluation (same batches, chunking, device and dtype), and prints
them side by side; a run checkpoint's loss equals the eval_loss the trainer logged at its step.
Where the data defines buckets, the per-bucket losses are shown too. The run config is --run's,
--config's, or the first riverbed checkpoint's own; a Hugging Face directory's config.json must
agree with its model (a mismatch names the key). With no riverbed config, Hugging Face
directories are built by transformers from their own config.json (the hf extra) and evaluated on
--data FILE's held-out split.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="held-out loss of checkpoints, merges or Hugging Face dirs, side by side",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint dirs, merge outputs, HF dirs or .safetensors files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run", type=Path, default=None, help="run whose config and held-out split to use")
    g.add_argument("--config", type=Path, default=None, help="TOML config whose model and held-out split to use")
    p.add_argument("--data", type=Path, default=None, metavar="FILE",
                   help="evaluate on FILE's held-out split (a text file or folder, a token .bin, a train.bin/val.bin folder: "
                        "the loaders of [data]); with no --run/--config, Hugging Face dirs are built from their config.json")
    p.add_argument("--tokenizer", default=None, help="tokenizer of --data text: byte, bpe or a tokenizer JSON "
                   "(default: the model directory's tokenizer.json, else the config's)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per held-out sequence (default: the config's, else 128)")
    p.add_argument("--eval-batches", type=int, default=None, help="held-out batches (default: the config's, else 8)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per held-out batch (default: the config's, else 32)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from riverbed.training.evaluate import evaluate_checkpoints  # lazy: loads torch; every verb module is imported for `riverbed --help`

    results = evaluate_checkpoints(args.checkpoints, run=args.run, config=args.config, data_file=args.data, tokenizer=args.tokenizer,
                                   seq_len=args.seq_len, eval_batches=args.eval_batches, batch_size=args.batch_size)
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2, allow_nan=False))
        return 0

    buckets = list(dict.fromkeys(k for r in results for k in r.buckets))
    best = min((r.loss for r in results if math.isfinite(r.loss)), default=math.nan)  # a diverged input is nan
    t = Table(title="held-out loss")
    for col in ("checkpoint", "kind", "step", "loss", "vs best", "logged", *buckets):
        t.add_column(col, justify="left" if col in ("checkpoint", "kind") else "right", overflow="fold")
    for r in results:
        cells = [r.path, r.kind, "-" if r.step is None else str(r.step), f"{r.loss:.4f}", f"{r.loss - best:+.4f}",
                 "-" if r.logged_loss is None else f"{r.logged_loss:.4f}"]
        cells += ["-" if r.buckets.get(b) is None else f"{r.buckets[b]:.4f}" for b in buckets]
        t.add_row(*cells)
    Console().print(t)
    return 0
