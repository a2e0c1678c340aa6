"""`riverbed merge OUT IN1 IN2 ...`, `riverbed merge OUT --run RUN --last N --every V`, or
`riverbed merge --recipe merge.json OUT`.

Averages checkpoints (PMA: SMA / EMA / WMA / explicit weights), streaming chunk by chunk, and
prints the order, the plan and the effective weights. Imports stay inside ``run`` so start-up is fast.
"""

from __future__ import annotations

import argparse

from riverbed.errors import MergeError
from riverbed.merging.pipeline import merge, replay
from riverbed.units import JoinWords, arg, parse_count

# Flags that shape the merge (recorded in its recipe); None as default tells "given" from "not given".
RECIPE_FLAGS = ("method", "weights", "alpha", "ema_form", "wma_by", "order", "dtype", "accumulate", "max_shard_size")
SELECT_FLAGS = ("last", "every", "unit", "branch")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.2,0.3,0.5; got {text!r}") from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="average checkpoints (PMA: sma, ema, wma, explicit weights) into a new checkpoint",
        description="Merge checkpoints into OUT, oldest first (inputs are put in step order). Inputs: riverbed checkpoint dirs, "
        "Hugging Face model dirs (single or sharded safetensors, pytorch_model.bin), .safetensors files, torch DCP folders "
        "(torchtitan, OLMo-core), nanoGPT ckpt.pt; or --run (a riverbed run "
        "or a Trainer output_dir) with --last/--every; or --recipe (a merge.json, .toml or .yaml recipe) to replay a merge.",
    )
    p.add_argument("out", metavar="OUT", help="output directory (Hugging Face layout) or a .safetensors file")
    p.add_argument("inputs", metavar="IN", nargs="*", help="checkpoints to merge (ordered by step unless --order given)")
    p.add_argument("--method", choices=("sma", "ema", "wma", "weights"), default=None,
                   help="merge weights (default sma, the PMA paper's default; --weights implies weights, --alpha implies ema)")
    p.add_argument("--alpha", type=float, default=None, help="EMA alpha (the PMA paper tested 0.1 and 0.2); implies --method ema")
    p.add_argument("--ema-form", choices=("recursive", "normalized"), default=None, help="EMA from the oldest checkpoint (default) or the renormalised closed form")
    p.add_argument("--weights", type=_floats, default=None, help="explicit weights w1,w2,... (normalised to sum to 1); implies --method weights")
    p.add_argument("--wma-by", choices=("position", "step"), default=None, help="WMA weights proportional to the position (default) or to the step (tokens with --unit tokens)")
    p.add_argument("--order", choices=("step", "given"), default=None, help="put inputs in step order (default; read from state.json, "
                   "trainer_state.json or a checkpoint-N / step_N name) or keep the given order")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32", "bfloat16", "float16", "float32"), default=None, metavar="{bf16,fp16,fp32}", help="output dtype of float tensors (default: the input dtype; config.json follows)")
    p.add_argument("--accumulate", choices=("fp32", "fp64"), default=None, help="accumulation dtype (default fp32)")
    p.add_argument("--max-shard-size", default=None, help="largest output shard, e.g. 5GB, 500MB, 2GiB (default 5GB)")
    p.add_argument("--allow-nonfinite", action="store_true", help="merge inputs holding NaN/inf instead of refusing them")
    p.add_argument("--recipe", default=None, metavar="FILE", help="replay a recipe (a merge's merge.json, or a .toml / .yaml file with its keys)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: min(4, CPUs)); the output is identical for any value")
    p.add_argument("--dry-run", action="store_true", help="print the order, plan, weights and recipe; write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is an earlier merge output (the old OUT stays until the new one is complete)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("selecting checkpoints from a run")
    g.add_argument("--run", default=None, help="a riverbed run or a Trainer output_dir: merge its last N checkpoints spaced V apart")
    g.add_argument("--last", type=int, default=None, help="N: number of checkpoints to merge")
    g.add_argument("--every", type=arg(parse_count, positive=True), default=None, help="V: merge interval between chosen checkpoints (100, 1K, 1e3)")
    g.add_argument("--unit", choices=("steps", "tokens"), default=None, help="unit of --every (default steps)")
    g.add_argument("--branch", default=None, help="branch to take checkpoints from (default main; riverbed runs only)")
    e = p.add_argument_group("a decay-free stand-in for a decay branch (riverbed runs only)")
    e.add_argument("--emulate-decay", default=None, metavar="SHAPE", help="merge the main checkpoints from --from to --from + --length "
                   "with the weights that stand in for this decay shape (riverbed.orchestration.emulate)")
    e.add_argument("--from", dest="from_step", type=arg(parse_count), default=None, metavar="STEP", help="fork step of the emulated decay (a saved main checkpoint)")
    e.add_argument("--length", nargs="+", action=JoinWords, default=None, metavar=("N", "UNIT"), help="decay length: steps, '1M tok' or '20%%' of the budget")
    e.add_argument("--min-ratio", type=float, default=None, help="final LR multiplier of the emulated decay (default: the run's)")
    e.add_argument("--max-gap", type=arg(parse_count, positive=True), default=None, help="largest accepted spacing of saved checkpoints in the window (default length/4)")
    p.set_defaults(func=run)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run(args: argparse.Namespace) -> int:
    common = dict(threads=args.threads, dry_run=args.dry_run, overwrite=args.overwrite, progress=not args.no_progress, verbose=True)
    if args.emulate_decay is not None or args.from_step is not None or args.length is not None:
        return _emulate(args, common)
    stray = [f for f, v in (("--min-ratio", args.min_ratio), ("--max-gap", args.max_gap)) if v is not None]
    if stray:
        raise MergeError(f"{stray[0]} applies to --emulate-decay only")
    if args.recipe is not None:
        given = [_flag(k) for k in (*RECIPE_FLAGS, *SELECT_FLAGS, "run") if getattr(args, k) is not None]
        if args.inputs or given:
            what = f"input {args.inputs[0]}" if args.inputs else given[0]
            raise MergeError(f"--recipe replays a recipe as written: {what} cannot be combined with it (edit the recipe instead)")
        result = replay(args.recipe, args.out, allow_nonfinite=args.allow_nonfinite, **common)
        return _report(result)
    if args.run is None:
        stray = [_flag(k) for k in SELECT_FLAGS if getattr(args, k) is not None]
        if stray:
            raise MergeError(f"{stray[0]} selects checkpoints of a run: pass --run RUN too")
    if args.max_shard_size is not None and args.out.endswith(".safetensors"):
        raise MergeError(f"--max-shard-size does not apply to a single-file OUT ({args.out}); give a directory OUT to shard")
    if not args.inputs and args.run is None:
        raise MergeError("nothing to merge: give input checkpoints (IN1 IN2 ...), --run RUN --last N --every V, or --recipe FILE")
    result = merge(args.out, list(args.inputs), args.method, run=args.run, last=args.last, every=args.every,
                   unit=args.unit or "steps", branch=args.branch or "main", weights=args.weights, alpha=args.alpha,
                   ema_form=args.ema_form, wma_by=args.wma_by, order=args.order or "step", dtype=args.dtype,
                   accumulate=args.accumulate or "fp32", max_shard_size=args.max_shard_size or "5GB",
                   allow_nonfinite=args.allow_nonfinite, **common)
    return _report(result)


def _emulate(args: argparse.Namespace, common: dict) -> int:
    from riverbed.orchestration.emulate import merge_emulated_decay

    if args.emulate_decay is None or args.from_step is None or args.length is None or args.run is None:
        raise MergeError("--emulate-decay SHAPE needs --run RUN --from STEP --length N")
    clash = [_flag(k) for k in (*RECIPE_FLAGS, *SELECT_FLAGS) if k not in ("dtype", "accumulate") and getattr(args, k) is not None]
    if args.inputs or clash or args.recipe:
        what = f"input {args.inputs[0]}" if args.inputs else (clash[0] if clash else "--recipe")
        raise MergeError(f"--emulate-decay derives its own weights and checkpoints: {what} cannot be combined with it")
    result = merge_emulated_decay(args.out, args.run, args.from_step, args.emulate_decay, args.length, min_ratio=args.min_ratio,
                                  max_gap=args.max_gap, dtype=args.dtype, accumulate=args.accumulate or "fp32", **common)
    return _report(result)


def _report(result) -> int:
    if not result.dry_run:
        t = result.timings
        print(f"wrote {result.out} ({len(result.files)} files) in {result.seconds:.2f} s "
              f"(plan {t.get('plan', 0):.2f} s, stream {t.get('stream', 0):.2f} s, fsync+rename {t.get('sync', 0):.2f} s)")
    return 0
