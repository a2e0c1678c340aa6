"""``riverbed.merge(out, inputs, method=...)``: resolve inputs, compute weights, plan, stream."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from riverbed.errors import MergeError
from riverbed.merging.engine import ACCUMULATE, MergeResult, execute
from riverbed.merging.formats import open_input
from riverbed.merging.plan import build_plan, check_disk_space, parse_size
from riverbed.merging.weights import weights_for


def merge(
    out: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    method: str = "sma",
    *,
    weights: Sequence[float] | None = None,
    alpha: float | None = None,
    ema_form: str = "recursive",
    steps: Sequence[float] | None = None,
    dtype: str | None = None,
    accumulate: str = "fp32",
    max_shard_size: str | int = "5GB",
    threads: int | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> MergeResult:
    """Merge checkpoints (oldest first) into ``out``: M = sum_i w_i M_i, streamed chunk by chunk.

    ``inputs``: riverbed checkpoint dirs, Hugging Face model dirs (single or sharded safetensors,
    or pytorch_model.bin), or single .safetensors files. ``method``: ``sma``, ``ema`` (``alpha``,
    ``ema_form`` "recursive" | "normalized"), ``wma`` (by position, or by ``steps``) or ``weights``
    (explicit, normalised). ``dtype``: bf16 / fp16 / fp32 (default: the input dtype);
    ``accumulate``: fp32 / fp64. ``out`` is a directory (Hugging Face layout, sharded above
    ``max_shard_size``, non-weight files of the newest input carried over, ``merge.json`` beside)
    or a single ``.safetensors`` file. With ``verbose`` the plan and the effective weights are
    printed; ``dry_run`` stops there.

    >>> # r = riverbed.merge("merged", ["ckpt_a", "ckpt_b", "ckpt_c"], method="ema", alpha=0.2)
    >>> # r.weights  -> (0.64, 0.16, 0.2)
    """
    from riverbed import __version__

    t0 = time.perf_counter()
    out = Path(out)
    if not inputs:
        raise MergeError("merge needs at least one input checkpoint")
    if accumulate not in ACCUMULATE:
        raise MergeError(f"accumulate must be one of fp32, fp64; got {accumulate!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise MergeError(f"threads must be a positive integer, got {threads!r}")
    if not dry_run and out.exists() and not overwrite:
        raise MergeError(f"output {out} already exists (pass --overwrite / overwrite=True to replace it)")
    w = weights_for(method, len(inputs), alpha=alpha, ema_form=ema_form, weights=weights, steps=steps)
    sources = [open_input(p) for p in inputs]
    recipe = {
        "method": method,
        "weights": list(w),
        "inputs": [str(p) for p in inputs],
        "alpha": alpha,
        "ema_form": ema_form if method == "ema" else None,
        "steps": list(steps) if steps is not None else None,
        "dtype": dtype,
        "accumulate": accumulate,
        "riverbed_version": __version__,
    }
    metadata = {
        "riverbed_version": __version__,
        "merge_method": method,
        "merge_weights": json.dumps(list(w)),
        "merge_inputs": json.dumps([str(p) for p in inputs]),
        "merge_recipe": json.dumps(recipe),
    }
    single = out.name if out.suffix == ".safetensors" else None
    plan = build_plan(sources, w, dtype=dtype, max_shard_size=parse_size(max_shard_size), metadata=metadata, single_file=single)
    if verbose:
        print(f"merge plan -> {out}{'  (dry run)' if dry_run else ''}\n{plan.describe()}", file=sys.stdout, flush=True)
    if dry_run:
        return MergeResult(out, w, plan, [], time.perf_counter() - t0, dry_run=True)
    timings = {"plan": time.perf_counter() - t0}
    check_disk_space(plan, out)
    carry = sources[-1] if sources[-1].directory is not None else None
    files = execute(plan, sources, out, accumulate=accumulate, threads=threads, overwrite=overwrite, progress=progress, recipe=recipe, carry_from=carry, timings=timings)
    return MergeResult(out, w, plan, files, time.perf_counter() - t0, timings=timings)
