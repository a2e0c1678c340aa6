"""`riverbed merge OUT IN1 IN2 ...` or `riverbed merge OUT --run RUN --last N --every V`.

Averages checkpoints (PMA: SMA / EMA / WMA / explicit weights), streaming chunk by chunk, and
prints the plan and the effective weights. Imports stay inside ``run`` so start-up is fast.
"""

from __future__ import annotations

import argparse

from riverbed.errors import MergeError
from riverbed.units import arg, parse_count


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.2,0.3,0.5; got {text!r}") from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="average checkpoints (PMA: sma, ema, wma, explicit weights) into a new checkpoint",
        description="Merge checkpoints (oldest first) into OUT. Inputs: riverbed checkpoint dirs, Hugging Face "
        "model dirs (single or sharded safetensors, pytorch_model.bin), .safetensors files; or --run with --last/--every.",
    )
    p.add_argument("out", metavar="OUT", help="output directory (Hugging Face layout) or a .safetensors file")
    p.add_argument("inputs", metavar="IN", nargs="*", help="checkpoints to merge, oldest first")
    p.add_argument("--method", choices=("sma", "ema", "wma", "weights"), default="sma", help="merge weights (default sma, the PMA paper's default)")
    p.add_argument("--alpha", type=float, default=None, help="EMA alpha (the PMA paper tested 0.1 and 0.2)")
    p.add_argument("--ema-form", choices=("recursive", "normalized"), default="recursive", help="EMA from the oldest checkpoint (default) or the renormalised closed form")
    p.add_argument("--weights", type=_floats, default=None, help="explicit weights w1,w2,... (normalised to sum to 1)")
    p.add_argument("--wma-by", choices=("position", "step"), default="position", help="WMA weights proportional to the position (default) or to the step (--run only)")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None, help="output dtype of float tensors (default: the input dtype)")
    p.add_argument("--accumulate", choices=("fp32", "fp64"), default="fp32", help="accumulation dtype (default fp32)")
    p.add_argument("--max-shard-size", default="5GB", help="largest output shard, e.g. 5GB, 500MB, 2GiB (default 5GB)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: min(4, CPUs)); the output is identical for any value")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the weights, write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (the old OUT stays until the new one is complete)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("selecting checkpoints from a run")
    g.add_argument("--run", default=None, help="run directory: merge its last N checkpoints spaced V apart")
    g.add_argument("--last", type=int, default=None, help="N: number of checkpoints to merge")
    g.add_argument("--every", type=arg(parse_count, positive=True), default=None, help="V: merge interval between chosen checkpoints (100, 1K, 1e3)")
    g.add_argument("--unit", choices=("steps", "tokens"), default="steps", help="unit of --every (default steps)")
    g.add_argument("--branch", default="main", help="branch to take checkpoints from (default main)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from riverbed.merging.pipeline import merge

    inputs = list(args.inputs)
    steps = None
    if args.run is not None:
        from riverbed.merging.select import select_checkpoints

        if inputs:
            raise MergeError(f"give either input checkpoints or --run, not both (got --run {args.run} and {inputs[0]})")
        if args.last is None or args.every is None:
            raise MergeError("--run needs --last N and --every V")
        picked = select_checkpoints(args.run, args.last, args.every, unit=args.unit, branch=args.branch)
        inputs = [str(s.path) for s in picked]
        steps = [float(s.step if args.unit == "steps" else s.tokens) for s in picked]
        print(f"selected {len(picked)} checkpoints of {args.run} ({args.branch}): {args.unit} " + ", ".join(str(int(x)) for x in steps))
    elif args.last is not None or args.every is not None:
        raise MergeError("--last/--every select checkpoints of a run: pass --run RUN too")
    if not inputs:
        raise MergeError("nothing to merge: give input checkpoints (IN1 IN2 ...) or --run RUN --last N --every V")
    if args.wma_by == "step" and args.method == "wma" and steps is None:
        raise MergeError("--wma-by step needs --run (positions of explicit inputs are unknown)")
    result = merge(
        args.out,
        inputs,
        args.method,
        weights=args.weights,
        alpha=args.alpha,
        ema_form=args.ema_form,
        steps=steps if (args.method == "wma" and args.wma_by == "step") else None,
        dtype=args.dtype,
        accumulate=args.accumulate,
        max_shard_size=args.max_shard_size,
        threads=args.threads,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        verbose=True,
    )
    if not result.dry_run:
        t = result.timings
        print(f"wrote {result.out} ({len(result.files)} files) in {result.seconds:.2f} s "
              f"(plan {t.get('plan', 0):.2f} s, stream {t.get('stream', 0):.2f} s, fsync+rename {t.get('sync', 0):.2f} s)")
    return 0
